"""What a GPU run must show, in one script and one JSON: bf16 training with exact resume, a
Qwen2.5-VL-3B-shaped RL step's throughput and MFU, and sharded (FSDP / DeepSpeed ZeRO-3) runs.

    python acceptance/gpu_check.py                       # on the GPU machine (about 8 minutes)
    python acceptance/gpu_check.py --device cpu --tiny   # the same code paths in a few minutes

Parts (each recorded even when another fails; failures keep their error text):
  rl       the tiny preset, bf16 + sdpa: N RL steps, a checkpoint at N/2, a second run cut there and
           resumed; rewards must match step for step and every loss be finite.
  step     random-init weights of the 3B configuration (hidden 2048, 36 layers, vocab 151,936;
           vision 32 blocks of 1280), bf16, vision frozen, gradient checkpointing; one prompt of
           16 frames at 252×252 + one 252×252 image, G = 8, 256 new tokens. Rollout, old/ref
           log-prob and update tokens/s, peak memory, and the update's
           MFU = 6 · trainable parameters · trained tokens / seconds / measured bf16 matmul rate.
           Both with the shared prefix (the default) and with the prompt repeated per completion.
  sharded  the tiny preset under accelerate with FSDP2 and with DeepSpeed ZeRO-3
           (configs/accelerate/multi_node_deepspeed_zero3.yaml at one process): generation,
           final_model, save → resume equality. On CPU: FSDP2 over two gloo processes
           (train.fsdp), DeepSpeed skipped (it needs an accelerator).

Writes acceptance/results/gpu_check.json (or --json): top-level `device` (the name torch reports)
and `mfu_update` (a fraction), beside the per-part results and the library versions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

# the tests' tiny-model helpers (random vision tensors of the right shapes)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

RESULTS = Path(__file__).parent / "results" / "gpu_check.json"
LOGS: Path | None = None  # --logs: every accelerate launch's whole output is written here
REPO = Path(__file__).resolve().parent.parent

# The published Qwen2.5-VL-3B-Instruct configuration (text and vision widths).
SIZES_3B = {
    "text_hidden": 2048,
    "text_layers": 36,
    "text_heads": 16,
    "text_kv_heads": 2,
    "text_intermediate": 11008,
    "vision_hidden": 1280,
    "vision_depth": 32,
    "vision_heads": 16,
    "vision_intermediate": 3420,
}
VOCAB_3B = 151_936
# --tiny: the same code at test widths.
SIZES_TINY = {
    "text_hidden": 64, "text_layers": 2, "text_heads": 4, "text_kv_heads": 2, "text_intermediate": 128,
    "vision_hidden": 32, "vision_depth": 2, "vision_heads": 2, "vision_intermediate": 64,
}  # fmt: skip


def versions() -> dict[str, str]:
    import accelerate
    import transformers

    out = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }
    try:
        import deepspeed

        out["deepspeed"] = deepspeed.__version__
    except ImportError:
        out["deepspeed"] = "not installed"
    return out


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(0) if device == "cuda" else "cpu"


def peak_memory_gib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device: str, n: int, repeats: int = 10) -> float:
    """Measured dense bf16 FLOP/s of an n³ matmul (2n³ FLOPs each), best of `repeats`."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


# ---------------------------------------------------------------- part rl


def tiny_run_overrides(tiny: bool, out: Path, max_steps: int, dtype: str) -> list[str]:
    steps = ["sft.steps=2" if tiny else "sft.steps=50"]
    sizes = ["data.synth.n_train=8", "data.synth.n_eval=2", "rollout.prompts_per_step=1",
             "rollout.group_size=4", "train.micro_batch_size=4", "rollout.max_new_tokens=8",
             "train.eval_batch_size=2", "model.tiny_sizes.text_layers=1", "model.tiny_sizes.vision_depth=1",
             ] if tiny else ["data.synth.n_train=200", "data.synth.n_eval=16"]  # fmt: skip
    return [
        *steps, *sizes, f"model.dtype={dtype}", "model.attn_implementation=sdpa",
        "train.report_to=[]", f"train.max_steps={max_steps}",
        f"train.save_every={max(1, max_steps // 2)}",
        f"train.output_dir={out}",
    ]  # fmt: skip


