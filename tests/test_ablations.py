"""Ablation rows, interval statistics, resume and the ablations.json shape."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from deepvideo_r1.ablations import BaseSpec, build_tables
from deepvideo_r1.ablations.layout import result_path, row_key, warm_dir
from deepvideo_r1.ablations.report import base_settings, write_report
from deepvideo_r1.ablations.rows import UnknownRowError
from deepvideo_r1.ablations.runner import AblationError, check_settings, prepare_row
from deepvideo_r1.algos import POLICY_LOSSES
from deepvideo_r1.artifacts import write_json_atomic
from deepvideo_r1.metrics.stats import paired_difference, t_interval, t_quantile_975

ROW_KEYS = [
    "name", "overrides", "seeds", "accuracy", "mean", "ci95", "diff_vs_baseline", "vanishing_ratio_before",
    "vanishing_ratio_after", "rescued_fraction", "per_task", "wall_seconds",
]  # fmt: skip
BASE = BaseSpec(None, ("data.synth.n_train=6", "data.synth.n_eval=4", "train.max_steps=2"))


def test_t_interval_by_hand():
    # mean 0.6, s = sqrt((0.01 + 0 + 0.01) / 2) = 0.1, half = 4.3027 · 0.1 / sqrt(3) = 0.248417
    lo, hi = t_interval([0.5, 0.6, 0.7])
    assert lo == pytest.approx(0.6 - 0.248417, abs=1e-6) and hi == pytest.approx(0.6 + 0.248417, abs=1e-6)
    assert t_interval([0.5]) is None
    assert t_interval([0.3, 0.3]) == pytest.approx((0.3, 0.3))


def test_t_quantile_table_and_series():
    assert t_quantile_975(4) == 2.7764  # five seeds
    assert t_quantile_975(40) == pytest.approx(2.0211, abs=2e-4)  # table value beyond 30
    assert t_quantile_975(10_000) == pytest.approx(1.96, abs=1e-3)
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_paired_difference_uses_shared_seeds_only():
    # diffs 0.1, 0.2, 0.2 (seed 3 has no pair): mean 1/6, s = sqrt((1/900 + 2 · 1/3600) ... )
    # = sqrt(((-0.0667)^2 + 2 · 0.0333^2) / 2) = 0.057735; half = 4.3027 · 0.057735 / sqrt(3) = 0.143423
    mean, ci, seeds = paired_difference({0: 0.6, 1: 0.7, 2: 0.8}, {0: 0.5, 1: 0.5, 2: 0.6, 3: 0.9})
    assert seeds == [0, 1, 2] and mean == pytest.approx(1 / 6)
    assert ci == pytest.approx((1 / 6 - 0.143423, 1 / 6 + 0.143423), abs=1e-6)


def test_rows_as_in_the_paper():
    tables = {t.key: t for t in build_tables(["all"])}
    assert [r.name for r in tables["4"].rows] == ["grpo", "grpo_da", "reg_grpo", "reg_grpo_da"]
    assert [r.name for r in tables["7"].rows] == ["da_none", "da_increase", "da_decrease", "da_both"]
    assert [r.name for r in tables["8"].rows] == ["levels_fixed", "levels_adaptive"]
    table5 = tables["5"]
    assert table5.baseline == "grpo" and {r.name for r in table5.rows} == set(POLICY_LOSSES)
    assert all(r.overrides["difficulty.enabled"] is False for r in table5.rows)
    assert (tables["4"].baseline, tables["7"].baseline, tables["8"].baseline) == (
        "grpo",
        "da_none",
        "levels_fixed",
    )


@pytest.mark.parametrize("key", ["7", "8", "mechanism"])
def test_each_row_changes_one_setting_from_the_baseline(key):
    (table,) = build_tables([key])
    base_cfg = BASE.load()
    baseline = table.row(table.baseline).resolve(base_cfg)
    for row in table.rows:
        changed = {k for k, v in row.resolve(base_cfg).items() if baseline.get(k) != v}
        assert len(changed) == (0 if row.name == table.baseline else 1), (row.name, changed)


def test_clip_unsaturated_row_makes_the_on_policy_factor_one():
    (table,) = build_tables(["mechanism"])
    base_cfg = BASE.load()
    # 2·epsilon / std_eps = 1 with the base epsilon
    assert table.row("clip_unsaturated").resolve(base_cfg)["algo.std_eps"] == 2 * base_cfg.algo.epsilon


def test_rows_with_the_same_config_share_one_run():
    tables = {t.key: t for t in build_tables(["all"])}
    same = {
        row_key(BASE, tables["4"].row("reg_grpo_da")),
        row_key(BASE, tables["7"].row("da_both")),
        row_key(BASE, tables["8"].row("levels_adaptive")),
    }
    assert len(same) == 1
    assert row_key(BASE, tables["4"].row("grpo")) not in same


def test_row_selection_keeps_baselines_and_rejects_unknown_names():
    (table,) = build_tables(["4"], rows=["reg_grpo"])
    assert [r.name for r in table.rows] == ["grpo", "reg_grpo"]
    assert build_tables(["4", "7"], rows=["da_both"])[0].key == "7"
    with pytest.raises(UnknownRowError, match="rows of these tables"):
        build_tables(["4"], rows=["reggrpo"])
    with pytest.raises(UnknownRowError, match="mechanism"):
        build_tables(["6"])


def test_settings_of_another_base_config_are_refused(tmp_path):
    check_settings(tmp_path, base_settings(BASE))
    check_settings(tmp_path, base_settings(BASE))  # same settings: resumes
    other = BaseSpec(None, (*BASE.sets, "train.lr=0.001"))
    with pytest.raises(AblationError, match=r"train\.lr"):
        check_settings(tmp_path, base_settings(other))
    two_threads = BaseSpec(None, BASE.sets, threads=2)  # CPU results depend on the thread count
    with pytest.raises(AblationError, match="1 thread"):
        check_settings(tmp_path, base_settings(two_threads))
    assert json.loads((tmp_path / "settings.json").read_text())["threads"] == 1


def test_resume_skips_finished_runs_and_links_the_warm_start(tmp_path):
    (table,) = build_tables(["4"], rows=["reg_grpo"])
    row = table.row("reg_grpo")
    key = row_key(BASE, row)
    (warm_dir(tmp_path, 0) / "sft_model").mkdir(parents=True)
    job = prepare_row(tmp_path, BASE, key, row, 0)
    run = job.config_path.parent
    assert (run / "sft_model").is_symlink() and not (run / "tiny_model").exists()
    assert "reg_grpo" in job.config_path.read_text()
    write_json_atomic(result_path(tmp_path, key, 0), {"accuracy": 0.5, "per_task": {}})
    assert prepare_row(tmp_path, BASE, key, row, 0) is None


@pytest.mark.parametrize("content", ['{"accuracy": 0.5}', "{torn", "[0.5]"])
def test_a_damaged_result_is_recomputed_and_named_in_a_report(tmp_path, content, caplog):
    (table,) = build_tables(["4"], rows=["reg_grpo"])
    row = table.row("reg_grpo")
    key = row_key(BASE, row)
    (warm_dir(tmp_path, 0) / "sft_model").mkdir(parents=True)
    path = result_path(tmp_path, key, 0)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    check_settings(tmp_path, base_settings(BASE))
    with pytest.raises(AblationError, match=re.escape(str(path))):
        write_report(tmp_path, BASE, [table], [0])  # --report-only: named, not a KeyError
    assert prepare_row(tmp_path, BASE, key, row, 0) is not None  # the run is done again
    assert not path.exists() and "recomputing a damaged result" in caplog.text


def test_a_damaged_settings_file_is_one_line(tmp_path):
    (tmp_path / "settings.json").write_text("{torn")
    with pytest.raises(AblationError, match=r"settings\.json is not valid JSON .*delete it"):
        check_settings(tmp_path, base_settings(BASE))


def _result(acc: float) -> dict:
    return {
        "accuracy": acc, "accuracy_before": 0.4, "per_task": {"task=count": acc}, "wall_seconds": 10.0,
        "vanishing_ratio_before": 0.5, "vanishing_ratio_after": 0.25, "rescued_fraction": None,
        "vanishing_before_series": [0.5, 0.5], "vanishing_after_series": [0.25, 0.25],
    }  # fmt: skip


def test_report_json_shape_and_numbers(tmp_path):
    tables = build_tables(["4"], rows=["reg_grpo"])
    check_settings(tmp_path, base_settings(BASE))
    accs = {"grpo": [0.5, 0.5, 0.6], "reg_grpo": [0.6, 0.7, 0.8]}
    for name, values in accs.items():
        key = row_key(BASE, tables[0].row(name))
        for seed, acc in enumerate(values):
            write_json_atomic(result_path(tmp_path, key, seed), _result(acc))
    write_report(tmp_path, BASE, tables, [0, 1, 2])
    report = json.loads((tmp_path / "ablations.json").read_text())
    assert set(report) == {"settings", "tables"} and report["settings"]["seeds"] == [0, 1, 2]
    table = report["tables"]["4"]
    assert table["baseline"] == "grpo" and [r["name"] for r in table["rows"]] == ["grpo", "reg_grpo"]
    row = table["rows"][1]
    assert list(row)[: len(ROW_KEYS)] == ROW_KEYS
    assert row["seeds"] == [0, 1, 2] and row["accuracy"] == [0.6, 0.7, 0.8] and row["mean"] == 0.7
    # 0.7 ± 4.3027 · 0.1 / sqrt(3) = 0.7 ± 0.2484
    assert row["ci95"] == pytest.approx([0.4516, 0.9484], abs=1e-4)
    assert row["diff_vs_baseline"]["mean"] == pytest.approx(0.1667, abs=1e-4)
    assert row["overrides"] == {"algo.loss": "reg_grpo", "difficulty.enabled": False}
    assert row["per_task"] == {"task=count": 0.7} and row["vanishing_ratio_after"] == 0.25
    assert table["rows"][0]["diff_vs_baseline"] == {"mean": 0.0, "ci95": [0.0, 0.0]}
    assert math.isclose(row["wall_seconds"], 10.0)
    for name in ("ablations.md", "vanishing.png", "table_4.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "| `reg_grpo` | 0,1,2 | 70.0 [45.2, 94.8] | +16.7" in (tmp_path / "ablations.md").read_text()


def test_accuracy_interval_is_clipped_to_the_unit_range(tmp_path):
    tables = build_tables(["4"], rows=["reg_grpo"])
    for name, accs in (("grpo", (0.1, 0.9)), ("reg_grpo", (0.2, 0.3))):
        key = row_key(BASE, tables[0].row(name))
        for seed, acc in enumerate(accs):
            write_json_atomic(result_path(tmp_path, key, seed), _result(acc))
    check_settings(tmp_path, base_settings(BASE))
    rows = write_report(tmp_path, BASE, tables, [0, 1])["tables"]["4"]["rows"]
    assert rows[0]["ci95"] == [0.0, 1.0]  # 0.5 ± 12.706 · 0.4 before clipping
    assert rows[1]["diff_vs_baseline"]["ci95"][0] < -1.0  # a difference is not clipped


def test_report_only_runs_nothing_and_reports_the_finished_seeds(tmp_path):
    from deepvideo_r1.ablations import run_ablations

    tables = build_tables(["4"], rows=["reg_grpo"])
    for name, acc in (("grpo", 0.5), ("reg_grpo", 0.75)):
        write_json_atomic(result_path(tmp_path, row_key(BASE, tables[0].row(name)), 0), _result(acc))
    report = run_ablations(BASE, tables, [0, 1], tmp_path, report_only=True)
    assert not (tmp_path / "warm").exists()  # no warm start, no run: seed 1 is simply missing
    rows = report["tables"]["4"]["rows"]
    assert [(r["name"], r["seeds"], r["accuracy"]) for r in rows] == [
        ("grpo", [0], [0.5]),
        ("reg_grpo", [0], [0.75]),
    ]


def test_headroom_lists_greedy_and_sampled_accuracy_per_task():
    from deepvideo_r1.ablations.worker import headroom
    from deepvideo_r1.evaluation.evaluate import EvalReport

    per_task = {"n": 2.0, "accuracy": 0.5, "mean_at_k": 0.25, "maj_at_k": 0.5, "pass_at_k": 1.0}
    report = EvalReport(
        n=2, n_labelled=2, accuracy=0.5, format_rate=1.0, per_category={"task=count": per_task},
        mean_at_k=0.25, maj_at_k=0.5, pass_at_k=1.0,
    )  # fmt: skip
    expected = {"n": 2, "accuracy": 0.5, "mean_at_k": 0.25, "maj_at_k": 0.5, "pass_at_k": 1.0}
    assert headroom(report) == {"all": expected, "task=count": expected}


def test_headroom_is_sampled_on_a_prefix_of_the_held_out_split(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from deepvideo_r1.ablations import worker

    seen = {}
    monkeypatch.setattr(worker, "evaluate_with_config", lambda *a, **k: seen.setdefault("clips", a[3]))
    data = SimpleNamespace(eval=list(range(worker.HEADROOM_CLIPS + 7)))
    worker.evaluate_sampled(None, None, None, data, tmp_path, None, None)
    assert seen["clips"] == list(range(worker.HEADROOM_CLIPS))


@pytest.mark.slow
def test_ablate_cli_runs_resumes_and_writes_the_report(tmp_path):
    """Two rows at one seed through the CLI (subprocesses), then the same command again: nothing reruns."""
    from typer.testing import CliRunner

    from deepvideo_r1.cli import app

    fast = [
        "data.synth.n_train=6", "data.synth.n_eval=4", "sft.steps=2", "sft.batch_size=2",
        "rollout.group_size=2", "rollout.prompts_per_step=2", "rollout.max_new_tokens=12",
        "train.micro_batch_size=2", "train.max_steps=2", "train.save_every=0", "train.tensorboard=false",
        "difficulty.window=4",
        "model.tiny_sizes={text_hidden: 64, text_layers: 2, vision_hidden: 32, vision_depth: 1}",
    ]  # fmt: skip
    args = [
        "ablate",
        "--table",
        "4",
        "--rows",
        "reg_grpo",
        "--seeds",
        "0",
        "--out",
        str(tmp_path),
        "--jobs",
        "2",
    ]
    args += [x for s in fast for x in ("--set", s)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "ablations.json").read_text())
    rows = report["tables"]["4"]["rows"]
    assert [r["seeds"] for r in rows] == [[0], [0]] and all(0 <= r["mean"] <= 1 for r in rows)
    warm = report["settings"]["warm_starts"]["0"]
    assert warm["headroom"]["all"]["pass_at_k"] >= warm["headroom"]["all"]["mean_at_k"]
    assert "Warm-start headroom" in (tmp_path / "ablations.md").read_text()
    results = sorted(Path(tmp_path, "runs").glob("*/seed0.json"))
    assert len(results) == 2
    stamps = [p.stat().st_mtime_ns for p in results]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert [p.stat().st_mtime_ns for p in results] == stamps  # finished runs kept, not rerun
    assert json.loads((tmp_path / "ablations.json").read_text())["tables"] == report["tables"]


def test_table_wall_time_adds_its_runs_and_the_warm_starts_of_its_seeds():
    from deepvideo_r1.ablations.tables_md import table_wall_line

    rows = [{"seeds": [0, 1], "wall_seconds": 180.0}, {"seeds": [0], "wall_seconds": 240.0}]
    warm = {"0": {"wall_seconds": 300.0}, "1": {"wall_seconds": 360.0}, "2": {"wall_seconds": 1e6}}
    # RL: 2 * 180 + 240 = 600 s = 10 min; warm starts of seeds 0 and 1 (not 2): 660 s = 11 min
    line = table_wall_line({"rows": rows}, warm)
    assert line.startswith("Wall time: 21 min = 3 RL runs (10 min) + the warm starts of seeds 0,1 (11 min)")


def test_a_resumed_run_has_no_wall_time(tmp_path):
    from deepvideo_r1.ablations.report import collect_result

    ratios = {"adv/vanishing_ratio_before": 0.5, "adv/vanishing_ratio_after": 0.5}
    records = [{"step": s, **ratios} for s in (1, 2)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = {"eval_accuracy_after": 0.5, "eval_accuracy_before": 0.4, "wall_seconds": 99.0}
    for resumed, wall in ((None, 99.0), ("checkpoint-20", None)):
        (tmp_path / "summary.json").write_text(json.dumps(summary | {"resumed_from": resumed}))
        result = collect_result(tmp_path)
        assert result["wall_seconds"] == wall and result["accuracy"] == 0.5 and result["steps"] == [1, 2]
