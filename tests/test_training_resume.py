"""Resume and failure behaviour of whole runs: stale results, changed settings, damaged
checkpoints, non-finite updates. Each test copies one finished 2-step tiny run."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from typer.testing import CliRunner

from deepvideo_r1.artifacts import LOCK_FILE, DirectoryLockedError
from deepvideo_r1.checkpoints.integrity import CheckpointError
from deepvideo_r1.cli import app
from deepvideo_r1.config import load_config
from deepvideo_r1.metrics.logger import read_metrics
from deepvideo_r1.pipeline import StaleModelError, prepare_model_dir, run_training
from deepvideo_r1.presets import TINY_CPU
from deepvideo_r1.training.guard import NonFiniteUpdateError, UpdateGuard
from deepvideo_r1.training.resume import (
    SAFE_TO_CHANGE,
    ResumeConfigError,
    ResumeError,
    RunDirectoryError,
    check_train_file,
)
from helpers import TINY_RUN

# About 2 s per RL step: 6 training clips, 1 eval clip, G = 2, 1 prompt per step, 6 new tokens.
FAST = [
    *TINY_RUN,
    "data.synth.n_train=6",
    "data.synth.n_eval=1",
    "sft.steps=0",
    "rollout.prompts_per_step=1",
    "rollout.max_new_tokens=6",
    "train.eval_batch_size=2",
    "train.lr=1e-4",
    "train.warmup_steps=0",
    "train.schedule=constant",
    "model.tiny_sizes.text_layers=1",
]


# Completion length in characters: random completions almost never tie, so every step updates.
LENGTH_REWARD = """
def length(completion, sample):
    return len(completion) / 100
"""
_REWARD: list[str] = []


def config(run: Path, *extra: str):
    return load_config(TINY_CPU, [*FAST, *_REWARD, f"train.output_dir={run}", *extra])


def cli_args(run: Path, *extra: str) -> list[str]:
    return ["train", "-o", str(run), *[a for item in [*FAST, *_REWARD] for a in ("--set", item)], *extra]


@pytest.fixture(scope="module", autouse=True)
def _no_plots():
    """PNG curves take ~75 % of a tiny run's time and are tested elsewhere."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("deepvideo_r1.metrics.plots.plot_run", lambda *a, **k: None)
        yield


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 2-step run with checkpoints 1 and 2."""
    root = tmp_path_factory.mktemp("finished")
    (root / "length.py").write_text(LENGTH_REWARD)
    _REWARD[:] = [f"algo.reward_weights={{'{root / 'length.py'}:length': 1.0}}"]
    run_training(config(root / "run"))
    return root / "run"


@pytest.fixture
def run(finished, tmp_path) -> Path:
    """A copy of the finished run (a user's copied run directory)."""
    return Path(shutil.copytree(finished, tmp_path / "run"))


def _rl_records(run: Path) -> list[dict]:
    """The RL step records of metrics.jsonl (the held-out eval records left out)."""
    return [r for r in read_metrics(run / "metrics.jsonl") if "reward/mean" in r]


def _steps(run: Path) -> list[int]:
    return [r["step"] for r in _rl_records(run)]


def _keys(path: Path) -> list[str]:
    return [json.loads(line)["eval_key"] for line in path.read_text().splitlines()]


def test_changed_settings_are_refused_then_applied_when_asked(run):
    with pytest.raises(ResumeConfigError) as err:
        run_training(config(run, "train.max_steps=3", "algo.beta=0.2", "algo.loss=grpo", "train.lr=1e-3"))
    message = str(err.value)
    for change in ("algo.beta: 0.04 -> 0.2", "algo.loss: reg_grpo -> grpo", "train.lr: 0.0001 -> 0.001"):
        assert change in message
    assert "train.max_steps" not in message and "train.output_dir" not in message  # safe to change
    assert _steps(run) == [1, 2]  # refused before any work
    # asked for: the new lr really applies (not the saved scheduler's 1e-4) and is recorded
    run_training(config(run, "train.max_steps=3", "train.lr=1e-3"), resume_with_changes=True)
    last = _rl_records(run)[-1]
    assert last["step"] == 3 and last["perf/lr"] == pytest.approx(1e-3)
    assert last["resume/changes"] == "train.lr: 0.0001 -> 0.001"
    assert "lr: 0.001" in (run / "checkpoints" / "checkpoint-3" / "config.yaml").read_text()


def test_resume_none_into_a_run_needs_overwrite_and_max_steps_below_a_checkpoint_is_refused(run):
    with pytest.raises(RunDirectoryError, match=r"holds another run \(checkpoints/, metrics.jsonl"):
        run_training(config(run, "train.resume=none"))
    with pytest.raises(ResumeError, match=r"checkpoint-2 is at step 2, beyond train.max_steps=1"):
        run_training(config(run, "train.max_steps=1"))
    result = CliRunner().invoke(app, cli_args(run, "--resume", "none"))
    assert result.exit_code == 2 and "pass --overwrite" in result.output
    old_key = _keys(run / "eval_after" / "predictions.jsonl")
    summary = run_training(config(run, "train.resume=none", "train.max_steps=1"), overwrite=True)
    assert summary["steps"] == 1 and _steps(run) == [1]  # the old steps are gone, not mixed in
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-1"]
    assert _keys(run / "eval_after" / "predictions.jsonl") != old_key


def test_continuing_a_copied_run_evaluates_the_new_model_again(run):
    """Before: eval_after/ of the step-2 model was reused for the step-3 model."""
    before = json.loads((run / "summary.json").read_text())
    old_key = _keys(run / "eval_after" / "predictions.jsonl")
    old_before_key = _keys(run / "eval_before" / "predictions.jsonl")
    summary = run_training(config(run, "train.max_steps=3"))
    new_key = _keys(run / "eval_after" / "predictions.jsonl")
    assert len(new_key) == 1 and new_key != old_key
    assert _keys(run / "eval_before" / "predictions.jsonl") == old_before_key  # same model: reused
    report = json.loads((run / "eval_after" / "eval_report.json").read_text())
    assert summary["eval_accuracy_after"] == report["accuracy"]
    assert summary["eval_accuracy_before"] == before["eval_accuracy_before"]


def test_damaged_checkpoint_is_skipped_or_named_and_partial_folders_removed(run, caplog):
    ckpt = run / "checkpoints"
    weights = ckpt / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"checkpoint-2/model\.safetensors has \d+ bytes"):
        run_training(config(run, f"train.resume={ckpt / 'checkpoint-2'}"))
    (ckpt / "checkpoint-3.tmp-99999").mkdir()
    with caplog.at_level(logging.WARNING):
        run_training(config(run))  # auto: checkpoint-1, then step 2 again
    assert "skipping a damaged checkpoint" in caplog.text and "model.safetensors has" in caplog.text
    assert _steps(run) == [1, 2]
    assert sorted(p.name for p in ckpt.iterdir()) == ["checkpoint-1", "checkpoint-2"]


