"""Trackers through accelerate: values logged by MetricsLogger and tables are read back from
TensorBoard event files, an offline W&B run directory and an MLflow file store."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import struct
import time

import pytest
from accelerate import Accelerator

from deepvideo_r1.metrics.logger import MetricsLogger, read_metrics
from deepvideo_r1.metrics.trackers import (
    TRACKER_RUNS_FILE,
    TrackerError,
    build_trackers,
    check_tracker_packages,
    flat_config,
    log_table,
    start_trackers,
    tracker_name,
)

CONFIG = {"algo": {"beta": 0.1, "reward_weights": {"format": 1.0}}, "model": {"path": None}, "t": [1, 2]}


def _log_run(tmp_path, names):
    """Start `names`, log two RL steps after 3 SFT steps and one table, close; returns the run dir."""
    run = tmp_path / "run"
    acc = Accelerator(cpu=True, log_with=build_trackers(names, "proj", "my-run", run))
    start_trackers(acc, "proj", CONFIG)
    with MetricsLogger(run, mirror=acc.log, step_offset=3) as log:
        log.log(1, {"reward/mean": 0.5})
        log.log(2, {"reward/mean": 0.75})
    log_table(acc, "completions", ["completion", "reward"], [["<answer>A</answer>", 2.0]], step=5)
    acc.end_training()
    return run


def test_flat_config_is_dotted_scalars():
    assert flat_config(CONFIG) == {
        "algo.beta": 0.1,
        "algo.reward_weights.format": 1.0,
        "model.path": "null",  # None, lists: JSON text (TensorBoard hparams take scalars and strings)
        "t": "[1, 2]",
    }


def test_missing_package_is_one_line_naming_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name))
    with pytest.raises(TrackerError) as err:
        check_tracker_packages(["tensorboard", "wandb"])
    message = str(err.value)
    assert "\n" not in message and "'wandb' package is not installed" in message
    assert "pip install wandb" in message


def test_tensorboard_scalars_hparams_and_table(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = _log_run(tmp_path, ["tensorboard"])
    events = EventAccumulator(str(run / "tb" / "my-run"), size_guidance={"tensors": 0})
    events.Reload()
    # RL steps 1, 2 after 3 SFT steps: tracker steps 4, 5
    assert [(e.step, e.value) for e in events.Scalars("reward/mean")] == [(4, 0.5), (5, 0.75)]
    text = events.Tensors("completions/text_summary")[0]
    assert text.step == 5
    assert text.tensor_proto.string_val[0].decode().splitlines() == [
        "| completion | reward |",
        "|---|---|",
        "| <answer>A</answer> | 2.0 |",
    ]
    (hparams,) = list((run / "tb" / "my-run").glob("*/hparams.yml"))
    assert "algo.beta: 0.1" in hparams.read_text()


def _wandb_records(path):
    """Protobuf records of a .wandb file (LevelDB log format: 7-byte file header, 32 KiB blocks,
    each chunk = crc32 (4) + length (2, little-endian) + type (1: full, 2: first, 3: middle, 4: last))."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, pending = path.read_bytes(), 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            continue
        pending += chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _parse_wandb(log_file):
    """(history rows, config, (project, run name) pairs) of an offline run's .wandb file."""
    history, config, names = [], {}, []
    for record in _wandb_records(log_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
        elif kind == "config":
            config |= {item.key: json.loads(item.value_json) for item in record.config.update}
        elif kind == "run":
            names.append((record.run.project, record.run.display_name))
    return history, config, names


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is not installed")
def test_wandb_offline_run_reads_back(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = _log_run(tmp_path, ["wandb"])
    (run_dir,) = list((run / "wandb").glob("offline-run-*"))
    (log_file,) = list(run_dir.glob("run-*.wandb"))
    for _ in range(60):  # wandb's service process may still be flushing the file under load
        history, config, names = _parse_wandb(log_file)
        if names and len([h for h in history if "reward/mean" in h]) == 2:
            break
        time.sleep(0.5)
    assert ("proj", "my-run") in names
    assert config["algo.beta"] == 0.1
    steps = [(h["_step"], h["reward/mean"]) for h in history if "reward/mean" in h]
    assert steps == [(4, 0.5), (5, 0.75)]
    (table,) = list(run_dir.glob("files/media/table/completions_*.table.json"))
    assert json.loads(table.read_text()) == {
        "columns": ["completion", "reward"],
        "data": [["<answer>A</answer>", 2.0]],
    }


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed")
def test_mlflow_file_store_reads_back(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default: a file store in the run
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    run = _log_run(tmp_path, ["mlflow"])
    client = MlflowClient(tracking_uri=(run / "mlruns").as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "proj"]
    (mlrun,) = client.search_runs([experiment.experiment_id])
    assert mlrun.info.run_name == "my-run"
    assert mlrun.data.params["algo.beta"] == "0.1"
    history = client.get_metric_history(mlrun.info.run_id, "reward/mean")
    assert [(m.step, m.value) for m in history] == [(4, 0.5), (5, 0.75)]
    (artifact,) = list((run / "mlruns").glob("*/*/artifacts/completions/step_0000005.json"))
    assert json.loads(artifact.read_text()) == [{"completion": "<answer>A</answer>", "reward": 2.0}]


def _session(run, names, steps, purge_step=None):
    """One process's share of a run: start (resuming when `purge_step`), log `steps`, close."""
    acc = Accelerator(cpu=True, log_with=build_trackers(names, "proj", "my-run", run))
    start_trackers(acc, "proj", CONFIG, purge_step=purge_step, run_dir=run)
    with MetricsLogger(run, mirror=acc.log, step_offset=3) as log:
        for step in steps:
            log.log(step, {"reward/mean": step / 10})
    acc.end_training()


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed")
def test_a_resumed_run_continues_its_mlflow_and_wandb_runs(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    names = ["mlflow"] + (["wandb"] if importlib.util.find_spec("wandb") else [])
    run = tmp_path / "run"
    _session(run, names, [1, 2])
    first = json.loads((run / TRACKER_RUNS_FILE).read_text())
    assert set(first) == set(names)
    _session(run, names, [3], purge_step=3 + 3)  # resumed from checkpoint-2
    assert json.loads((run / TRACKER_RUNS_FILE).read_text()) == first
    client = MlflowClient(tracking_uri=(run / "mlruns").as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "proj"]
    (mlrun,) = client.search_runs([experiment.experiment_id])  # one run, not two
    history = client.get_metric_history(mlrun.info.run_id, "reward/mean")
    assert [(m.step, m.value) for m in history] == [(4, 0.1), (5, 0.2), (6, 0.3)]
    if "wandb" in names:  # offline: one directory per process, both for the same run id
        dirs = sorted((run / "wandb").glob("offline-run-*"))
        # offline-run-<time>-<id>, with "-1" appended when both started in the same second
        assert len(dirs) == 2 and all(f"-{first['wandb']}" in d.name for d in dirs)


def test_a_fresh_start_does_not_continue_the_recorded_runs(tmp_path, monkeypatch):
    from accelerate.tracking import MLflowTracker

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / TRACKER_RUNS_FILE).write_text(json.dumps({"mlflow": "0123"}))
    (tracker,) = build_trackers(["mlflow"], "proj", "my-run", run)
    acc = Accelerator(cpu=True, log_with=[tracker])
    monkeypatch.setattr(acc, "init_trackers", lambda *a, **k: None)
    start_trackers(acc, "proj", CONFIG, run_dir=run)  # no checkpoint: a new run
    assert isinstance(tracker, MLflowTracker) and tracker.run_id is None
    start_trackers(acc, "proj", CONFIG, purge_step=5, run_dir=run)
    assert tracker.run_id == "0123"


# Metric names as the evaluation makes them: per-category keys carry `=`, categories may hold spaces.
ODD_NAMES = ["eval/accuracy/task=count", "eval/accuracy/type=Action Sequence", "perf/step_s", "a//b", "3d/x"]


def _valid_for_wandb(name: str) -> bool:
    """W&B's metric-name rule: letters, digits, underscores, not starting with a digit; `/` groups."""
    return all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part) for part in name.split("/"))


def test_tracker_names_pass_every_trackers_rules():
    mapped = [tracker_name(n) for n in ODD_NAMES]
    assert mapped == [
        "eval/accuracy_task_count", "eval/accuracy_type_Action_Sequence", "perf/step_s", "a/b", "_3d/x",
    ]  # fmt: skip
    # no name is a path prefix of another (MLflow's file store keeps each name as a file)
    assert all(not b.startswith(a + "/") for a in [*mapped, "eval/accuracy"] for b in mapped)
    for name in mapped:
        assert _valid_for_wandb(name), name
        # TensorBoard's tag rule (tf.summary's _clean_tag): other characters are rewritten with a warning
        assert re.fullmatch(r"[-/\w.]+", name) and not name.startswith("/"), name
        if importlib.util.find_spec("mlflow"):
            from mlflow.utils.validation import _validate_metric_name

            _validate_metric_name(name)  # raises MlflowException on a name MLflow refuses


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed")
def test_a_tracker_error_is_a_warning_and_the_run_goes_on(tmp_path, monkeypatch, caplog):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    acc = Accelerator(cpu=True, log_with=build_trackers(["mlflow"], "proj", "my-run", run))
    start_trackers(acc, "proj", CONFIG, run_dir=run)

    def down(*args, **kwargs):
        raise OSError("store is down")

    monkeypatch.setattr(mlflow, "log_metrics", down)
    with caplog.at_level(logging.WARNING), MetricsLogger(run, mirror=acc.log) as log:
        log.log(1, {"reward/mean": 0.5})
        log.log(2, {"reward/mean": 0.7})
    acc.end_training()
    warnings = [r.getMessage() for r in caplog.records if "tracker mlflow" in r.getMessage()]
    assert warnings == ["tracker mlflow: logging failed (OSError: store is down); the run goes on without it"]
    assert [r["step"] for r in read_metrics(run)] == [1, 2]  # metrics.jsonl has every record


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('["abc"]', "holds a list, not a {tracker: run id} object"),
        ('{"wandb": "a/b"}', "'wandb': 'a/b' is not a tracker run id"),
    ],
)
def test_a_damaged_tracker_runs_file_is_one_line_naming_it(tmp_path, content, message):
    (tmp_path / TRACKER_RUNS_FILE).write_text(content)
    acc = Accelerator(cpu=True, log_with=build_trackers(["tensorboard"], "proj", "my-run", tmp_path))
    with pytest.raises(TrackerError, match=re.escape(message)) as err:
        start_trackers(acc, "proj", CONFIG, purge_step=3, run_dir=tmp_path)
    assert str(tmp_path / TRACKER_RUNS_FILE) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed")
