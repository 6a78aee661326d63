"""The summary of a finished run: the paired change of held-out accuracy, the last line `train`
prints, and the wall time kept when a finished run is only re-run."""

from __future__ import annotations

import json
from pathlib import Path

from deepvideo_r1.config import RunConfig
from deepvideo_r1.evaluation.evaluate import EvalReport
from deepvideo_r1.metrics.stats import paired_difference
from deepvideo_r1.training.resume import ResumePlan


def summary_line(summary: dict, run_dir: str | Path) -> str:
    """The run's last line: accuracy before -> after and the change with its 95 % interval (points,
    one decimal each), steps, processes, seconds, and where the run and its plots are."""
    change = summary.get("eval_change")
    if summary.get("eval_accuracy_after") is None:
        result = "no held-out evaluation"
    else:
        a, b = 100 * summary["eval_accuracy_before"], 100 * summary["eval_accuracy_after"]
        result = f"held-out accuracy {a:.1f} % -> {b:.1f} %"
        if change is not None:
            result += f", change {100 * change['mean']:+.1f} points"
            if change["ci95"] is not None:
                low, high = (100 * x for x in change["ci95"])
                result += f" (95 % interval {low:+.1f} to {high:+.1f}, {change['n']} paired samples)"
    run = f"{summary['steps']} RL steps, {summary['world_size']} process(es), {summary['wall_seconds']:.0f} s"
    where = f"run {run_dir}, plots {Path(run_dir) / 'plots'}"
    return f"done: {result}; {run}; {where}"


def accuracy_change(before: EvalReport | None, after: EvalReport | None) -> dict | None:
    """After - before accuracy, paired over the held-out samples both scored: mean, 95 % t-interval
    of the per-sample differences, and how many samples (None without both evaluations)."""
    if before is None or after is None or not before.scores:
        return None
    mean, interval, ids = paired_difference(after.scores, before.scores)
    return {"mean": mean, "ci95": list(interval) if interval else None, "n": len(ids)}


def finished_run_seconds(cfg: RunConfig, resume: ResumePlan) -> float | None:
    """The earlier summary's wall_seconds when this process only re-ran a finished run (resumed at
    train.max_steps: no step taken), so the summary keeps the time the training took."""
    path = Path(cfg.train.output_dir) / "summary.json"
    at_end = resume.checkpoint is not None and resume.checkpoint.name == f"checkpoint-{cfg.train.max_steps}"
    if not at_end or not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("wall_seconds")
    except (OSError, ValueError):
        return None