def test_tiny_model_is_reused_only_with_its_recorded_sizes(tmp_path):
    acc = Accelerator(cpu=True)
    out = prepare_model_dir(config(tmp_path), acc)
    assert prepare_model_dir(config(tmp_path, "train.lr=1"), acc) == out  # other settings: reused
    with pytest.raises(StaleModelError, match=r"tiny_sizes\.text_layers differ"):
        prepare_model_dir(config(tmp_path, "model.tiny_sizes.text_layers=3"), acc)
    with pytest.raises(StaleModelError, match=r"seed differ"):
        prepare_model_dir(config(tmp_path, "train.seed=1"), acc)


def test_update_guard_counts_skips_in_a_row():
    guard = UpdateGuard(2)
    assert guard.allow(0.5, 1.0)
    assert not guard.allow(float("nan"), 1.0)
    assert guard.allow(0.5, 2.0) and guard.in_a_row == 0  # a good update resets the count
    assert not guard.allow(0.5, float("inf"))
    with pytest.raises(NonFiniteUpdateError, match=r"2 updates in a row"):
        guard.allow(float("-inf"), 1.0)


def _poison(monkeypatch, calls: int | None) -> None:
    """Make the policy loss NaN for the first `calls` micro-batches (None: always)."""
    import deepvideo_r1.training.step as step

    real, seen = step.policy_loss, [0]

    def loss(*args, **kwargs):
        value, metrics = real(*args, **kwargs)
        seen[0] += 1
        bad = calls is None or seen[0] <= calls
        return (value * float("nan") if bad else value), metrics

    monkeypatch.setattr(step, "policy_loss", loss)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_a_non_finite_update_is_skipped_and_counted(tmp_path, finished, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(finished / "tiny_model", run / "tiny_model")
    shutil.copytree(finished / "synth", run / "synth")
    _poison(monkeypatch, calls=1)  # the one micro-batch of step 1
    run_training(config(run))
    records = _rl_records(run)
    assert [r["perf/skipped_updates"] for r in records] == [1.0, 0.0]
    start, one, two = (_weights(p) for p in (run / "tiny_model", *sorted((run / "checkpoints").iterdir())))
    trained = [k for k in one if k in start and not torch.equal(start[k], two[k])]
    assert trained  # step 2 updated the weights ...
    assert all(torch.equal(start[k], one[k]) for k in trained)  # ... step 1 did not


def test_non_finite_updates_in_a_row_stop_the_run_with_finite_checkpoints(tmp_path, finished, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(finished / "tiny_model", run / "tiny_model")
    shutil.copytree(finished / "synth", run / "synth")
    _poison(monkeypatch, calls=None)
    with pytest.raises(NonFiniteUpdateError, match="2 updates in a row"):
        run_training(config(run, "train.max_skipped_updates=2", "train.max_steps=3"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-1"]
    assert all(torch.isfinite(t).all() for t in _weights(run / "checkpoints" / "checkpoint-1").values())


def test_safe_to_change_keys_are_real_and_documented():
    from deepvideo_r1.config import describe_fields

    fields = {row["name"] for row in describe_fields()}
    assert set(SAFE_TO_CHANGE) <= fields
    doc = (Path(__file__).resolve().parents[1] / "docs" / "reliability.md").read_text()
    assert all(f"`{key}`" in doc for key in SAFE_TO_CHANGE)


def test_model_sft_and_train_file_changes_are_refused_even_with_the_flag(run):
    """The checkpoint's weights (or adapters) belong to the model and warm start it was trained from."""
    for change in ("model.dtype=bfloat16", "sft.steps=1", f"model.path={run / 'tiny_model'}"):
        with pytest.raises(ResumeConfigError) as err:
            run_training(config(run, change), resume_with_changes=True)
        message = str(err.value)
        assert change.split("=")[0] in message and "even with --resume-with-changes" in message
    assert _steps(run) == [1, 2]  # refused before any work


def test_a_changed_training_file_is_refused_at_plan_time(tmp_path, finished):
    saved = json.loads((finished / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert "train_file_bytes" in saved and saved["train_file_bytes"] is None  # synthetic data: no file
    checkpoint = tmp_path / "checkpoint-1"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text(json.dumps({"train_file_bytes": 10}))
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("x" * 12)
    with pytest.raises(ResumeError, match=r"train\.jsonl has 12 bytes, but .*checkpoint-1 was trained on 10"):
        check_train_file(checkpoint, str(train_file))
    train_file.write_text("x" * 10)
    check_train_file(checkpoint, str(train_file))  # the same size: accepted


def test_a_run_directory_in_use_by_a_live_process_is_refused(run, finished):
    assert not (finished / LOCK_FILE).exists()  # a finished run released its lock
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "command": "train", "since": "now"}
    (run / LOCK_FILE).write_text(json.dumps(holder))  # a live process (our parent) holds it
    with pytest.raises(DirectoryLockedError, match=rf"is in use by train \(PID {os.getppid()} on"):
        run_training(config(run, "train.max_steps=3"))
    result = CliRunner().invoke(app, cli_args(run, "--max-steps", "3"))
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"is in use by train (PID {os.getppid()}" in result.output
    assert _steps(run) == [1, 2] and json.loads((run / LOCK_FILE).read_text()) == holder  # untouched


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed")
def test_mlflow_takes_per_category_eval_metrics_and_a_resume_that_changes_max_steps(run, monkeypatch):
    """MLflow refused `eval/accuracy/task=count` (the run died before final_model/ and summary.json)
    and, on a resume with another max_steps, 'Changing param values is not allowed'."""
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    sets = ("train.report_to=[mlflow]", "train.eval_every=0")
    (run / "final_model").rename(run / "old_final_model")
    run_training(config(run, *sets))  # at checkpoint-2 already: nothing to train, the summary is redone
    assert (run / "final_model" / "COMPLETE").exists()
    summary = run_training(config(run, *sets, "train.max_steps=3"))
    assert summary["steps"] == 3 and json.loads((run / "summary.json").read_text())["steps"] == 3
    client = MlflowClient(tracking_uri=(run / "mlruns").as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "deepvideo-r1"]
    (mlrun,) = client.search_runs([experiment.experiment_id])  # the resume continued it
    assert mlrun.data.params["train.max_steps"] == "2" and mlrun.data.tags["resume.train.max_steps"] == "3"
    per_category = [k for k in mlrun.data.metrics if k.startswith("eval/accuracy_task_")]
    assert per_category, sorted(mlrun.data.metrics)
    steps = [m.step for m in client.get_metric_history(mlrun.info.run_id, per_category[0])]
    # evaluations are sent when they happen: steps 0 and 2 went to the original run's trackers (none),
    # the rerun at checkpoint-2 decodes nothing new, the resume sends step 3's (no SFT: no offset)
    assert sorted(set(steps)) == [3]
