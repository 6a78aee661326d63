"""The drift metrics, the iterations table, and experiments/mechanisms.py's plan and report."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from deepvideo_r1.ablations.rows import build_tables, table_iterations
from deepvideo_r1.algos.drift import drift_metrics

BENCH = Path(__file__).resolve().parents[1] / "experiments"
sys.path.insert(0, str(BENCH))

import hint_transfer  # noqa: E402
import mechanisms  # noqa: E402
import mechanisms_report  # noqa: E402


def test_drift_is_zero_on_policy_and_matches_hand_values_off_policy():
    logps = torch.tensor([[-1.0, -2.0], [-0.5, -0.5]])
    mask = torch.tensor([[1, 1], [1, 0]])
    adv = torch.tensor([1.0, -1.0])
    on = drift_metrics(logps, logps, adv, mask)
    assert on == {"drift/kl_to_rollout": 0.0, "drift/outside_clip_frac": 0.0, "drift/adv_logratio_corr": 0.0}
    old = logps - torch.tensor([[0.5, 0.0], [-0.1, 9.0]])  # log-ratios 0.5, 0, -0.1 (the 9 is padding)
    out = drift_metrics(logps, old, adv, mask, epsilon=0.2)
    k3 = [math.exp(-r) + r - 1 for r in (0.5, 0.0, -0.1)]
    assert out["drift/kl_to_rollout"] == pytest.approx(sum(k3) / 3)
    assert out["drift/outside_clip_frac"] == pytest.approx(1 / 3)  # only exp(0.5) = 1.65 is outside
    assert out["drift/adv_logratio_corr"] == pytest.approx(1.0)  # row sums 0.5 and -0.1 follow A


def test_iterations_table_crosses_two_losses_with_three_iteration_counts():
    table = table_iterations()
    assert table.baseline == "grpo_it1"
    got = {(r.overrides["algo.loss"], r.overrides["algo.num_iterations"]) for r in table.rows}
    assert got == {(loss, n) for loss in ("grpo", "reg_grpo") for n in (1, 2, 4)}
    assert all(r.overrides["difficulty.enabled"] is False for r in table.rows)
    assert [t.key for t in build_tables(["iterations"])] == ["iterations"]


def test_plan_runs_every_seed_of_section_3_in_turn_with_section_2_early():
    cells = mechanisms.plan([0, 1], [0])
    names = [mechanisms.cell_name(c) for c in cells]
    assert names[:4] == ["warm:0", "it:grpo_it1:0", "collect", "it:reg_grpo_it1:0"]
    first_seed1 = names.index("warm:1")
    assert {n for n in names[:first_seed1] if n.startswith("hint")} == {
        f"hint:{a}:0" for a in ("base", "a1", "a2", "b", "c")
    }
    assert sum(n.startswith("it:") and n.endswith(":0") for n in names[:first_seed1]) == 6
    reading = names[names.index("readwarm") :]  # the hint-reading warm start's cells come last
    assert reading == ["readwarm", "collect:reading"] + [
        f"hint:{a}:0:reading" for a in ("base", "a1", "a2", "b", "c")
    ]
    assert len(names) == len(set(names)) == 2 + 6 + 1 + 6 + 5 + 7
    assert mechanisms.done_path(BENCH, ("hint", "b", "1", "reading"), None) == (
        BENCH / "hint_reading" / "arms" / "b_seed1.json"
    )
    assert mechanisms.done_path(BENCH, ("collect",), None) == BENCH / "hint" / "collect.json"


def test_placebo_shuffles_advantages_within_each_group_only():
    adv = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0])
    out = hint_transfer.shuffled_within_groups(adv, 4, seed=3)
    assert sorted(out[:4].tolist()) == [1.0, 2.0, 3.0, 4.0] and sorted(out[4:].tolist()) == [10, 20, 30, 40]
    assert torch.equal(out, hint_transfer.shuffled_within_groups(adv, 4, seed=3))
    assert not torch.equal(out, adv)


def test_heldout_clips_take_the_first_of_each_task():
    clips = [SimpleNamespace(metadata={"task": t}, id=f"{t}{i}") for i in range(3) for t in ("a", "b")]
    assert [c.id for c in hint_transfer.heldout_clips(clips, 2)] == ["a0", "b0", "a1", "b1"]


def _args(tmp: Path) -> SimpleNamespace:
    return SimpleNamespace(
        out=tmp, seeds=[0, 1], hint_seeds=[0, 1], threads=1, set=[], collect_prompts=8, hint_steps=2,
        hint_prompts=4, heldout_per_task=4, mean_k=2, json=tmp / "mechanisms.json",
    )  # fmt: skip


def test_aggregate_reports_finished_seeds_paired_differences_and_missing_cells(tmp_path):
    args = _args(tmp_path)
    accuracy = {
        ("grpo_it4", 0): 0.5,
        ("grpo_it4", 1): 0.6,
        ("reg_grpo_it4", 0): 0.55,
        ("reg_grpo_it4", 1): 0.7,
    }
    for (row, seed), acc in accuracy.items():
        result = {"accuracy": acc, "wall_seconds": 100.0, "clip_frac": 0.01, "kl_to_rollout": 0.002}
        run = tmp_path / "iterations" / "runs" / f"key_{row}" / f"seed{seed}"  # keys: any name
        run.mkdir(parents=True)
        loss, n = row.rsplit("_it", 1)
        algo = {"loss": loss, "num_iterations": int(n)}
        (run / "row_config.yaml").write_text(json.dumps({"algo": algo, "difficulty": {"enabled": False}}))
        run.with_suffix(".json").write_text(json.dumps(result))
    hint_transfer.write_atomic(
        hint_transfer.collect_path(tmp_path), {"prompts": 8, "train": ["x"], "test": ["y"]}
    )
    for arm, seed, lp in (("a1", 0, -2.0), ("a1", 1, -1.5), ("b", 0, -2.5), ("b", 1, -2.5)):
        readout = {"logprob_test": lp, "logprob_heldout": lp, "wall_seconds": 9.0, "steps": 2}
        hint_transfer.write_atomic(hint_transfer.hint_result(tmp_path, arm, seed), readout)
    step_log = [{"step": 1, "accuracy": 0.25}, {"step": 2, "accuracy": 0.5}]
    for arm, seed, lp, first in (
        ("a2", 0, -1.0, 0.5),
        ("a2", 1, -1.2, 0.7),
        ("b", 0, -1.1, 0.1),
        ("base", 0, -3, 0),
    ):
        readout = {
            "logprob_test": lp,
            "wall_seconds": 9.0,
            "steps": 2,
            "step_log": [dict(step_log[0], accuracy=first)],
        }
        hint_transfer.write_atomic(hint_transfer.hint_result(tmp_path, arm, seed, "reading"), readout)
    mechanisms_report.aggregate(tmp_path, args)
    report = json.loads(args.json.read_text())
    rows = {r["name"]: r for r in report["iterations"]}
    assert rows["reg_grpo_it4"]["seeds"] == [0, 1] and rows["reg_grpo_it4"]["mean"] == pytest.approx(0.625)
    diff = rows["reg_grpo_it4"]["diff_vs_grpo"]
    assert diff["mean"] == pytest.approx(0.075) and diff["ci95"][0] < 0.075 < diff["ci95"][1]
    assert rows["grpo_it4"]["clip_frac"] == [0.01, 0.01] and rows["grpo_it1"]["seeds"] == []
    assert "it:grpo_it1:0" in report["missing"] and not report["complete"]
    hints = report["hint_transfer"]
    assert hints["collection"] == {"prompts": 8, "train_clips": 1, "test_clips": 1}
    assert hints["arms"]["a1"]["per_seed"]["1"]["logprob_test"] == -1.5
    assert hints["comparisons"]["logprob_test: a1 - b"]["mean"] == pytest.approx(0.75)
    assert hints["arms"]["a1"]["change_from_base"]["logprob_test"] is None  # no base readout yet
    reading = report["hint_transfer_reading"]
    assert reading["arms"]["a2"]["first_step_accuracy"] == pytest.approx(0.6)  # reads the hint: 0.6 vs 0.1
    assert reading["arms"]["b"]["first_step_accuracy"] == pytest.approx(0.1)
    assert reading["comparisons"]["logprob_test: a2 - b"] == {"seeds": [0], "mean": 0.1, "ci95": None}
    assert reading["warm_start"] == {"settings": list(hint_transfer.READING_SFT)}
    assert reading["arms"]["a2"]["change_from_base"]["logprob_test"] == pytest.approx(1.9)  # -1.1 - (-3)
    assert {"readwarm", "collect:reading", "hint:b:1:reading", "hint:c:0:reading"} <= set(report["missing"])
    table = args.json.with_suffix(".md").read_text()  # the tables docs/results.md quotes
    assert (
        "| reg_grpo_it4 | [0, 1] | 55.0 / 70.0 | 62.5 [" in table
        and "| logprob_test: a1 - b | +0.75 [" in table
    )
    assert "beyond the seed spread" in report["decision_rule"] and "trigger: all" in report["decision_rule"]


def test_reading_cells_start_from_the_trained_hint_reading_model(tmp_path):
    args = _args(tmp_path)
    cfg = hint_transfer.config(tmp_path, 2, args, "reading")
    assert cfg.model.path == str(hint_transfer.reading_model_dir(tmp_path))
    assert (cfg.sft.steps, cfg.sft.shipped, cfg.train.seed, cfg.data.synth.seed) == (0, False, 2, 0)
    assert cfg.train.output_dir == str(tmp_path / "hint_reading" / "warm")
    shipped = hint_transfer.config(tmp_path, 2, args)
    assert (shipped.model.path, shipped.sft.shipped, shipped.train.output_dir) == (
        None, True, str(tmp_path / "hint" / "warm"),
    )  # fmt: skip
    with pytest.raises(SystemExit, match="readwarm cell first"):
        hint_transfer.setup(tmp_path, 0, args, "reading")
