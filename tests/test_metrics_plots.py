"""Plots from a fake metrics.jsonl: valid PNGs, absent figures skipped and named, CLI `plot`."""

from __future__ import annotations

import json
import math
import random

import matplotlib.image as mpimg
from typer.testing import CliRunner

from deepvideo_r1.cli import app
from deepvideo_r1.metrics.logger import MetricsLogger
from deepvideo_r1.metrics.plots import FIGURES, ema, plot_run, series

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fake_run(run_dir, steps: int = 40) -> None:
    rng = random.Random(0)
    with MetricsLogger(run_dir) as logger:
        for step in range(1, steps + 1):
            acc = min(1.0, step / steps + rng.uniform(-0.1, 0.1))
            metrics = {
                "reward/mean": 1.0 + acc, "reward/format": 1.0, "reward/accuracy": acc,
                "reward/accuracy_rate": acc, "reward/format_rate": 1.0, "reward/accuracy_before": acc / 2,
                "adv/vanishing_ratio_before": 0.5, "adv/vanishing_ratio_after": 0.2,
                "difficulty/increase": 3, "difficulty/decrease": 4, "difficulty/none": 1,
                "difficulty/r_ref": 1.2, "difficulty/level_mean": 1.5,
                "loss/total": 0.1 / step, "loss/kl": math.nan if step == 1 else 0.01, "perf/grad_norm": 0.5,
                "perf/lr": 1e-6,
            }  # fmt: skip
            if step % 10 == 0:
                metrics |= {"eval/accuracy": acc, "eval/accuracy/task=count": acc / 2}
            logger.log(step, metrics)


def test_plot_run_writes_readable_pngs(tmp_path):
    _fake_run(tmp_path)
    report = plot_run(tmp_path)
    names = sorted(p.name for p in report.written)
    assert names == ["accuracy.png", "augmentation.png", "optimization.png", "reward.png", "vanishing.png"]
    # no perf/*_s or completion_len were logged: the throughput figure is skipped and says why
    assert list(report.skipped) == ["performance"]
    assert "perf/rollout_s" in report.skipped["performance"]
    for path in report.written:
        assert path.parent == tmp_path / "plots"
        assert path.read_bytes()[:8] == PNG_MAGIC
        image = mpimg.imread(path)
        assert image.ndim == 3 and image.shape[0] == 400  # figsize height 4 in * 100 dpi
    # reward.png has two panels (mean, components) -> 2 * 5.5 in * 100 dpi wide; the components
    # panel leaves out reward/accuracy_before, which accuracy.png draws (4 panels: train rates,
    # before / after augmentation, held-out accuracy, held-out accuracy per category)
    assert mpimg.imread(tmp_path / "plots" / "reward.png").shape[1] == 1100
    assert mpimg.imread(tmp_path / "plots" / "accuracy.png").shape[1] == 2200


def test_everything_absent_is_skipped(tmp_path):
    with MetricsLogger(tmp_path) as logger:
        logger.log(1, {"something/else": 1.0})
    report = plot_run(tmp_path, tmp_path / "out")
    assert report.written == []
    assert set(report.skipped) == {spec.name for spec in FIGURES}
    assert report.skipped["reward"] == ["reward/mean", "reward/<component>"]


def test_series_and_ema():
    records = [{"step": 1, "a": 1.0}, {"step": 2}, {"step": 3, "a": 3.0}, {"step": 4, "a": True}]
    assert series(records, "a") == ([1, 3], [1.0, 3.0])  # missing and bool values are skipped
    # s = 2; 0.5*4 + 0.5*2 = 3; NaN keeps 3; 0.5*5 + 0.5*3 = 4
    assert ema([2.0, 4.0, math.nan, 5.0], alpha=0.5) == [2.0, 3.0, 3.0, 4.0]


def test_cli_plot(tmp_path):
    _fake_run(tmp_path, steps=5)
    result = CliRunner().invoke(app, ["plot", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "skipped performance" in result.output
    assert (tmp_path / "plots" / "reward.png").read_bytes()[:8] == PNG_MAGIC
    missing = CliRunner().invoke(app, ["plot", str(tmp_path / "nope")])
    assert missing.exit_code == 2


def test_every_panel_has_a_y_label_and_the_pre_clip_norm_is_log_scaled():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepvideo_r1.metrics.plots import _draw_panel

    assert all(panel.ylabel for spec in FIGURES for panel in spec.panels)
    (panel,) = [p for spec in FIGURES for p in spec.panels if p.keys == ("perf/grad_norm",)]
    records = [{"step": 1, "perf/grad_norm": 1.2e5}, {"step": 2, "perf/grad_norm": 9e4}]
    fig, ax = plt.subplots()
    _draw_panel(ax, records, panel, ["perf/grad_norm"])
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "L2 norm (log scale)"
    assert "1e5 by design" in ax.get_title()
    plt.close(fig)


def test_sft_metrics_get_their_own_figure(tmp_path):
    _fake_run(tmp_path)
    lines = [{"step": k, "sft/loss": 3.0 / k, "sft/lr": 1e-3} for k in range(1, 6)]
    (tmp_path / "sft_metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    report = plot_run(tmp_path)
    assert tmp_path / "plots" / "sft.png" in report.written
    assert mpimg.imread(tmp_path / "plots" / "sft.png").shape[1] == 1100  # two panels, 5.5 in each
