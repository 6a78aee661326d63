"""End to end on CPU: synthetic videos, tiny model, SFT, eval, RL steps, checkpoints, resume."""

from __future__ import annotations

import importlib
import json
import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepvideo_r1.algos import POLICY_LOSSES
from deepvideo_r1.cli import app
from deepvideo_r1.config import load_config
from deepvideo_r1.metrics.logger import read_metrics
from deepvideo_r1.pipeline import (
    SFT_SETTINGS,
    StaleSftModelError,
    run_sft_only,
    run_training,
    sft_settings,
)
from deepvideo_r1.presets import TINY_CPU
from helpers import TINY_DATA, TINY_RUN, seed_run_dir

# 6 training + 4 eval clips, G = 2, 2 prompts per step, 12 new tokens (the conftest's assets).
FAST = [
    *TINY_RUN,
    *TINY_DATA,
    "sft.steps=2",
    "sft.batch_size=2",
    "rollout.max_new_tokens=12",
    "train.log_every=1",
]


def rl_records(path: Path) -> list[dict]:
    """The RL step records of a metrics.jsonl (held-out eval records are left out)."""
    return [r for r in read_metrics(path) if "reward/mean" in r]


def fast_config(tmp_path: Path, *extra: str):
    return load_config(TINY_CPU, [*FAST, f"train.output_dir={tmp_path / 'run'}", *extra])


@pytest.fixture
def shared_assets(tiny_run_assets: Path) -> Path:
    return tiny_run_assets


def _record_tracker_steps_and_evaluations(monkeypatch) -> tuple[list, list]:
    """([(tracker step, whether it holds eval/*)] of every Accelerator.log, [eval directory names]
    of every evaluation run)."""
    import accelerate

    import deepvideo_r1.pipeline as pipeline

    tracked, evaluated = [], []
    log, evaluate = accelerate.Accelerator.log, pipeline.evaluate_with_config

    def record_log(self, values, step=None, **kwargs):
        tracked.append((step, any(k.startswith("eval/") for k in values)))
        return log(self, values, step=step, **kwargs)

    def record_eval(cfg, model, adapter, samples, out, accelerator, **options):
        evaluated.append(Path(out).name)
        return evaluate(cfg, model, adapter, samples, out, accelerator, **options)

    monkeypatch.setattr(accelerate.Accelerator, "log", record_log)
    monkeypatch.setattr(pipeline, "evaluate_with_config", record_eval)
    return tracked, evaluated


