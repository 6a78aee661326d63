"""One RL step of this library against TRL's GRPOTrainer on the same model, task and settings.

    pip install -e '.[bench]'                  # TRL, only for this script
    python benchmarks/vs_trl.py [--steps 21 --repeats 3 --json OUT] [--smoke]

Both sides train the identical tiny random-init Qwen2.5-VL (written once to a temp dir) on an
image multiple-choice task (TRL takes no video): 2 prompts × G = 8 completions × 32 new tokens per
optimizer step, sampling at temperature 1, beta 0 (no reference model), one update per rollout
(num_iterations 1), dapo loss, format + accuracy rewards, AdamW at the same constant learning rate,
vision tower frozen, gradient checkpointing on (both libraries' default), fp32 on CPU, 1 torch
thread. Each run is its own subprocess; runs alternate ours / TRL, `--repeats` times each. The
first step of every run is a warm-up and not counted.

Per run: seconds per optimizer step, the generation part (ours: draw + encode + rollout + rewards;
TRL: `_generate_and_score_completions`), the update part (the rest: forward, backward, optimizer),
vision-tower calls and images encoded per step (a forward hook on the tower) and the child's peak
RSS. Writes benchmarks/results/vs_trl.json (`speedup_vs_trl` = TRL's median s/step ÷ ours) and
prints a table. `--smoke` runs 2 steps once per side and writes nothing unless `--json` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from vs_trl_sides import GROUP, IMAGE_SIDE, LR, NEW_TOKENS, PROMPTS, SEED, WORKERS, make_task

RESULTS = Path(__file__).parent / "results" / "vs_trl.json"
SIDES = ("ours", "trl")


# ---- pure helpers (tested) -------------------------------------------------------------------
def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of a non-empty list."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def side_summary(runs: list[dict]) -> dict:
    """Pool the measured steps (warm-up dropped by the worker) of one side's runs.

    runs: [{"steps": [{"step_s", "generate_s", "update_s", "vision_calls", "vision_images"}, …],
            "peak_rss_gib": float}, …]
    """
    steps = [s for r in runs for s in r["steps"]]
    if not steps:
        raise ValueError("no measured steps: run at least 2 steps per run (the first is a warm-up)")
    return {
        "runs": len(runs),
        "measured_steps": len(steps),
        "step_s": spread([s["step_s"] for s in steps]),
        "generate_s": spread([s["generate_s"] for s in steps]),
        "update_s": spread([s["update_s"] for s in steps]),
        "run_median_step_s": [statistics.median(s["step_s"] for s in r["steps"]) for r in runs],
        "vision_calls_per_step": statistics.median(s["vision_calls"] for s in steps),
        "vision_images_per_step": statistics.median(s["vision_images"] for s in steps),
        "completion_tokens_per_step": statistics.median(s["completion_tokens"] for s in steps),
        "peak_rss_gib": max(r["peak_rss_gib"] for r in runs),
    }


def speedup(summary: dict) -> float:
    """TRL's median seconds per step ÷ ours (> 1: ours is faster)."""
    return summary["trl"]["step_s"]["median"] / summary["ours"]["step_s"]["median"]


def table(summary: dict) -> str:
    """A markdown table of the two sides."""
    lines = [
        "| side | s/step median (min–max) | generation s | update s | vision calls / images per step"
        " | peak RSS GiB |",
        "|---|---|---|---|---|---|",
    ]
    for side in SIDES:
        s = summary[side]
        st = s["step_s"]
        lines.append(
            f"| {side} | {st['median']:.3f} ({st['min']:.3f}–{st['max']:.3f})"
            f" | {s['generate_s']['median']:.3f} | {s['update_s']['median']:.3f}"
            f" | {s['vision_calls_per_step']:g} / {s['vision_images_per_step']:g} | {s['peak_rss_gib']:.2f} |"
        )
    return "\n".join(lines)


def worker_main(side: str, model_dir: Path, data: Path, steps: int, out: Path) -> None:
    """Run one side in this process and write its per-step records (warm-up dropped) to `out`."""
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        records = WORKERS[side](model_dir, data, steps, Path(work))
    out.write_text(json.dumps({"side": side, "steps": records[1:], "warmup": records[:1]}))


def run_child(side: str, model_dir: Path, data: Path, steps: int, out: Path) -> dict:
    """One side in a fresh subprocess; its records plus the child's own peak RSS (wait4 rusage)."""
    cmd = [sys.executable, __file__, "--worker", side, "--model-dir", str(model_dir), "--data", str(data)]
    cmd += ["--steps", str(steps), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(out.with_suffix(".log"), "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{side} run failed:\n{out.with_suffix('.log').read_text()[-3000:]}")
    record = json.loads(out.read_text())
    record["peak_rss_gib"] = usage.ru_maxrss / 2**20  # Linux reports KiB
    return record


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("torch", "transformers", "accelerate", "trl", "deepvideo-r1")}


def compare(steps: int, repeats: int) -> dict:
    """Alternate ours / TRL `repeats` times in fresh subprocesses on one saved model and task."""
    from deepvideo_r1.models.tiny import TinySizes, make_tiny_model

    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = make_tiny_model(root / "model", family="qwen2.5-vl", seed=SEED)
        data = make_task(root)
        for k in range(repeats):
            for side in SIDES if k % 2 == 0 else SIDES[::-1]:  # alternate which side goes first
                runs[side].append(run_child(side, model_dir, data, steps, root / f"{side}-{k}.json"))
    summary = {side: side_summary(runs[side]) for side in SIDES}
    return {
        "benchmark": "vs_trl",
        "speedup_vs_trl": round(speedup(summary), 3),
        "model": f"tiny random-init qwen2.5-vl, preset sizes {TinySizes()}",
        "task": f"image multiple choice, {IMAGE_SIDE}×{IMAGE_SIDE} images "
        f"({(IMAGE_SIDE // 28) ** 2} image tokens per prompt)",
        "settings": {
            "prompts_per_step": PROMPTS,
            "group_size": GROUP,
            "max_new_tokens": NEW_TOKENS,
            "temperature": 1.0,
            "beta": 0.0,
            "num_iterations": 1,
            "loss": "dapo",
            "lr": LR,
            "vision": "frozen",
            "gradient_checkpointing": True,
            "dtype": "float32",
            "torch_threads": 1,
            "steps_per_run": steps,
            "warmup_steps_dropped": 1,
            "runs_per_side": repeats,
        },
        "versions": versions(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "summary": summary,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=21, help="optimizer steps per run (first = warm-up)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side, alternated")
    parser.add_argument("--json", type=Path, default=None, help=f"output file (default {RESULTS})")
    parser.add_argument("--notes", default="", help="free text stored in the JSON (e.g. machine load)")
    parser.add_argument("--smoke", action="store_true", help="2 steps, 1 run per side, no default JSON")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker, args.model_dir, args.data, args.steps, args.out)
        return
    steps, repeats = (2, 1) if args.smoke else (args.steps, args.repeats)
    result = compare(steps, repeats)
    result["notes"] = args.notes
    out = args.json or (None if args.smoke else RESULTS)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    print(table(result["summary"]))
    print(f"speedup vs TRL (TRL median s/step ÷ ours): {result['speedup_vs_trl']:.2f}×")


if __name__ == "__main__":
    main()
