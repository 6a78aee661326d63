"""ablations.md: one Markdown table per ablation table, from the ablations.json object."""

from __future__ import annotations

TITLES = {
    "4": "Table 4: Reg-GRPO and difficulty-aware augmentation (DA)",
    "5": "Table 5: policy losses (no DA)",
    "7": "Table 7: which augmentations fire (Reg-GRPO)",
    "8": "Table 8: fixed vs adaptive levels (Reg-GRPO + DA)",
    "mechanism": "Mechanism: one change each from Reg-GRPO + DA",
}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _ci(ci: list[float] | None) -> str:
    return "" if ci is None else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _diff(d: dict) -> str:
    if d["mean"] is None:
        return "–"
    ci = "" if d["ci95"] is None else f" [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"
    return f"{100 * d['mean']:+.1f}{ci}"


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def row_line(row: dict) -> str:
    """One Markdown table line of a row."""
    cells = [
        f"`{row['name']}`",
        ",".join(map(str, row["seeds"])) or "–",
        _pct(row["mean"]) + _ci(row["ci95"]),
        _diff(row["diff_vs_baseline"]),
        f"{_ratio(row['vanishing_ratio_before'])} → {_ratio(row['vanishing_ratio_after'])}",
        _ratio(row["rescued_fraction"]),
        "–" if row["wall_seconds"] is None else f"{row['wall_seconds']:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def task_lines(rows: list[dict]) -> list[str]:
    """Per-task accuracy (%) of every row, tasks as columns."""
    tasks = sorted({t for r in rows for t in r["per_task"]})
    if not tasks:
        return []
    head = ["| row | " + " | ".join(t.removeprefix("task=") for t in tasks) + " |"]
    head.append("|---" * (len(tasks) + 1) + "|")
    body = [
        f"| `{r['name']}` | " + " | ".join(_pct(r["per_task"].get(t)) for t in tasks) + " |" for r in rows
    ]
    return head + body


def headroom_lines(warm: dict) -> list[str]:
    """Greedy vs sampled accuracy (%) of each warm start per task: what RL could gain."""
    lines = ["| seed | task | clips | greedy | mean@8 | maj@8 | pass@8 |", "|---|---|---|---|---|---|---|"]
    for seed, info in warm.items():
        for task, m in (info.get("headroom") or {}).items():
            cells = [_pct(m.get(k)) for k in ("accuracy", "mean_at_k", "maj_at_k", "pass_at_k")]
            clips = m.get("n", "")
            lines.append(f"| {seed} | {task.removeprefix('task=')} | {clips} | " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def table_wall_line(table: dict, warm: dict) -> str:
    """What the table costs to run on its own: its RL runs plus the warm starts of its seeds."""
    rl = sum(r["wall_seconds"] * len(r["seeds"]) for r in table["rows"] if r["wall_seconds"] is not None)
    seeds = sorted({s for r in table["rows"] for s in r["seeds"]})
    warm = {int(k): v for k, v in warm.items()}  # JSON made the seeds strings
    sft = sum(warm[s]["wall_seconds"] for s in seeds if s in warm)
    runs = sum(len(r["seeds"]) for r in table["rows"])
    return (
        f"Wall time: {(rl + sft) / 60:.0f} min = {runs} RL runs ({rl / 60:.0f} min) + "
        f"the warm starts of seeds {','.join(map(str, seeds)) or '–'} ({sft / 60:.0f} min), "
        "one run at a time."
    )


def _preamble(s: dict) -> list[str]:
    """Seeds, versions, definitions, and the warm starts with their headroom."""
    lines = ["# Ablations", ""]
    lines.append(
        f"Seeds {', '.join(map(str, s['seeds']))}; {s['note']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in s["versions"].items())
        + "."
    )
    lines.append(
        "Accuracy: held-out, greedy, mean over seeds with a 95 % t-interval; Δ: paired "
        "difference to the table's baseline over the seeds both have. Vanishing ratio: "
        "run mean before → after augmentation. Wall: seconds per RL run (mean)."
    )
    warm = s.get("warm_starts") or {}
    if warm:
        lines.append(
            "Warm starts (SFT held-out accuracy, seconds): "
            + ", ".join(
                f"seed {k}: {_pct(v['eval_accuracy'])} %, {v['wall_seconds']:.0f} s" for k, v in warm.items()
            )
            + "."
        )
        headroom = headroom_lines(warm)
        if headroom:
            lines += [
                "",
                "Warm-start headroom (greedy vs 8 samples at the rollout temperature, %):",
                "",
                *headroom,
            ]
    return lines


def report_markdown(report: dict) -> str:
    """The whole ablations.md."""
    lines = _preamble(report["settings"])
    for key, table in report["tables"].items():
        lines += ["", f"## {TITLES.get(key, key)}", "", f"Baseline: `{table['baseline']}`.", ""]
        lines.append(
            "| row | seeds | accuracy % [95 % CI] | Δ vs baseline, points [95 % CI] | "
            "vanishing before → after | rescued | wall s |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        lines += [row_line(r) for r in table["rows"]]
        lines += ["", table_wall_line(table, report["settings"].get("warm_starts") or {})]
        per_task = task_lines(table["rows"])
        if per_task:
            lines += ["", "Per-task accuracy (%):", "", *per_task]
    return "\n".join(lines) + "\n"
