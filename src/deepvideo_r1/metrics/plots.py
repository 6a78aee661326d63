"""PNG training curves from a run's metrics.jsonl (matplotlib, Agg backend: no display needed).

One figure per topic, one panel per group of keys; a figure whose keys are all absent is skipped
and reported. Sparse series (eval every N steps) are drawn with markers; long noisy series get an
exponential moving average on top of the faint raw curve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepvideo_r1.metrics.logger import SFT_METRICS_FILE, read_metrics

_REWARD_SPECIAL = {"reward/mean", "reward/accuracy_rate", "reward/format_rate"}


def _reward_components(keys: Sequence[str]) -> list[str]:
    """reward/<component> keys (reward/format, reward/accuracy...) but not the mean, rates or the
    before-augmentation copies."""
    return sorted(
        k for k in keys if k.startswith("reward/") and k not in _REWARD_SPECIAL and not k.endswith("_before")
    )


def _eval_categories(keys: Sequence[str]) -> list[str]:
    """eval/accuracy/<category> keys (held-out accuracy per category)."""
    return sorted(k for k in keys if k.startswith("eval/accuracy/"))


@dataclass(frozen=True)
class Panel:
    """One axis: its title and the keys it draws (fixed names, or a function of all keys)."""

    title: str
    keys: tuple[str, ...] = ()
    select: Callable[[Sequence[str]], list[str]] | None = None
    select_label: str = ""  # names what `select` looks for, for the skip report
    ylabel: str = ""
    log_y: bool = False  # for values spanning decades (the pre-clipping gradient norm)

    def present(self, available: Sequence[str]) -> list[str]:
        wanted = list(self.keys) + (self.select(available) if self.select else [])
        return [k for k in wanted if k in available]


@dataclass(frozen=True)
class FigureSpec:
    """A PNG file: name (without .png), title and panels."""

    name: str
    title: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("reward", "Reward", (
        Panel("total reward (mean over completions)", ("reward/mean",), ylabel="reward (0 to 2)"),
        Panel("reward components", select=_reward_components, select_label="reward/<component>",
              ylabel="reward"),
    )),
    FigureSpec("accuracy", "Accuracy", (
        Panel("train rates", ("reward/accuracy_rate", "reward/format_rate"),
              ylabel="fraction of completions"),
        Panel("train accuracy before / after augmentation", ("reward/accuracy_before", "reward/accuracy"),
              ylabel="accuracy reward"),
        Panel("held-out accuracy (step 0 = before RL)", ("eval/accuracy",), ylabel="accuracy"),
        Panel("held-out accuracy by category", select=_eval_categories, select_label="eval/accuracy/<cat>",
              ylabel="accuracy"),
    )),
    FigureSpec("vanishing", "Vanishing advantage", (
        Panel("fraction of groups with equal rewards",
              ("adv/vanishing_ratio_before", "adv/vanishing_ratio_after"), ylabel="fraction of groups"),
    )),
    FigureSpec("augmentation", "Difficulty-aware augmentation", (
        Panel("samples per step by kind", ("difficulty/increase", "difficulty/decrease", "difficulty/none"),
              ylabel="samples"),
        Panel("reference reward and level", ("difficulty/r_ref", "difficulty/level_mean"),
              ylabel="reward / level"),
        Panel("vanished augmented groups given reward variance",
              ("difficulty/rescued_fraction_decrease", "difficulty/rescued_fraction_increase"),
              ylabel="fraction of groups"),
        Panel("accuracy of augmented groups, before / after",
              ("difficulty/hinted_accuracy_before", "difficulty/hinted_accuracy_after",
               "difficulty/noised_accuracy_before", "difficulty/noised_accuracy_after"),
              ylabel="accuracy"),
    )),
    FigureSpec("optimization", "Optimisation", (
        Panel("loss", ("loss/total",), ylabel="loss"),
        Panel("KL to reference", ("loss/kl",), ylabel="KL (k3)"),
        Panel("gradient norm after clipping", ("perf/grad_norm_clipped",),
              ylabel="L2 norm (<= max_grad_norm)"),
        # Reg-GRPO regresses onto advantages divided by a tiny std_eps: ~2·eps/std_eps ≈ 1e5 before clipping
        Panel("gradient norm before clipping (Reg-GRPO: ~1e5 by design)", ("perf/grad_norm",),
              ylabel="L2 norm (log scale)", log_y=True),
        Panel("learning rate", ("perf/lr",), ylabel="learning rate"),
    )),
    FigureSpec("performance", "Throughput", (
        Panel("seconds per phase", ("perf/rollout_s", "perf/reward_s", "perf/logprob_s", "perf/update_s"),
              ylabel="seconds"),
        Panel("completion length (tokens)", ("perf/completion_len",), ylabel="tokens"),
    )),
)  # fmt: skip

# The supervised warm start (sft_metrics.jsonl), drawn when the run has one.
SFT_FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("sft", "Supervised warm start", (
        Panel("SFT loss", ("sft/loss",), ylabel="cross-entropy (nats / target token)"),
        Panel("SFT learning rate", ("sft/lr",), ylabel="learning rate"),
    )),
)  # fmt: skip


@dataclass
class PlotReport:
    """What `plot_run` wrote and what it skipped (figure name -> the keys it looked for)."""

    written: list[Path]
    skipped: dict[str, list[str]]


def series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the records that hold a numeric `key`."""
    steps, values = [], []
    for record in records:
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and "step" in record:
            steps.append(int(record["step"]))
            values.append(float(value))
    return steps, values


