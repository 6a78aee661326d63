"""Whole RL steps of the embedded default with the shared prefix on and off: `rl_step` seconds
(rollout + rewards + difficulty + old/ref log-probs + update), on CPU.

The tiny_cpu preset (tiny Qwen2.5-VL, 16 prompts × G = 8 of 8 frames at 56 px, 64 new tokens,
Reg-GRPO with beta 0.04, difficulty augmentation, vision trained) is built once: synthetic data, the
tiny model and a short SFT warm start (`--sft-steps`, 50 by default instead of the preset's 700, so
completions have the trained format but not its final lengths). Two run contexts are then built from
the same saved weights, one per `model.shared_prefix` setting, and stepped alternately in one
process (step s: repeated then shared, step s + 1: shared then repeated), so load from other jobs
hits both alike. Both draw the same prompts with the same seeds; their weights differ only by
rounding, so their rollouts, and the work per step, match (mean completion length is reported per
path). The frame cache is filled for every prompt the steps will draw before any timing.

    python benchmarks/shared_prefix_step.py [--json OUT] [--warmup 3] [--steps 5] [--sft-steps 50]

Writes benchmarks/results/shared_prefix_step.json (step_speedup: repeated median / shared median,
and per path the medians and min-max of step, rollout, log-prob and update seconds) and prints a
table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from deepvideo_r1.config import RunConfig, load_config
from deepvideo_r1.pipeline import load_model, media_loader, prepare_data, prepare_model_dir, sft_stage
from deepvideo_r1.presets import TINY_CPU
from deepvideo_r1.training.context import RunContext, build_context
from deepvideo_r1.training.sampler import PromptSampler
from deepvideo_r1.training.step import rl_step

RESULTS = Path(__file__).parent / "results" / "shared_prefix_step.json"
PRESET_SFT_STEPS = load_config(TINY_CPU).sft.steps
PATHS = ("repeated", "shared")
# rl_step metrics kept per step: name in the table -> metric key
SPLITS = {
    "rollout_s": "perf/collect_s",
    "logprob_s": "perf/logprob_s",
    "completion_len": "perf/completion_len",
}


def path_order(step: int) -> tuple[str, str]:
    """Which path runs first at `step` (1-based): repeated first on odd steps, shared on even."""
    return PATHS if step % 2 == 1 else PATHS[::-1]


def summarize(values: list[float]) -> dict[str, float]:
    """Median and range of a list of seconds (or lengths), rounded for the table."""
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def drawn_indices(num_samples: int, seed: int, per_step: int, steps: int) -> list[int]:
    """Every dataset index the RL sampler draws in `steps` steps of `per_step` prompts (one rank)."""
    sampler = PromptSampler(num_samples, seed=seed)
    return sorted({i for _ in range(steps) for i in sampler.next_batch(per_step)})


def build_contexts(cfg: RunConfig, sft_steps: int) -> dict[str, RunContext]:
    """Data, tiny model and SFT once; then one RunContext per path from the same weights."""
    accelerator = Accelerator(cpu=True)
    set_seed(cfg.train.seed)
    data = prepare_data(cfg, accelerator)
    model_dir = prepare_model_dir(cfg, accelerator)
    if sft_steps > 0:
        t0 = time.perf_counter()
        model_dir = sft_stage(cfg, model_dir, data, accelerator)
        print(f"SFT warm start: {sft_steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
    contexts = {}
    for path in PATHS:
        cfg_p = cfg.model_copy(
            update={"model": cfg.model.model_copy(update={"shared_prefix": path == "shared"})}
        )
        model, adapter = load_model(cfg_p, model_dir, accelerator)
        set_seed(cfg.train.seed)
        contexts[path] = build_context(
            cfg_p, accelerator, model, adapter, data.train, media_loader(cfg_p, adapter)
        )
    return contexts


def run_steps(contexts: dict[str, RunContext], warmup: int, steps: int) -> dict[str, list[dict]]:
    """Alternated rl_step calls; per path, one record (seconds and splits) per timed step."""
    records: dict[str, list[dict]] = {p: [] for p in PATHS}
    for step in range(1, warmup + steps + 1):
        for path in path_order(step):
            t0 = time.perf_counter()
            metrics = rl_step(contexts[path], step).metrics
            seconds = time.perf_counter() - t0
            record = {"step_s": seconds} | {k: metrics[m] for k, m in SPLITS.items()}
            record["update_s"] = metrics["perf/update_s"] - metrics["perf/logprob_s"]
            kind = "warm-up" if step <= warmup else "timed"
            print(
                f"step {step} ({kind}) {path}: {seconds:.2f} s, {record['completion_len']:.1f} tokens",
                flush=True,
            )
            if step > warmup:
                records[path].append(record)
    return records


def report(
    records: dict[str, list[dict]], args: argparse.Namespace, cfg: RunConfig, load: list[float]
) -> dict:
    """The JSON report: per-path summaries, speedups (repeated median / shared median), setup;
    `load`: the 1-minute load average at the start and the end of the stepping."""
    out: dict = {"paths": {}}
    for path in PATHS:
        keys = records[path][0].keys()
        out["paths"][path] = {k: summarize([r[k] for r in records[path]]) for k in keys}
    rep, sh = out["paths"]["repeated"], out["paths"]["shared"]
    out["step_speedup"] = round(rep["step_s"]["median"] / sh["step_s"]["median"], 3)
    for k in ("rollout_s", "logprob_s", "update_s"):
        out[k.replace("_s", "_speedup")] = round(rep[k]["median"] / sh[k]["median"], 3)
    lengths = {p: [r["completion_len"] for r in records[p]] for p in PATHS}
    out["same_completion_lengths"] = lengths["repeated"] == lengths["shared"]  # step by step
    r = cfg.rollout
    out["setup"] = {
        "preset": "tiny_cpu",
        "prompts_per_step": r.prompts_per_step,
        "group_size": r.group_size,
        "max_new_tokens": r.max_new_tokens,
        "micro_batch_size": cfg.train.micro_batch_size,
        "sft_steps": args.sft_steps,
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "threads": args.threads,
        "load_average_1min_start_end": load,
    }
    out["notes"] = (
        f"median (min-max) of {args.steps} timed rl_step calls per path after {args.warmup} warm-up "
        "calls, the two paths alternated step by step in one process on a 2-core CPU shared with "
        f"other jobs; fp32, {args.threads} torch thread(s). Completions come from the tiny model after "
        f"a {args.sft_steps}-step SFT warm start (not the preset's {PRESET_SFT_STEPS}), sampled at the "
        "preset's temperature. rollout_s = perf/collect_s (rollouts, rewards, difficulty re-rolls); "
        "update_s = perf/update_s minus the old/ref log-probs."
    )
    return out


def print_table(out: dict) -> None:
    cols = ("step_s", "rollout_s", "logprob_s", "update_s", "completion_len")
    print("| path | step s | rollout s | old/ref log-probs s | update s | mean completion tokens |")
    print("|---|---|---|---|---|---|")
    for path in PATHS:
        row = out["paths"][path]
        cells = [f"{row[c]['median']} ({row[c]['min']}–{row[c]['max']})" for c in cols]
        print(f"| {path} | " + " | ".join(cells) + " |")
    speed = [f"{out[k]}×" for k in ("step_speedup", "rollout_speedup", "logprob_speedup", "update_speedup")]
    print("| speedup | " + " | ".join(speed) + " | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per path")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per path")
    parser.add_argument("--sft-steps", type=int, default=50, help="SFT warm start (0: random-init model)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier when shared)")
    parser.add_argument("--root", type=Path, default=None, help="run directory (default: a temporary one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp)
        cfg = load_config(TINY_CPU, [f"train.output_dir={root}", f"sft.steps={args.sft_steps}"])
        contexts = build_contexts(cfg, args.sft_steps)
        load = [round(os.getloadavg()[0], 2)]
        ctx = contexts["repeated"]
        total = args.warmup + args.steps
        for i in drawn_indices(len(ctx.dataset), cfg.train.seed, cfg.rollout.prompts_per_step, total):
            ctx.media(ctx.dataset[i])  # fill the shared frame cache: no path pays first decodes
        records = run_steps(contexts, args.warmup, args.steps)
        load.append(round(os.getloadavg()[0], 2))
        out = report(records, args, cfg, load)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print_table(out)


if __name__ == "__main__":
    main()
