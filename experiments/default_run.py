"""The embedded default run over several seeds: held-out accuracy
before and after RL, wall time and peak memory, against the targets (≤ 10 minutes, ≥ +5 points).

    python experiments/default_run.py [--seeds 0 1 2 3 4] [--root runs/bench_default] [--set KEY=VALUE ...]
    python experiments/default_run.py --collect --root ROOT   # recompute the numbers, keep the timings
    python experiments/default_run.py --out OTHER.json ...    # write elsewhere (trials of other settings)

Each seed runs `deepvideo-r1 train -o ROOT/seed-S --seed S --set data.synth.seed=S` in a fresh
directory (removed first), one seed after another, so the timings are of a whole run from nothing:
data generation, the warm start (installed from the package with the preset's `sft.shipped`, or
trained), both evaluations, RL, plots. Run it alone on the machine.
Writes experiments/results/default_run.json (or --out) after every seed (a finished seed is kept if a
later one fails), with each evaluation's 95 % interval, the paired interval of the change (the same held-out
clips before and after), the library versions and the CPU, and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import accelerate
import torch
import transformers

from deepvideo_r1.ablations.report import RUN_MEANS, rescued_fractions, run_mean
from deepvideo_r1.config import load_config
from deepvideo_r1.metrics.logger import read_metrics
from deepvideo_r1.metrics.stats import paired_difference
from deepvideo_r1.presets import TINY_CPU
from deepvideo_r1.presets.warm_start import read_recipe

RESULTS = Path(__file__).parent / "results" / "default_run.json"
TARGET_SECONDS = 600.0
TARGET_GAIN_POINTS = 5.0


def run_seed(root: Path, seed: int, overrides: list[str]) -> dict:
    """One whole default run; returns its numbers, wall time and the child's peak RSS."""
    out = root / f"seed-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "deepvideo_r1", "train", "-o", str(out), "--seed", str(seed)]
    cmd += ["--set", f"data.synth.seed={seed}"]
    for item in overrides:
        cmd += ["--set", item]
    start = time.perf_counter()
    with open(root / f"seed-{seed}.log", "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not all children's
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"seed {seed}: the run failed, see {root / f'seed-{seed}.log'}")
    timing = {"wall_seconds": wall, "peak_rss_gib": usage.ru_maxrss / 2**20}  # Linux reports KiB
    return {"seed": seed} | run_numbers(out) | timing


def run_numbers(out: Path) -> dict:
    """A finished run's held-out accuracies (with intervals) and what the augmentation did."""
    summary = json.loads((out / "summary.json").read_text())
    before, after = summary["eval_accuracy_before"], summary["eval_accuracy_after"]
    _, diff, _ = paired_difference(_scores(out / "eval_after"), _scores(out / "eval_before"))
    records = read_metrics(out / "metrics.jsonl")
    run_means = {name: run_mean(records, key) for name, key in RUN_MEANS.items()}
    return (
        {
            "n_eval": summary["eval_after"]["n_labelled"],
            "eval_accuracy_before": before,
            "eval_before_ci95": summary["eval_before"]["ci95"],
            "eval_accuracy_after": after,
            "eval_after_ci95": summary["eval_after"]["ci95"],
            "gain_points": 100 * (after - before),
            "gain_ci95_points": [100 * x for x in diff] if diff else None,
            "per_task_before": {k: v["accuracy"] for k, v in summary["eval_before"]["per_category"].items()},
            "per_task_after": {k: v["accuracy"] for k, v in summary["eval_after"]["per_category"].items()},
            "steps": summary["steps"],
        }
        | run_means
        | rescued_fractions(records)
    )


def _scores(eval_dir: Path) -> dict[str, float]:
    """Per-sample held-out scores of one evaluation, by sample id."""
    with open(eval_dir / "predictions.jsonl", encoding="utf-8") as f:
        return {r["id"]: r["score"] for r in map(json.loads, f) if "score" in r}


def machine() -> dict:
    """Where the numbers were measured: CPU, cores, platform and the library versions."""
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }


def warm_start(overrides: list[str]) -> dict:
    """Which warm start the runs started from: the shipped one (its SHA-256 and build) or trained."""
    if not load_config(TINY_CPU, overrides).sft.shipped:
        return {"shipped": False}
    recipe = read_recipe()
    weights = recipe["sha256"]["model.safetensors"]
    return {"shipped": True, "sha256": weights, "built_with": recipe["built_with"]}


def write_results(overrides: list[str], rows: list[dict], path: Path = RESULTS) -> None:
    """The results file with the seeds finished so far."""
    for row in rows:
        row["within_time"] = row["wall_seconds"] <= TARGET_SECONDS
        row["gain_met"] = row["gain_points"] >= TARGET_GAIN_POINTS
    result = {
        "benchmark": "default_run",
        "targets": {"wall_seconds": TARGET_SECONDS, "gain_points": TARGET_GAIN_POINTS},
        "overrides": overrides,
        "machine": machine(),
        "warm_start": warm_start(overrides),
        "runs": rows,
        "all_within_time": all(r["within_time"] for r in rows),
        "all_gain_met": all(r["gain_met"] for r in rows),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--root", default="runs/bench_default", help="where the run directories go")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    parser.add_argument(
        "--collect",
        action="store_true",
        help="recompute the run numbers of the seeds in the results file from ROOT (keeps their timings)",
    )
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    if args.collect:
        saved = json.loads(args.out.read_text())
        timings = ("seed", "wall_seconds", "peak_rss_gib")
        rows = [{k: r[k] for k in timings} | run_numbers(root / f"seed-{r['seed']}") for r in saved["runs"]]
        args.overrides = saved["overrides"]
    for seed in [] if args.collect else args.seeds:
        rows.append(run_seed(root, seed, args.overrides))
        write_results(args.overrides, rows, args.out)
    write_results(args.overrides, rows, args.out)
    print(
        f"{'seed':>4}  {'SFT':>6}  {'RL':>6}  {'change [95 % CI]':>18}  {'wall':>6}  {'peak RSS':>8}  targets"
    )
    for r in rows:
        marks = f"time {'ok' if r['within_time'] else 'MISSED'}, gain {'ok' if r['gain_met'] else 'MISSED'}"
        ci = r["gain_ci95_points"]
        ci_text = f"[{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else ""
        print(
            f"{r['seed']:>4}  {100 * r['eval_accuracy_before']:5.1f}%  {100 * r['eval_accuracy_after']:5.1f}%"
            f"  {r['gain_points']:+5.1f} {ci_text:>12}  {r['wall_seconds']:5.0f}s"
            f"  {r['peak_rss_gib']:6.2f}GiB  {marks}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