def ema(values: Sequence[float], alpha: float) -> list[float]:
    """s_0 = v_0, s_t = alpha * v_t + (1 - alpha) * s_{t-1}; NaNs are passed over."""
    out, state = [], None
    for v in values:
        if v == v:  # not NaN
            state = v if state is None else alpha * v + (1 - alpha) * state
        out.append(state if state is not None else v)
    return out


def _draw_panel(ax: Any, records: Sequence[dict[str, Any]], panel: Panel, keys: list[str]) -> None:
    for key in keys:
        steps, values = series(records, key)
        sparse = len(steps) <= 30
        if sparse:
            ax.plot(steps, values, marker="o", markersize=3, label=key)
            continue
        (line,) = ax.plot(steps, values, alpha=0.3, linewidth=0.8)
        ax.plot(steps, ema(values, alpha=min(1.0, 10 / len(values))), color=line.get_color(), label=key)
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel(panel.ylabel)
    if panel.log_y and any(v > 0 for key in keys for v in series(records, key)[1]):
        ax.set_yscale("log")  # (all zero, e.g. every advantage vanished: a log axis cannot show it)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> PlotReport:
    """Write `<out_dir>/<figure>.png` (default out_dir: `<run_dir>/plots`) for every figure with data."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    report = PlotReport(written=[], skipped={})
    _write_figures(plt, read_metrics(run_dir), FIGURES, Path(run_dir).name, out, report)
    sft_file = Path(run_dir) / SFT_METRICS_FILE
    if sft_file.is_file():  # its own step axis (SFT steps), so its own figure
        _write_figures(plt, read_metrics(sft_file), SFT_FIGURES, Path(run_dir).name, out, report)
    return report


def _write_figures(plt, records, specs, run_name: str, out: Path, report: PlotReport) -> None:
    available = sorted({key for record in records for key in record})
    for spec in specs:
        drawn = [(panel, panel.present(available)) for panel in spec.panels]
        drawn = [(panel, keys) for panel, keys in drawn if keys]
        if not drawn:
            report.skipped[spec.name] = [k for p in spec.panels for k in (*p.keys, p.select_label) if k]
            continue
        fig, axes = plt.subplots(1, len(drawn), figsize=(5.5 * len(drawn), 4), squeeze=False)
        for ax, (panel, keys) in zip(axes[0], drawn, strict=True):
            _draw_panel(ax, records, panel, keys)
        fig.suptitle(f"{spec.title} — {run_name}")
        fig.tight_layout()
        path = out / f"{spec.name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        report.written.append(path)
