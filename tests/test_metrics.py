"""Metrics logger: JSONL records, resume truncation, tracker mirror, progress ETA."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch

from deepvideo_r1.metrics.logger import (
    METRICS_FILE,
    MetricsLogger,
    TrainProgress,
    format_metrics,
    read_metrics,
    truncate_metrics,
)


def test_log_writes_flushed_jsonl(tmp_path):
    logger = MetricsLogger(tmp_path)
    logger.log(1, {"reward/mean": 1.5, "loss/total": torch.tensor(0.25), "perf/lr": 1e-6})
    # flushed before close: a crash right now would keep the record
    line = (tmp_path / METRICS_FILE).read_text().splitlines()[0]
    record = json.loads(line)
    assert record["step"] == 1 and record["reward/mean"] == 1.5 and record["loss/total"] == 0.25
    logger.log(2, {"loss/total": float("nan"), "perf/grad_norm": float("inf")})
    logger.close()
    raw = (tmp_path / METRICS_FILE).read_text().splitlines()[1]
    assert "NaN" not in raw and '"nan"' in raw  # strict JSON on disk
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [1, 2]
    assert math.isnan(records[1]["loss/total"]) and records[1]["perf/grad_norm"] == math.inf


def test_disabled_logger_writes_nothing(tmp_path):
    logger = MetricsLogger(tmp_path / "run", enabled=False)
    logger.log(1, {"reward/mean": 1.0})
    logger.close()
    assert not (tmp_path / "run").exists()


def test_resume_truncates_later_steps(tmp_path):
    with MetricsLogger(tmp_path) as logger:
        for step in range(1, 6):
            logger.log(step, {"reward/mean": float(step)})
    with open(tmp_path / METRICS_FILE, "a") as f:
        f.write('{"step": 6, "rew')  # torn line from a crash
    # the checkpoint was at step 3: steps 4, 5 and the torn line are redone
    with MetricsLogger(tmp_path, resume_step=3) as logger:
        logger.log(4, {"reward/mean": 40.0})
    records = read_metrics(tmp_path)
    assert [(r["step"], r["reward/mean"]) for r in records] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
    assert truncate_metrics(tmp_path / "absent.jsonl", 0) == 0


def test_read_metrics_rejects_corrupt_middle_line(tmp_path):
    (tmp_path / METRICS_FILE).write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2"):
        read_metrics(tmp_path)


def test_mirror_gets_numbers_at_offset_steps(tmp_path):
    calls = []
    with MetricsLogger(
        tmp_path, mirror=lambda values, step: calls.append((step, values)), step_offset=5
    ) as log:
        log.log(1, {"reward/mean": 0.5, "note": "text", "gone": None, "flag": True})
        log.log(2, {"note": "text only"})  # nothing numeric: no mirror call
    # RL step 1 after 5 SFT steps lands at tracker step 6; strings, None and bools stay in the jsonl only
    assert calls == [(6, {"reward/mean": 0.5})]


def test_progress_plain_log_and_eta(caplog, monkeypatch):
    clock = iter([100.0, 100.0, 105.0, 110.0, 120.0])
    monkeypatch.setattr("deepvideo_r1.metrics.logger.time.monotonic", lambda: next(clock))
    # clock reads: __init__ 100, __enter__ 100 (start), update(3) 105, eta_seconds 110, update 120
    with (
        caplog.at_level(logging.INFO, logger="deepvideo_r1.metrics.logger"),
        TrainProgress(total_steps=12, initial=2, log_every=2, use_bar=False) as bar,
    ):
        # 3 % 2 != 0, but the first step of a (resumed) run is always shown: 5 s / 1 step * 9 left
        bar.update(3, {"reward/mean": 1.0})
        # 2 steps done in 10 s -> 5 s/step, 12 - 4 = 8 steps left -> 40 s
        assert bar.eta_seconds(4) == pytest.approx(40.0)
        bar.update(4, {"reward/mean": 1.25, "loss/total": 0.5})
        bar.update(5, {})  # 5 % 2 != 0 and not the first step: no line, no clock read
    # at 120: 20 s / 2 steps * 8 left = 80 s -> "1:20"
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "rl step 3/12 | reward 1 | eta 0:45",
        "rl step 4/12 | reward 1.25 | loss 0.5 | eta 1:20",
    ]


def test_progress_prints_step_one_then_every_log_every(caplog):
    with (
        caplog.at_level(logging.INFO, logger="deepvideo_r1.metrics.logger"),
        TrainProgress(total_steps=12, log_every=5, use_bar=False) as bar,
    ):
        for step in range(1, 13):
            bar.update(step, {})
    shown = [int(r.getMessage().split()[2].split("/")[0]) for r in caplog.records]
    assert shown == [1, 5, 10, 12]  # step 1 at once (not minutes of silence), then 5, 10, the last


def test_format_metrics_skips_absent():
    assert format_metrics({"a": 1.23456, "c": None}, ["a", "b", "c"]) == "a 1.235"