def test_a_resumed_mlflow_run_with_changed_params_keeps_the_first_and_tags_the_new(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    run = tmp_path / "run"
    _session(run, ["mlflow"], [1, 2])
    changed = {**CONFIG, "algo": {**CONFIG["algo"], "beta": 0.2}, "train": {"max_steps": 9}}
    acc = Accelerator(cpu=True, log_with=build_trackers(["mlflow"], "proj", "my-run", run))
    start_trackers(acc, "proj", changed, purge_step=6, run_dir=run)
    acc.log({"eval/accuracy": 0.4, "eval/accuracy/task=count": 0.5}, step=6)
    acc.end_training()
    client = MlflowClient(tracking_uri=(run / "mlruns").as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "proj"]
    (mlrun,) = client.search_runs([experiment.experiment_id])
    assert mlrun.data.params["algo.beta"] == "0.1" and mlrun.data.params["train.max_steps"] == "9"
    assert mlrun.data.tags["resume.algo.beta"] == "0.2"
    assert mlrun.data.metrics["eval/accuracy_task_count"] == 0.5


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed")
def test_an_unknown_recorded_mlflow_run_is_a_warning_not_a_crash(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / TRACKER_RUNS_FILE).write_text(json.dumps({"mlflow": "0123456789abcdef0123456789abcdef"}))
    acc = Accelerator(cpu=True, log_with=build_trackers(["mlflow"], "proj", "my-run", run))
    with caplog.at_level(logging.WARNING):
        start_trackers(acc, "proj", CONFIG, purge_step=3, run_dir=run)
        acc.log({"reward/mean": 0.5}, step=3)
        acc.end_training()
    assert "tracker mlflow: start failed" in caplog.text
