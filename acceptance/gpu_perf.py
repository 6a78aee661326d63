"""Where a GPU step's time goes, in one run of about 7 minutes (one 15-minute device allowance).

    python acceptance/gpu_perf.py                       # on the GPU machine
    python acceptance/gpu_perf.py --device cpu --tiny   # the same code at test widths (the test suite)

Each part runs in its own subprocess with a timeout, and the JSON is rewritten after each one, so
a hang or a crash costs that part only. Parts (3B: the Qwen2.5-VL-3B configuration, random
weights, bf16; one prompt = 16 frames at 252×252 + a 252×252 image, G = 8):
  hw       the device's bf16 matmul rate (8192³) and copy bandwidth (1 GiB device-to-device).
  decode   ms per decode step at B = 8 and 64 rows, today's engine (dynamic cache) against the
           static cache + torch.compile (rollout.compile): the step time as a share of the
           bandwidth limit (bf16 text weights + the KV cache read once per step), compile seconds,
           graphs compiled while timing (recompiles; 0 expected inside one bucket).
  vision   one vision pass (video + image) with transformers' per-window attention calls against
           one attention call per block (models.vision_attention).
  update   forward + backward of the policy at N = 1 and 4 prompts per micro-batch (256-token
           completions), gradient checkpointing on / off, the frozen tower's features kept from an
           earlier pass or encoded again: seconds, tokens/s, MFU (6 · trainable parameters ·
           tokens / s / the hw part's matmul rate), peak GiB. fp32 master weights, bf16 autocast.
  sharded  when 90 s remain: gpu_check.py's accelerate FSDP2 and DeepSpeed ZeRO-3 runs (GPU only).

Writes acceptance/results/gpu_perf.json (or --json).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import (
    SIZES_3B,
    SIZES_TINY,
    VOCAB_3B,
    _timed,
    build_model,
    device_name,
    matmul_rate,
    peak_memory_gib,
    sharded_case,
    versions,
    video_prompt,
)

RESULTS = Path(__file__).parent / "results" / "gpu_perf.json"
BUDGET_S = 420  # the whole run
TIMEOUTS = {"hw": 60, "decode": 170, "vision": 60, "update": 150}  # per part; sharded: what remains
SHARDED_MIN_S = 90
GROUP = 8


def shape(tiny: bool) -> dict:
    """Model widths and prompt size of the run (the 3B configuration, or test widths)."""
    if tiny:
        return {"sizes": SIZES_TINY, "vocab": None, "frames": 4, "side": 56, "new": 16, "tied": False}
    return {"sizes": SIZES_3B, "vocab": VOCAB_3B, "frames": 16, "side": 252, "new": 256, "tied": True}


# ---------------------------------------------------------------- parts (each in its own process)


def part_hw(device: str, tiny: bool) -> dict:
    """bf16 matmul FLOP/s and device copy bandwidth (bytes read + written per second)."""
    n_bytes = (16 if tiny else 1024) * 2**20
    src = torch.empty(n_bytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = min(_timed(device, lambda: dst.copy_(src))[1] for _ in range(10))
    return {
        "matmul_bf16_flops": matmul_rate(device, 512 if tiny else 8192),
        "copy_bytes_per_s": 2 * n_bytes / best,
        "ok": True,
    }


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def decode_bytes(model, rows: int, context: int) -> int:
    """Bytes one decode step must read: the bf16 text weights (lm_head included) and the KV cache
    of `rows` rows at `context` positions."""
    text = model.model.language_model
    weights = sum(p.numel() for p in text.parameters()) + model.lm_head.weight.numel()
    cfg = model.config.text_config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    kv = rows * cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * head_dim * context
    return 2 * (weights + kv)


def measure_decode(model, adapter, prompts, device: str, compile_: bool, short: int, long: int) -> dict:
    """ms per decode step = (t(long) - t(short)) / (long - short) new tokens, after a first call."""
    from deepvideo_r1.rollout import HFRolloutEngine, SamplingOptions

    engines = {
        n: HFRolloutEngine(
            model, adapter, SamplingOptions(max_new_tokens=n, temperature=1.0), compile=compile_
        )
        for n in (short, long)
    }
    _, first_s = _timed(device, lambda: engines[long].generate(prompts, GROUP, seed=0))
    engines[short].generate(prompts, GROUP, seed=0)  # the short run's first call (same bucket)
    graphs = _graphs()
    t_short = min(
        _timed(device, lambda: engines[short].generate(prompts, GROUP, seed=1))[1] for _ in range(2)
    )
    t_long = min(_timed(device, lambda: engines[long].generate(prompts, GROUP, seed=1))[1] for _ in range(2))
    step_s = (t_long - t_short) / (long - short)
    return {
        "ms_per_step": round(1e3 * step_s, 3),
        "first_call_s": round(first_s, 2),
        "compile_s": round(max(first_s - t_long, 0.0), 2),
        "recompiles_while_timing": _graphs() - graphs,
        "bytes_per_step": decode_bytes(model, prompts.num_prompts * GROUP, prompts.input_ids.shape[1] + long),
    }


def part_decode(device: str, tiny: bool) -> dict:
    from deepvideo_r1.models.vision_attention import use_varlen_vision_attention

    s = shape(tiny)
    model, adapter = build_model(s["sizes"], s["vocab"], device, tied=s["tied"])
    model.requires_grad_(False)  # inference: a frozen tower keeps each prompt's features
    use_varlen_vision_attention(model)
    short, long = (4, 12) if tiny else (64, 192)  # one cache bucket for both lengths
    out = {"compiled": device == "cuda", "short_long_new_tokens": [short, long]}
    for rows in (8, 64):
        n = rows // GROUP
        prompts = adapter.collate([video_prompt(adapter, s["frames"], s["side"]) for _ in range(n)]).to(
            device
        )
        for name, compile_ in (("dynamic", False), ("static_compiled", True)):
            try:
                out[f"B{rows}_{name}"] = measure_decode(
                    model, adapter, prompts, device, compile_, short, long
                )
            except Exception as e:  # one failed case (e.g. a compile error) is a result
                out[f"B{rows}_{name}"] = {"error": f"{type(e).__name__}: {e}"[:2000]}
    out["ok"] = all("error" not in v for k, v in out.items() if k.startswith("B"))
    return out


def part_vision(device: str, tiny: bool) -> dict:
    from deepvideo_r1.models.vision_attention import VARLEN_VISION_ATTENTION, set_vision_attention

    s = shape(tiny)
    model, adapter = build_model(s["sizes"], s["vocab"], device, tied=s["tied"])
    prompts = adapter.collate([video_prompt(adapter, s["frames"], s["side"])]).to(device)
    base = model.model

    @torch.no_grad()
    def encode():
        v = base.get_video_features(prompts.pixel_values_videos, prompts.video_grid_thw).pooler_output
        i = base.get_image_features(prompts.pixel_values, prompts.image_grid_thw).pooler_output
        return torch.cat([*v, *i]).float()

    out, features = {}, {}
    for name in ("sdpa", VARLEN_VISION_ATTENTION):
        set_vision_attention(model, name)
        features[name] = encode()  # warm-up
        out[f"{name}_s"] = round(min(_timed(device, encode)[1] for _ in range(3)), 4)
    out["per_window_s"], out["one_call_per_block_s"] = (
        out.pop("sdpa_s"),
        out.pop(f"{VARLEN_VISION_ATTENTION}_s"),
    )
    out["max_abs_feature_diff"] = float((features["sdpa"] - features[VARLEN_VISION_ATTENTION]).abs().max())
    out["ok"] = True
    return out


def _update_batch(adapter, s: dict, n: int, device: str):
    """n prompts, G random completions of `new` tokens each (every token counts)."""
    from deepvideo_r1.models.batch import join_completions

    prompts = [video_prompt(adapter, s["frames"], s["side"]) for _ in range(n)]
    ids = torch.randint(0, 200, (n * GROUP, s["new"]))  # plain text tokens (no vision placeholders)
    return prompts, join_completions(adapter.collate(prompts), ids, torch.ones_like(ids), GROUP).to(device)


def measure_update(policy, model, prompts, batch, device: str, cached: bool) -> tuple[float, float]:
    """(seconds, peak GiB) of forward + backward; `cached`: the frozen tower's features kept."""
    from deepvideo_r1.models.precision import compute_context
    from deepvideo_r1.models.vision import encode_vision

    items = [x for p in prompts for x in (p.video, p.image) if x is not None]

    def update():
        if not cached:
            for item in items:
                item.features = None
        result = policy(batch)
        (-(result.logps * batch.completion_mask).sum() / batch.completion_mask.sum()).backward()

    if cached:
        with torch.no_grad(), compute_context(model):
            encode_vision(model, batch.prompts)  # as rollout's prefill does
    update()  # warm-up
    model.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _, seconds = _timed(device, update)
    model.zero_grad(set_to_none=True)
    return seconds, peak_memory_gib(device)