def part_rl(device: str, tiny: bool, work: Path) -> dict:
    from deepvideo_r1.config import load_config
    from deepvideo_r1.metrics.logger import read_metrics
    from deepvideo_r1.pipeline import run_training
    from deepvideo_r1.presets import TINY_CPU

    steps = 4 if tiny else 20
    full, cut = work / "rl_full", work / "rl_cut"
    start = time.perf_counter()
    run_training(load_config(TINY_CPU, tiny_run_overrides(tiny, full, steps, "bfloat16")))
    seconds = time.perf_counter() - start
    run_training(load_config(TINY_CPU, tiny_run_overrides(tiny, cut, steps // 2, "bfloat16")))
    run_training(
        load_config(TINY_CPU, [*tiny_run_overrides(tiny, cut, steps, "bfloat16"), "train.resume=auto"])
    )
    a, b = read_metrics(full / "metrics.jsonl"), read_metrics(cut / "metrics.jsonl")
    a, b = ([r for r in x if "reward/mean" in r] for x in (a, b))  # RL steps (eval records have none)
    rewards_a, rewards_b = [r["reward/mean"] for r in a], [r["reward/mean"] for r in b]
    losses = [r["loss/total"] for r in a]
    return {
        "steps": steps,
        "seconds_full_run": round(seconds, 1),
        "losses_finite": all(x == x and abs(x) != float("inf") for x in losses),
        "rewards": rewards_a,
        "resume_rewards_equal": rewards_a == rewards_b,
        "max_abs_loss_diff_after_resume": max(
            abs(x["loss/total"] - y["loss/total"]) for x, y in zip(a, b, strict=True)
        ),
        "ok": rewards_a == rewards_b and all(x == x for x in losses),
    }


# ---------------------------------------------------------------- part step


def build_model(sizes: dict, vocab: int | None, device: str, tied: bool):
    """Random-init Qwen2.5-VL at `sizes` in bf16 on `device`, with the tiny preset's tokenizer."""
    from deepvideo_r1.models.adapter import ModelAdapter
    from deepvideo_r1.models.families import get_family
    from deepvideo_r1.models.tiny import TinySizes, tiny_config, train_tiny_tokenizer

    family = get_family("qwen2.5-vl")
    tokenizer = train_tiny_tokenizer(family)
    config = tiny_config(family, tokenizer, TinySizes(**sizes))
    if vocab is not None:
        config.text_config.vocab_size = vocab
    config.tie_word_embeddings = tied
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = family.model_cls()(config).to(torch.bfloat16)
    model.generation_config.eos_token_id = None  # random weights: always decode the full length
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, ModelAdapter(family, tokenizer)


def video_prompt(adapter, frames: int, side: int):
    """One SEED-Bench-R1-shaped prompt: `frames` frames and one image, both side×side."""
    from helpers import random_image, random_video

    fam = adapter.family
    grid = side // fam.patch_size
    video = random_video(fam, t=frames // fam.temporal_patch_size, h=grid, w=grid)
    image = random_image(fam, h=grid, w=grid)
    return adapter.build_prompt("Which option matches the video? A. x B. y C. z D. w", video, image)


def _timed(device: str, fn):
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


LAST_BATCH: dict[bool, tuple] = {}  # shared -> (policy, batch) of the last measure_step, for the profile


def _update(policy, batch):
    result = policy(batch)
    loss = -(result.logps * batch.completion_mask).sum() / batch.completion_mask.sum()
    loss.backward()
    return loss


def profile_update(model, device: str) -> dict:
    """Where one shared-prefix update's time goes: the vision tower's share (timed by hooks), the
    update without gradient checkpointing, the device's busy time and the top operators."""
    from torch.profiler import ProfilerActivity, profile

    from deepvideo_r1.models.vision import vision_tower

    policy, batch = LAST_BATCH[True]
    spans: list[float] = []
    tower = vision_tower(model)

    def enter(*_):
        _sync(device)
        spans.append(-time.perf_counter())

    def leave(*_):
        _sync(device)
        spans[-1] += time.perf_counter()

    hooks = [tower.register_forward_pre_hook(enter), tower.register_forward_hook(leave)]
    _, with_hooks_s = _timed(device, lambda: _update(policy, batch))
    for h in hooks:
        h.remove()
    model.zero_grad(set_to_none=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        _update(policy, batch)
        _sync(device)
    model.zero_grad(set_to_none=True)
    events = prof.key_averages()

    def device_us(e) -> float:
        return getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0))

    key = device_us if device == "cuda" else (lambda e: e.self_cpu_time_total)
    top = sorted(events, key=key, reverse=True)[:20]
    model.activation_checkpointing_disable()
    _update(policy, batch)  # warm-up without checkpointing
    model.zero_grad(set_to_none=True)
    _, plain_s = _timed(device, lambda: _update(policy, batch))
    model.zero_grad(set_to_none=True)
    return {
        "update_s_with_vision_hooks": round(with_hooks_s, 3),
        "vision_forward_s": round(sum(spans), 3),
        "vision_forward_calls": len(spans),
        "device_busy_s": round(sum(device_us(e) for e in events) / 1e6, 3),
        "update_s_without_checkpointing": round(plain_s, 3),
        "top_ops": [
            {"name": e.key[:80], "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 2),
             "self_device_ms": round(device_us(e) / 1e3, 2)}
            for e in top
        ],
    }  # fmt: skip


def measure_step(model, adapter, prompts, device: str, group: int, new: int, shared: bool) -> dict:
    """Rollout, old/ref log-prob and update seconds of one group, with or without the shared prefix."""
    from deepvideo_r1.models.batch import join_completions
    from deepvideo_r1.rollout import HFRolloutEngine, SamplingOptions
    from deepvideo_r1.training.policy import PolicyModule

    sampling = SamplingOptions(max_new_tokens=new, temperature=1.0)
    engine = HFRolloutEngine(model, adapter, sampling, shared_prefix=shared)
    engine.generate(prompts, group, seed=0)  # warm-up
    out, rollout_s = _timed(device, lambda: engine.generate(prompts, group, seed=1))
    batch = join_completions(prompts, out.completion_ids, out.completion_mask, group).to(device)
    policy = PolicyModule(model, chunk_size=512, shared_prefix=shared)
    LAST_BATCH[shared] = (policy, batch)
    new_tokens = int(out.completion_mask.sum())
    prompt_tokens = int(prompts.attention_mask.sum())
    # Tokens through the language model: P + G·C with the shared prefix, G·(P + C) without.
    tokens = prompt_tokens + new_tokens if shared else int(batch.attention_mask.sum())

    def logprobs():
        with torch.no_grad():
            return policy(batch).logps

    def update():
        return _update(policy, batch)

    logprobs()  # warm-up
    _, logprob_s = _timed(device, logprobs)
    update()  # warm-up
    model.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _, update_s = _timed(device, update)
    model.zero_grad(set_to_none=True)
    return {
        "new_tokens": new_tokens,
        "trained_tokens": tokens,
        "rollout_s": round(rollout_s, 3),
        "rollout_new_tokens_per_s": round(new_tokens / rollout_s, 1),
        "logprob_s": round(logprob_s, 3),
        "logprob_tokens_per_s": round(tokens / logprob_s, 1),
        "update_s": round(update_s, 3),
        "update_tokens_per_s": round(tokens / update_s, 1),
        "peak_memory_gib": round(peak_memory_gib(device), 2),
    }


def part_step(device: str, tiny: bool, profile: bool = False) -> dict:
    from deepvideo_r1.models.trainable import prepare_trainable

    sizes, vocab = (SIZES_TINY, None) if tiny else (SIZES_3B, VOCAB_3B)
    frames, side, group, new = (4, 56, 8, 16) if tiny else (16, 252, 8, 256)
    model, adapter = build_model(sizes, vocab, device, tied=not tiny)
    model = prepare_trainable(model, "none", None, True)  # vision frozen, gradient checkpointing
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    prompts = adapter.collate([video_prompt(adapter, frames, side)]).to(device)
    paths = {
        name: measure_step(model, adapter, prompts, device, group, new, shared)
        for name, shared in (("shared_prefix", True), ("repeated_prompt", False))
    }
    rate = matmul_rate(device, 512 if tiny else 8192)
    for result in paths.values():
        # The trained tokens are what each path computes; MFU counts the model FLOPs it needs.
        result["mfu_update"] = 6 * trainable * result["trained_tokens"] / result["update_s"] / rate
    main = paths["shared_prefix"]
    extra = {"profile": profile_update(model, device)} if profile else {}
    return {
        "sizes": sizes,
        "vocab": vocab,
        "trainable_parameters": trainable,
        "prompt_tokens": int(prompts.attention_mask.sum()),
        "group_size": group,
        **main,
        "paths": paths,
        "matmul_bf16_flops": rate,
        **extra,
        "ok": True,
    }


# ---------------------------------------------------------------- part sharded

DIGIT_REWARD = """
def digit_share(completion, sample):
    return sum(c.isdigit() for c in completion) / max(1, len(completion))
"""


def _launch(args: list[str], run: Path, overrides: list[str], timeout: int) -> tuple[int, str]:
    port = str(random.randint(20000, 40000))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *args, "--main_process_port", port,
           "-m", "deepvideo_r1", "train", "-o", str(run),
           *[a for o in overrides for a in ("--set", o)]]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    text = done.stdout + done.stderr
    if LOGS is not None:
        LOGS.mkdir(parents=True, exist_ok=True)
        n = len(list(LOGS.iterdir()))
        (LOGS / f"launch{n}_{run.name}.log").write_text(" ".join(cmd) + "\n\n" + text)
    # The child's traceback comes before the launcher's own: report it, not the launcher's.
    start = text.find("Traceback (most recent call last)")
    return done.returncode, text[start : start + 3000] if start >= 0 else text[-3000:]


def sharded_case(
    name: str,
    launch: list[str],
    extra: list[str],
    tiny: bool,
    work: Path,
    timeout: int,
    resume: bool = True,
) -> dict:
    """Train N steps (generation, a checkpoint at N/2, final_model, which must load); with `resume`,
    a second run cut at N/2 and resumed must log the same rewards. DeepSpeed runs cannot resume
    (their checkpoints hold no ZeRO optimizer state), so that case trains and exports only."""
    from deepvideo_r1.metrics.logger import read_metrics
    from deepvideo_r1.models.adapter import load_policy

    steps, dtype = 4, "float32" if tiny else "bfloat16"
    full, cut = work / f"{name}_full", work / f"{name}_cut"
    reward = work / "digits.py"  # a learnable content-free reward: non-zero rewards from step 1
    reward.write_text(DIGIT_REWARD)
    base = [o for o in tiny_run_overrides(True, full, steps, dtype) if not o.startswith("train.output_dir")]
    base += [f"algo.reward_weights={{'{reward}:digit_share': 1.0}}", "sft.steps=0", "train.lr=1e-2"]
    rc, log = _launch(launch, full, [*base, *extra], timeout)
    if rc != 0:
        return {"ok": False, "error": log}
    model, _ = load_policy(full / "final_model")
    a = [r for r in read_metrics(full / "metrics.jsonl") if "reward/mean" in r]  # RL steps only
    result = {
        "rewards": [r["reward/mean"] for r in a],
        "losses": [r["loss/total"] for r in a],
        "final_model_parameters": sum(p.numel() for p in model.parameters()),
        "checkpoint_files": sorted(p.name for p in (full / "checkpoints").glob("*/*.safetensors")),
    }
    if not resume:
        return {**result, "ok": bool(result["rewards"] and result["checkpoint_files"])}
    cut_base = [o.replace(f"train.max_steps={steps}", f"train.max_steps={steps // 2}") for o in base]
    rc, log = _launch(launch, cut, [*cut_base, *extra], timeout)
    if rc != 0:
        return {**result, "ok": False, "error": log}
    rc, log = _launch(launch, cut, [*base, "train.resume=auto", *extra], timeout)
    if rc != 0:
        return {**result, "ok": False, "error": log}
    b = [r for r in read_metrics(cut / "metrics.jsonl") if "reward/mean" in r]
    equal = result["rewards"] == [r["reward/mean"] for r in b]
    return {**result, "ok": equal, "resume_rewards_equal": equal}


def _case(fn) -> dict:
    """One sharded case; its failure is recorded and the next case still runs."""
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as e:
        result = {
            "ok": False,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc()[-3000:],
        }
    return {**result, "wall_s": round(time.perf_counter() - start, 1)}


def part_sharded(device: str, tiny: bool, work: Path) -> dict:
    if device == "cpu":
        fsdp = _case(lambda: sharded_case(
            "fsdp2_cpu", ["--cpu", "--num_processes", "2"], ["train.fsdp=true"], tiny, work, 900
        ))  # fmt: skip
        skipped = {"ok": None, "skipped": "DeepSpeed needs an accelerator"}
        return {"fsdp2": fsdp, "deepspeed_zero3": skipped, "ok": bool(fsdp.get("ok"))}
    fsdp_args = ["--num_processes", "1", "--use_fsdp", "--fsdp_version", "2", "--mixed_precision", "bf16"]
    zero3 = str(REPO / "configs" / "accelerate" / "multi_node_deepspeed_zero3.yaml")
    ds_args = ["--config_file", zero3, "--num_processes", "1", "--num_machines", "1", "--machine_rank", "0"]
    fsdp = _case(lambda: sharded_case("fsdp2", fsdp_args, [], tiny, work, 120))
    zero = _case(lambda: sharded_case("zero3", ds_args, [], tiny, work, 120, resume=False))
    return {"fsdp2": fsdp, "deepspeed_zero3": zero, "ok": bool(fsdp.get("ok") and zero.get("ok"))}


# ---------------------------------------------------------------- main


def run_part(name: str, fn) -> dict:
    start = time.perf_counter()
    try:
        result = fn()
    except Exception as e:  # one part's failure is a result, not the end of the check
        result = {
            "ok": False,
            "error": f"{type(e).__name__}: {e}",
            "traceback": traceback.format_exc()[-3000:],
        }
    result["wall_s"] = round(time.perf_counter() - start, 1)
    print(f"{name:8s} ok={result.get('ok')} ({result['wall_s']} s)", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--tiny", action="store_true", help="test widths and sizes (the CPU dry run)")
    parser.add_argument("--parts", default="rl,step,sharded")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--logs", type=Path, help="write each accelerate launch's output here")
    parser.add_argument("--profile", action="store_true", help="step: where the update's time goes")
    args = parser.parse_args()
    global LOGS
    LOGS = args.logs
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    runners = {
        "rl": lambda: part_rl(args.device, args.tiny, work),
        "step": lambda: part_step(args.device, args.tiny, args.profile),
        "sharded": lambda: part_sharded(args.device, args.tiny, work),
    }
    report = {"device": device_name(args.device), "mfu_update": None, "tiny": args.tiny,
              "versions": versions(), "parts": {}}  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for name in args.parts.split(","):
        report["parts"][name] = run_part(name, runners[name])
        report["mfu_update"] = report["parts"].get("step", {}).get("mfu_update")
        args.json.write_text(json.dumps(report, indent=2))  # after each part: a timeout keeps the rest
    step = report["parts"].get("step", {})
    if step.get("ok"):
        print(
            f"update MFU {step['mfu_update']:.1%}, rollout {step['rollout_new_tokens_per_s']} new tokens/s, "
            f"update {step['update_tokens_per_s']} tokens/s, peak {step['peak_memory_gib']} GiB"
        )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
