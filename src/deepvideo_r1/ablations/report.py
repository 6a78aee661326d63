"""ablations.json, ablations.md and the plots, from the finished row × seed results.

Per row: held-out accuracy per seed, its mean with a 95 % t-interval, the paired difference to the
table's baseline (same seeds) with its interval, per-task accuracy, the run means of the
vanishing ratio before / after augmentation and of the rescued fraction, and the wall time.
"""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path

from deepvideo_r1.ablations.layout import (
    WARM_FILE,
    AblationError,
    BaseSpec,
    read_result,
    result_path,
    row_key,
    warm_dir,
)
from deepvideo_r1.ablations.rows import Row, Table
from deepvideo_r1.artifacts import DamagedFileError, read_json_object, write_json_atomic
from deepvideo_r1.difficulty.effect import pooled_fractions
from deepvideo_r1.metrics.logger import read_metrics
from deepvideo_r1.metrics.stats import mean, paired_difference, t_interval

RUN_MEANS = {
    "vanishing_ratio_before": "adv/vanishing_ratio_before",
    "vanishing_ratio_after": "adv/vanishing_ratio_after",
    "grad_norm": "perf/grad_norm",
    "hinted_accuracy_before": "difficulty/hinted_accuracy_before",
    "hinted_accuracy_after": "difficulty/hinted_accuracy_after",
    "noised_accuracy_before": "difficulty/noised_accuracy_before",
    "noised_accuracy_after": "difficulty/noised_accuracy_after",
    "clip_frac": "loss/clip_frac",
    "outside_clip_frac": "drift/outside_clip_frac",
    "kl_to_rollout": "drift/kl_to_rollout",
    "adv_logratio_corr": "drift/adv_logratio_corr",
    "guide_level_mean": "augment/decrease_level_mean",
    "perturb_level_mean": "augment/increase_level_mean",
}
# run means every row reports (mean over its seeds; null when the run never logged one)
ROW_MEANS = (
    "grad_norm", "clip_frac", "outside_clip_frac", "kl_to_rollout", "adv_logratio_corr",
    "guide_level_mean", "perturb_level_mean",
)  # fmt: skip
KINDS = ("decrease", "increase")


def base_settings(base: BaseSpec) -> dict:
    """What every row shares: the resolved base config (seeds aside) and the library versions."""
    import accelerate
    import torch
    import transformers

    data = base.load().model_dump(mode="json")
    for key in ("seed", "output_dir"):
        data["train"].pop(key)
    data["data"]["synth"].pop("seed")
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }
    note = f"train.seed and data.synth.seed are the row's seed; {base.threads} torch thread(s) per run"
    return {
        "config": base.config,
        "sets": list(base.sets),
        "threads": base.threads,
        "base_config": data,
        "versions": versions,
        "note": note,
    }