@pytest.mark.parametrize(
    ("timing", "loss"),
    [("same_step", "reg_grpo"), ("next_visit", "grpo")],
)
def test_fast_end_to_end(tmp_path, shared_assets, timing, loss, monkeypatch):
    seed_run_dir(shared_assets, tmp_path / "run")
    cfg = fast_config(tmp_path, f"difficulty.timing={timing}", f"algo.loss={loss}", "algo.beta=0.1")
    tracked, evaluated = _record_tracker_steps_and_evaluations(monkeypatch)
    summary = run_training(cfg)
    # eval_every=0: the evaluation before RL reaches metrics.jsonl and the trackers first, at step 0
    # (tracker step sft.steps + 0), and the one after RL with the last step; each is decoded once
    steps = [r["step"] for r in read_metrics(cfg.train.output_dir)]
    tracker_steps = [step for step, _ in tracked]  # SFT 1-2, eval before 2, RL 3-4 (+ eval after)
    assert steps == [0, 1, 2] and tracker_steps == sorted(tracker_steps)
    assert [step for step, has_eval in tracked if has_eval] == [2, 4]
    assert evaluated == ["eval_before", "eval_after"]
    run = Path(cfg.train.output_dir)
    saved = json.loads((run / "summary.json").read_text())
    assert saved["steps"] == 2 and saved["world_size"] == 1
    for key in ("eval_accuracy_before", "eval_accuracy_after"):
        assert 0.0 <= saved[key] <= 1.0
    assert summary["eval_accuracy_after"] == saved["eval_accuracy_after"]
    records = rl_records(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        for key in (
            "reward/mean", "reward/accuracy", "reward/format", "reward/accuracy_rate", "reward/format_rate",
            "adv/vanishing_ratio_before", "adv/vanishing_ratio_after", "difficulty/r_ref",
            "difficulty/increase", "difficulty/decrease", "loss/total", "loss/kl", "perf/grad_norm",
            "perf/lr", "perf/completion_len", "perf/rollout_s", "perf/reward_s", "perf/logprob_s",
            "perf/update_s", "reward/mean_before", "reward/accuracy_before",
            "difficulty/rescued_fraction", "difficulty/vanished_decrease", "difficulty/rescued_increase",
            "difficulty/hinted_accuracy_after", "difficulty/noised_accuracy_after",
        ):  # fmt: skip
            assert key in r, key
        assert r["difficulty/rescued_decrease"] <= r["difficulty/vanished_decrease"]
        assert 0.0 <= r["reward/mean"] <= 2.0 and 0.0 <= r["reward/mean_before"] <= 2.0
        assert r["perf/grad_norm"] == r["perf/grad_norm"]  # not NaN
    assert (run / "checkpoints" / "checkpoint-2" / "COMPLETE").exists()
    assert (run / "final_model" / "config.json").exists()
    assert any((run / "plots").glob("*.png"))
    assert (run / "eval_after" / "predictions.jsonl").exists()


DIGIT_REWARD = """
def digit_share(completion, sample):
    return sum(c.isdigit() for c in completion) / max(1, len(completion))
"""


# every registered loss; the comparison baselines (algos/sequence_losses.py) only under -m slow,
# to keep the default run short (each run is ~10-40 s on 2 cores; all 11 climbed when measured)
LOSSES = [
    pytest.param(name, marks=pytest.mark.slow if fn.__module__.endswith(".sequence_losses") else ())
    for name, fn in sorted(POLICY_LOSSES.items())
]


@pytest.mark.parametrize("loss", LOSSES)
def test_rl_climbs_a_learnable_reward(tmp_path, shared_assets, loss):
    """The whole loop optimises its reward: a random-init policy rewarded for the share of digits
    in its text (about 2 % at the start) writes mostly digits after 20 steps, with every loss."""
    seed_run_dir(shared_assets, tmp_path / "run")
    (tmp_path / "digits.py").write_text(DIGIT_REWARD)
    cfg = fast_config(
        tmp_path,
        f"algo.loss={loss}",
        f"algo.reward_weights={{'{tmp_path / 'digits.py'}:digit_share': 1.0}}",
        "algo.beta=0",
        "difficulty.enabled=false",
        "sft.steps=0",
        "train.max_steps=20",
        "train.save_every=0",
        "train.lr=1e-2",
        "train.warmup_steps=0",
        "rollout.group_size=8",
        "train.micro_batch_size=16",
        "rollout.max_new_tokens=8",
    )
    run_training(cfg)
    rewards = [r["reward/mean"] for r in rl_records(Path(cfg.train.output_dir) / "metrics.jsonl")]
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert first < 0.1 and last > 0.4, rewards


def test_resume_logs_the_same_rewards_as_an_uninterrupted_run(tmp_path, shared_assets):
    full, cut = tmp_path / "full", tmp_path / "cut"
    for run in (full, cut):
        seed_run_dir(shared_assets, run / "run")
    extra = ["train.max_steps=3", "difficulty.kinds=both"]
    run_training(fast_config(full, *extra))
    run_training(fast_config(cut, "train.max_steps=1"))  # stops after checkpoint-1
    shutil.rmtree(cut / "run" / "eval_after")
    run_training(fast_config(cut, *extra, "train.resume=auto"))
    a = rl_records(full / "run" / "metrics.jsonl")
    b = rl_records(cut / "run" / "metrics.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b, strict=True):
        for key in ("reward/mean", "reward/accuracy", "adv/vanishing_ratio_before", "difficulty/r_ref"):
            assert ra[key] == rb[key], (ra["step"], key)
        assert ra["loss/total"] == pytest.approx(rb["loss/total"], rel=1e-5, abs=1e-7)


def test_eval_every_logs_held_out_accuracy_and_resume_keeps_it(tmp_path, shared_assets, monkeypatch):
    """eval_every=1: step 0 (the initial policy), 1 and 2 carry eval/* in metrics.jsonl; the
    intermediate eval writes eval_step_1/, the last step's is eval_after/. A run resumed from
    checkpoint 1 after a crash that lost checkpoint 2 keeps steps 0 and 1 and decodes nothing again."""
    seed_run_dir(shared_assets, tmp_path / "run")
    cfg = fast_config(tmp_path, "train.eval_every=1", "sft.steps=0", "difficulty.enabled=false")
    _, evaluated = _record_tracker_steps_and_evaluations(monkeypatch)
    summary = run_training(cfg)
    assert evaluated == ["eval_before", "eval_step_1", "eval_after"]  # the last step once
    run = Path(cfg.train.output_dir)
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [0, 1, 2]
    assert all(0.0 <= r["eval/accuracy"] <= 1.0 and "eval/format_rate" in r for r in records)
    assert any(k.startswith("eval/accuracy/task=") for k in records[1])  # per category
    assert records[0]["eval/accuracy"] == summary["eval_accuracy_before"]
    assert records[2]["eval/accuracy"] == summary["eval_accuracy_after"]
    step1 = json.loads((run / "eval_step_1" / "eval_report.json").read_text())
    assert records[1]["eval/accuracy"] == step1["accuracy"]
    assert len((run / "eval_step_1" / "predictions.jsonl").read_text().splitlines()) == 4
    assert not (run / "eval_step_2").exists()
    assert (run / "plots" / "accuracy.png").exists()

    shutil.rmtree(run / "checkpoints" / "checkpoint-2")
    shutil.rmtree(run / "final_model")

    def no_decoding(*args, **kwargs):
        raise AssertionError("an evaluation done before the crash was decoded again")

    evaluate_module = importlib.import_module("deepvideo_r1.evaluation.evaluate")  # the package exports a
    monkeypatch.setattr(evaluate_module, "score_prediction", no_decoding)  # function of that name
    run_training(cfg)
    again = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in again] == [0, 1, 2]
    assert [r["eval/accuracy"] for r in again] == [r["eval/accuracy"] for r in records]


def test_cli_rejects_impossible_config_before_any_work(tmp_path):
    result = CliRunner().invoke(app, ["train", "-o", str(tmp_path / "r"), "--set", "rollout.group_size=1"])
    assert result.exit_code == 2
    assert "group_size" in result.output
    assert not (tmp_path / "r").exists()
    result = CliRunner().invoke(app, ["train", "-o", str(tmp_path / "r"), "--set", "algo.betta=0.1"])
    assert result.exit_code == 2 and "algo.betta" in result.output and "did you mean beta" in result.output


@pytest.mark.slow  # the FSDP test in the default suite launches two processes too
def test_two_process_accelerate_launch(tmp_path, shared_assets):
    """`accelerate launch --cpu --num_processes 2 -m deepvideo_r1 train` gives a two-rank run
    (accelerate starts one process; the CLI relaunches it with torchrun, ranks join over gloo)."""
    import os
    import subprocess
    import sys

    run = tmp_path / "run"
    seed_run_dir(shared_assets, run)
    sets = [arg for item in FAST for arg in ("--set", item)]
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(random.randint(20000, 40000)),  # not 29500: other jobs may hold it
        "-m", "deepvideo_r1", "train", "-o", str(run), *sets,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    records = rl_records(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert all(0.0 <= r["reward/mean"] <= 2.0 for r in records)
    ckpt = run / "checkpoints" / "checkpoint-2"
    assert (ckpt / "COMPLETE").exists()
    assert len(json.loads((ckpt / "rng.json").read_text())) == 2  # one RNG state per rank
    assert len(json.loads((ckpt / "trainer_state.json").read_text())["hints_by_rank"]) == 2


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path, shared_assets):
    """A process killed mid-run resumes from its newest complete checkpoint and logs the same rewards."""
    import os
    import signal
    import subprocess
    import sys
    import time

    full, killed = tmp_path / "full", tmp_path / "killed"
    for run in (full, killed):
        seed_run_dir(shared_assets, run / "run")
    run_training(fast_config(full, "train.max_steps=4"))
    sets = [arg for item in FAST for arg in ("--set", item)]
    cmd = [
        sys.executable,
        "-m",
        "deepvideo_r1",
        "train",
        "-o",
        str(killed / "run"),
        *sets,
        "--max-steps",
        "4",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = killed / "run" / "checkpoints" / "checkpoint-2" / "COMPLETE"
    deadline = time.time() + 300
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists()
    run_training(fast_config(killed, "train.max_steps=4", "train.resume=auto"))
    a = rl_records(full / "run" / "metrics.jsonl")
    b = rl_records(killed / "run" / "metrics.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert [r["reward/mean"] for r in a] == [r["reward/mean"] for r in b]


def test_sft_is_reused_with_equal_settings_and_refused_with_others(tmp_path, caplog):
    cfg = fast_config(tmp_path, "sft.steps=1")
    out = run_sft_only(cfg)
    assert json.loads((out / SFT_SETTINGS).read_text()) == sft_settings(cfg)
    weights = (out / "model.safetensors").stat().st_mtime_ns
    # same settings, other RL settings: the saved model is reused, not retrained
    assert run_sft_only(fast_config(tmp_path, "sft.steps=1", "train.lr=1e-4")) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == weights
    # `train` then says it reuses the model, not "SFT: 1 steps" followed by "skipping"
    import logging

    from accelerate import Accelerator

    from deepvideo_r1.pipeline import RunData, warm_start_model

    with caplog.at_level(logging.INFO, logger="deepvideo_r1.pipeline"):
        same = fast_config(tmp_path, "sft.steps=1")
        assert warm_start_model(same, RunData([], []), Accelerator(cpu=True)) == out
    banners = [r.getMessage() for r in caplog.records if r.getMessage().startswith("── SFT")]
    assert banners == ["── SFT: the complete sft_model/ of this run is reused"]
    with pytest.raises(StaleSftModelError, match=r"sft\.steps differ"):
        run_sft_only(fast_config(tmp_path, "sft.steps=2"))
    # the CLI turns it into a one-line error and exit code 2
    sets = [a for item in [*FAST, "sft.steps=3"] for a in ("--set", item)]
    args = ["sft", "-o", str(tmp_path / "run"), *sets]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "sft.steps differ" in result.output