def part_update(device: str, tiny: bool) -> dict:
    from deepvideo_r1.models.precision import keep_fp32_master
    from deepvideo_r1.models.trainable import prepare_trainable
    from deepvideo_r1.models.vision_attention import use_varlen_vision_attention
    from deepvideo_r1.training.policy import PolicyModule

    s = shape(tiny)
    model, adapter = build_model(s["sizes"], s["vocab"], device, tied=s["tied"])
    use_varlen_vision_attention(model)
    model = prepare_trainable(model, "none", None, True)
    keep_fp32_master(model, autocast=True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    policy = PolicyModule(model, chunk_size=512)
    out: dict = {"trainable_parameters": trainable}
    for n in (1, 4):
        prompts, batch = _update_batch(adapter, s, n, device)
        tokens = int(batch.prompts.attention_mask.sum()) + n * GROUP * (s["new"] - 1)  # P + G·(C - 1)
        for checkpointing in (True, False):
            if checkpointing:
                model.activation_checkpointing_enable(
                    activation_checkpointing_kwargs={"use_reentrant": False}
                )
            else:
                model.activation_checkpointing_disable()
            for cached in (True, False):
                key = f"N{n}_ckpt{'on' if checkpointing else 'off'}_{'cached' if cached else 'encoded'}"
                try:
                    seconds, peak = measure_update(policy, model, prompts, batch, device, cached)
                    out[key] = {
                        "tokens": tokens,
                        "update_s": round(seconds, 3),
                        "tokens_per_s": round(tokens / seconds, 1),
                        "peak_gib": round(peak, 2),
                    }
                except torch.OutOfMemoryError as e:
                    out[key] = {"error": f"OutOfMemoryError: {str(e)[:300]}"}
                    torch.cuda.empty_cache()
    out["ok"] = any(isinstance(v, dict) and "update_s" in v for v in out.values())
    return out


def part_sharded_case(device: str, tiny: bool, name: str) -> dict:
    """gpu_check.py's accelerate FSDP2 (with resume) or DeepSpeed ZeRO-3 case."""
    import gpu_check

    zero3 = str(gpu_check.REPO / "configs" / "accelerate" / "multi_node_deepspeed_zero3.yaml")
    one = ["--num_processes", "1"]
    cases = {
        "fsdp2": ([*one, "--use_fsdp", "--fsdp_version", "2", "--mixed_precision", "bf16"], True),
        "zero3": (["--config_file", zero3, *one, "--num_machines", "1", "--machine_rank", "0"], False),
    }
    launch, resume = cases[name]
    work = Path(tempfile.mkdtemp(prefix=f"gpu_perf_{name}_"))
    return sharded_case(name, launch, [], tiny, work, 120, resume=resume)


PARTS = {
    "hw": part_hw,
    "decode": part_decode,
    "vision": part_vision,
    "update": part_update,
    "sharded_fsdp2": lambda device, tiny: part_sharded_case(device, tiny, "fsdp2"),
    "sharded_zero3": lambda device, tiny: part_sharded_case(device, tiny, "zero3"),
}


# ---------------------------------------------------------------- orchestration


def derived(report: dict) -> None:
    """Shares of the hardware, from the hw part's rates: decode's % of the bandwidth limit, MFU."""
    hw = report["parts"].get("hw", {})
    bandwidth, rate = hw.get("copy_bytes_per_s"), hw.get("matmul_bf16_flops")
    decode = report["parts"].get("decode", {})
    for case in (v for k, v in decode.items() if k.startswith("B") and "ms_per_step" in v):
        if bandwidth and case["ms_per_step"] > 0:
            limit_ms = 1e3 * case["bytes_per_step"] / bandwidth
            case["bandwidth_limit_ms"] = round(limit_ms, 3)
            case["pct_of_bandwidth_limit"] = round(100 * limit_ms / case["ms_per_step"], 1)
    update = report["parts"].get("update", {})
    trainable = update.get("trainable_parameters")
    for case in (v for v in update.values() if isinstance(v, dict) and "update_s" in v):
        if rate and trainable:
            case["mfu"] = round(6 * trainable * case["tokens"] / case["update_s"] / rate, 4)


def run_in_subprocess(name: str, args: argparse.Namespace, timeout: float) -> dict:
    """One part in a fresh process (its own CUDA context and compile caches), killed at `timeout`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "part.json"
        cmd = [sys.executable, __file__, "--run-part", name, "--device", args.device, "--part-json", str(out)]
        cmd += ["--tiny"] if args.tiny else []
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timed out after {timeout:.0f} s", "wall_s": round(timeout, 1)}
        wall = round(time.perf_counter() - start, 1)
        if not out.exists():
            return {"ok": False, "error": (done.stdout + done.stderr)[-3000:], "wall_s": wall}
        return {**json.loads(out.read_text()), "wall_s": wall}


def run_part_here(name: str, device: str, tiny: bool, path: Path) -> None:
    """The child process: run one part, write its result (or its error) to `path`."""
    try:
        result = PARTS[name](device, tiny)
    except Exception as e:
        result = {
            "ok": False,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc()[-3000:],
        }
    path.write_text(json.dumps(result, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--tiny", action="store_true", help="test widths and sizes (the CPU dry run)")
    parser.add_argument("--parts", default="hw,decode,vision,update,sharded")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--run-part", help=argparse.SUPPRESS)
    parser.add_argument("--part-json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_part:
        run_part_here(args.run_part, args.device, args.tiny, args.part_json)
        return
    start = time.perf_counter()
    report = {"device": device_name(args.device), "tiny": args.tiny, "versions": versions(), "parts": {}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for part in args.parts.split(","):
        left = BUDGET_S - (time.perf_counter() - start)
        names = [part] if part != "sharded" else ["sharded_fsdp2", "sharded_zero3"]
        for name in names:
            if name.startswith("sharded") and (args.device == "cpu" or left < SHARDED_MIN_S):
                why = (
                    "GPU only (CPU: tests/test_distributed_fsdp.py)"
                    if args.device == "cpu"
                    else "under 90 s left"
                )
                report["parts"][name] = {"ok": None, "skipped": why}
                continue
            timeout = left if name.startswith("sharded") else TIMEOUTS[name]
            report["parts"][name] = run_in_subprocess(name, args, timeout)
            derived(report)
            args.json.write_text(json.dumps(report, indent=2))  # after each part: a timeout keeps the rest
            print(
                f"{name:14s} ok={report['parts'][name].get('ok')} ({report['parts'][name]['wall_s']} s)",
                flush=True,
            )
            left = BUDGET_S - (time.perf_counter() - start)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