def run_mean(records: list[dict], key: str) -> float | None:
    """Mean of a metric's finite values over a run's records (None when it never had one)."""
    values = [r[key] for r in records if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return mean(values) if values else None


def _run_sum(records: list[dict], key: str) -> float:
    return sum(r[key] for r in records if isinstance(r.get(key), (int, float)))


def rescued_fractions(records: list[dict]) -> dict[str, float | None]:
    """Pooled over the run: Σ rescued / Σ vanished augmented groups, per kind and both (None: none)."""
    rescued = {k: _run_sum(records, f"difficulty/rescued_{k}") for k in KINDS}
    vanished = {k: _run_sum(records, f"difficulty/vanished_{k}") for k in KINDS}
    return {k: None if math.isnan(v) else v for k, v in pooled_fractions(rescued, vanished).items()}


def collect_result(run: Path) -> dict:
    """One finished run's numbers, from its summary.json and metrics.jsonl."""
    summary = json.loads((run / "summary.json").read_text())
    records = read_metrics(run / "metrics.jsonl")
    per_task = {
        k: v["accuracy"] for k, v in ((summary.get("eval_after") or {}).get("per_category") or {}).items()
    }
    out = {
        "accuracy": summary["eval_accuracy_after"],
        "accuracy_before": summary["eval_accuracy_before"],
        "ci95_samples": (summary.get("eval_after") or {}).get("ci95"),
        "per_task": per_task,
        # a resumed run's time covers only its last part: no measurement of the whole run
        "wall_seconds": None if summary.get("resumed_from") else summary["wall_seconds"],
        "steps": [r["step"] for r in records],
    }
    out |= {name: run_mean(records, key) for name, key in RUN_MEANS.items()}
    out |= rescued_fractions(records)
    for side in ("before", "after"):
        out[f"vanishing_{side}_series"] = [r.get(f"adv/vanishing_ratio_{side}") for r in records]
    return out


def _rounded(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, digits)


def _accuracy_range(ci: tuple[float, float] | None) -> tuple[float, float] | None:
    """An accuracy's interval clipped to [0, 1] (few seeds give t-intervals wider than that)."""
    return None if ci is None else (max(0.0, ci[0]), min(1.0, ci[1]))


def _interval(ci: tuple[float, float] | None) -> list[float] | None:
    return None if ci is None else [round(ci[0], 4), round(ci[1], 4)]


def _mean_of(results: dict[int, dict], key: str) -> float | None:
    values = [r[key] for r in results.values() if r.get(key) is not None]
    return _rounded(mean(values)) if values else None


def _per_task(results: dict[int, dict]) -> dict[str, float]:
    tasks = sorted({t for r in results.values() for t in r["per_task"]})
    return {
        t: _rounded(mean([r["per_task"][t] for r in results.values() if t in r["per_task"]])) for t in tasks
    }


def row_entry(row: Row, base_cfg, results: dict[int, dict], baseline: dict[int, float]) -> dict:
    """The JSON object of one row (its finished seeds only)."""
    acc = {s: r["accuracy"] for s, r in sorted(results.items())}
    diff, diff_ci, _ = paired_difference(acc, baseline)
    return {
        "name": row.name,
        "overrides": row.resolve(base_cfg),
        "seeds": list(acc),
        "accuracy": [round(a, 4) for a in acc.values()],
        "mean": _rounded(mean(list(acc.values()))),
        "ci95": _interval(_accuracy_range(t_interval(list(acc.values())))),
        "diff_vs_baseline": {"mean": _rounded(diff), "ci95": _interval(diff_ci)},
        "vanishing_ratio_before": _mean_of(results, "vanishing_ratio_before"),
        "vanishing_ratio_after": _mean_of(results, "vanishing_ratio_after"),
        "rescued_fraction": _mean_of(results, "rescued_fraction"),
        "per_task": _per_task(results),
        "wall_seconds": _mean_of(results, "wall_seconds"),
    } | {key: _mean_of(results, key) for key in ROW_MEANS}


def load_results(out: Path, base: BaseSpec, row: Row, seeds: list[int]) -> dict[int, dict]:
    """seed -> result of the finished runs of `row`."""
    key = row_key(base, row)
    paths = {s: result_path(out, key, s) for s in seeds}
    try:
        return {s: read_result(p) for s, p in paths.items() if p.exists()}
    except DamagedFileError as e:
        raise AblationError(f"{e}; run `ablate` without --report-only to recompute it") from e


def table_entry(out: Path, base: BaseSpec, table: Table, seeds: list[int]) -> tuple[dict, dict]:
    """(the table's JSON, row name -> results for the plots)."""
    base_cfg = base.load()
    results = {r.name: load_results(out, base, r, seeds) for r in table.rows}
    baseline = {s: r["accuracy"] for s, r in results.get(table.baseline, {}).items()}
    rows = [row_entry(r, base_cfg, results[r.name], baseline) for r in table.rows]
    return {"baseline": table.baseline, "rows": rows}, results


def write_report(out: Path, base: BaseSpec, tables: list[Table], seeds: list[int]) -> dict:
    """Write DIR/ablations.json, DIR/ablations.md, DIR/vanishing.png, DIR/table_<key>.png."""
    from deepvideo_r1.ablations.plots import plot_table, plot_vanishing
    from deepvideo_r1.ablations.tables_md import report_markdown

    try:
        settings = read_json_object(out / "settings.json")
    except DamagedFileError as e:
        raise AblationError(str(e)) from e
    warm = {s: json.loads(p.read_text()) for s in seeds if (p := warm_dir(out, s) / WARM_FILE).exists()}
    settings = settings | {"seeds": seeds, "warm_starts": warm}
    report: dict = {"settings": settings, "tables": {}}
    series: dict[str, dict] = {}
    for table in tables:
        entry, results = table_entry(out, base, table, seeds)
        report["tables"][table.key] = entry
        if table.key == "4" or not series:  # Figure 3: Table 4's rows, with and without DA
            series = {name: res for name, res in results.items() if res}
        if any(r["seeds"] for r in entry["rows"]):
            plot_table(entry, table.key, out / f"table_{table.key}.png")
    write_json_atomic(out / "ablations.json", report)
    (out / "ablations.md").write_text(report_markdown(report))
    plot_vanishing(series, out / "vanishing.png")
    return report
