"""Rollout with the vision tower run once per prompt (shared) vs once per completion (naive, what
peers do by repeating each prompt G times), on the tiny preset model.

    python benchmarks/rollout.py [--prompts 4 --group 8 --frames 16 --side 112 --new-tokens 16]

Writes benchmarks/results/rollout.json (vision_calls_per_prompt, speedup_vs_repeated, …) and prints
a table. Greedy decoding, so both paths must produce the same tokens (checked).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from deepvideo_r1.models import load_policy, make_tiny_model
from deepvideo_r1.rollout import HFRolloutEngine, SamplingOptions

# the tests' tiny-model helpers (random vision tensors of the right shapes)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import random_video

RESULTS = Path(__file__).parent / "results" / "rollout.json"


def _time(engine: HFRolloutEngine, batch, group: int, repeats: int):
    """Median total and vision-tower seconds over `repeats` calls, and the last result."""
    totals, vision, result = [], [], engine.generate(batch, group)  # warm-up call, not timed
    for _ in range(repeats):
        start = time.perf_counter()
        result = engine.generate(batch, group)
        totals.append(time.perf_counter() - start)
        vision.append(result.timing["rollout/vision_s"])
    return statistics.median(totals), statistics.median(vision), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--side", type=int, default=112, help="frame side in pixels (multiple of 28)")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model, ad = load_policy(make_tiny_model(tmp, family="qwen2.5-vl", seed=0))
    grid = (args.frames // 2, args.side // 14, args.side // 14)
    prompts = [
        ad.build_prompt(f"Question {i}: which colour is the square?", random_video(ad.family, *grid, seed=i))
        for i in range(args.prompts)
    ]
    batch = ad.collate(prompts)
    greedy = SamplingOptions(max_new_tokens=args.new_tokens, temperature=0.0)
    shared_s, shared_vis, shared = _time(
        HFRolloutEngine(model, ad, greedy, shared_prefix=False), batch, args.group, args.repeats
    )
    naive_engine = HFRolloutEngine(model, ad, greedy, shared_vision=False, shared_prefix=False)
    naive_s, naive_vis, naive = _time(naive_engine, batch, args.group, args.repeats)
    report = {
        "model": "tiny qwen2.5-vl (text 128×4, vision 128×2)",
        "prompts": args.prompts,
        "group_size": args.group,
        "frames": args.frames,
        "frame_side": args.side,
        "video_tokens_per_prompt": int(torch.tensor(grid).prod()) // 4,
        "max_new_tokens": args.new_tokens,
        "shared_s": round(shared_s, 4),
        "repeated_s": round(naive_s, 4),
        "speedup_vs_repeated": round(naive_s / shared_s, 3),
        "shared_vision_s": round(shared_vis, 4),
        "repeated_vision_s": round(naive_vis, 4),
        "vision_speedup": round(naive_vis / shared_vis, 3),
        "vision_calls_per_prompt": shared.vision_items / args.prompts,
        "repeated_vision_calls_per_prompt": naive.vision_items / args.prompts,
        "same_tokens": bool(torch.equal(shared.completion_ids, naive.completion_ids)),
        "device": f"CPU, {args.threads} torch thread(s)",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print("| path | vision encodings / prompt | vision-tower s | rollout s (median) |\n|---|---|---|---|")
    print(f"| shared (ours) | {report['vision_calls_per_prompt']:.0f} | {shared_vis:.3f} | {shared_s:.3f} |")
    naive_calls = report["repeated_vision_calls_per_prompt"]
    print(f"| repeated (naive) | {naive_calls:.0f} | {naive_vis:.3f} | {naive_s:.3f} |")
    print(f"speedup {report['speedup_vs_repeated']:.2f}×, same tokens: {report['same_tokens']}")


if __name__ == "__main__":
    main()
