"""Ablation figures: a bar chart per table and the vanishing ratio over steps (paper Figure 3)."""

from __future__ import annotations

from pathlib import Path

from deepvideo_r1.metrics.stats import mean


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_table(table: dict, key: str, path: Path) -> Path:
    """Bars: mean held-out accuracy (%) per row with its 95 % interval as the error bar."""
    plt = _pyplot()
    rows = [r for r in table["rows"] if r["mean"] is not None]
    names = [r["name"] for r in rows]
    means = [100 * r["mean"] for r in rows]
    low = [100 * (r["mean"] - r["ci95"][0]) if r["ci95"] else 0.0 for r in rows]
    high = [100 * (r["ci95"][1] - r["mean"]) if r["ci95"] else 0.0 for r in rows]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 1), 3.5))
    colours = ["tab:grey" if n == table["baseline"] else "tab:blue" for n in names]
    ax.bar(names, means, yerr=[low, high], capsize=4, color=colours)
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title(f"table {key} (grey: baseline; bars: 95 % CI over seeds)")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _mean_series(results: dict[int, dict], name: str) -> list[float]:
    """Per-step mean over seeds of a series (steps present in every seed)."""
    runs = [r[name] for r in results.values() if r.get(name)]
    length = min((len(s) for s in runs), default=0)
    return [mean([s[i] for s in runs if s[i] is not None] or [float("nan")]) for i in range(length)]


def plot_vanishing(series: dict[str, dict[int, dict]], path: Path) -> Path | None:
    """adv/vanishing_ratio before (dashed) and after (solid) augmentation per row, mean over seeds."""
    if not series:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (name, results) in enumerate(sorted(series.items())):
        colour = f"C{k % 10}"
        before = _mean_series(results, "vanishing_before_series")
        after = _mean_series(results, "vanishing_after_series")
        ax.plot(range(1, len(before) + 1), before, "--", color=colour, alpha=0.6)
        ax.plot(range(1, len(after) + 1), after, "-", color=colour, label=name)
    ax.set_xlabel("RL step")
    ax.set_ylabel("share of groups with zero advantage")
    ax.set_title("vanishing ratio: dashed before, solid after augmentation")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
