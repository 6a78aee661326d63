"""What a run prints: plain unwrapped ISO-timestamped log lines in files, and a last line with the
change and its interval, the run directory and the plots."""

from __future__ import annotations

import io
import logging
import re

import pytest

from deepvideo_r1.cli import _log_handler
from deepvideo_r1.evaluation.evaluate import EvalReport
from deepvideo_r1.run_summary import accuracy_change, summary_line


def test_log_lines_in_a_file_are_one_line_each_with_an_iso_timestamp():
    stream = io.StringIO()  # not a terminal: what `train ... 2> log.txt` writes to
    handler = _log_handler(stream)
    message = "rl step 1/40 | " + " | ".join(f"key{i} 0.{i}" for i in range(30))  # ~300 characters
    handler.handle(logging.LogRecord("x", logging.INFO, __file__, 1, message, None, None))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith(message)  # not wrapped at 80 columns
    assert re.match(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2} INFO    rl step 1/40", lines[0])


def _report(scores: dict[str, float]) -> EvalReport:
    acc = sum(scores.values()) / len(scores)
    return EvalReport(n=len(scores), n_labelled=len(scores), accuracy=acc, format_rate=1.0, scores=scores)


def test_accuracy_change_is_paired_over_samples():
    before = _report({"a": 0.0, "b": 1.0, "c": 0.0, "d": 0.0})
    after = _report({"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0})
    change = accuracy_change(before, after)
    # differences 1, 0, 1, 0: mean 0.5, s = sqrt(4 * 0.25 / 3) = 0.5774, t(3) = 3.1824,
    # half width = 3.1824 * 0.5774 / 2 = 0.9187
    assert change["mean"] == 0.5 and change["n"] == 4
    assert change["ci95"] == pytest.approx([0.5 - 0.9187, 0.5 + 0.9187], abs=1e-4)
    assert accuracy_change(None, after) is None
    assert "scores" not in after.to_json()  # per-sample scores stay out of the reports


def test_the_last_line_names_change_interval_run_and_plots():
    summary = {
        "eval_accuracy_before": 0.50833, "eval_accuracy_after": 0.59125,
        "eval_change": {"mean": 0.08292, "ci95": [0.0612, 0.1046], "n": 2400},
        "steps": 40, "world_size": 1, "wall_seconds": 812.4,
    }  # fmt: skip
    assert summary_line(summary, "runs/default") == (
        "done: held-out accuracy 50.8 % -> 59.1 %, change +8.3 points (95 % interval +6.1 to +10.5, "
        "2400 paired samples); 40 RL steps, 1 process(es), 812 s; run runs/default, plots runs/default/plots"
    )
    summary |= {"eval_accuracy_before": None, "eval_accuracy_after": None, "eval_change": None}
    assert summary_line(summary, "r").startswith("done: no held-out evaluation; 40 RL steps")


def test_rerunning_a_finished_run_keeps_its_wall_time(tmp_path):
    import json
    from pathlib import Path

    from deepvideo_r1.config import load_config
    from deepvideo_r1.run_summary import finished_run_seconds
    from deepvideo_r1.training.resume import ResumePlan

    cfg = load_config(None, [f"train.output_dir={tmp_path}", "train.max_steps=40"])
    (tmp_path / "summary.json").write_text(json.dumps({"wall_seconds": 336.2}))
    ckpt = Path(tmp_path / "checkpoints")
    assert finished_run_seconds(cfg, ResumePlan(ckpt / "checkpoint-40")) == 336.2  # a no-op rerun
    assert finished_run_seconds(cfg, ResumePlan(ckpt / "checkpoint-20")) is None  # steps were taken
    assert finished_run_seconds(cfg, ResumePlan()) is None


def test_progress_bars_of_transformers_are_off_inside_and_restored_after():
    from transformers.utils import logging as hf_logging

    from deepvideo_r1.models.progress import hf_progress_bars_off

    hf_logging.enable_progress_bar()
    with hf_progress_bars_off():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()


def test_the_python_api_shows_no_transformers_bars(tmp_path, capfd):
    import json

    from deepvideo_r1.api import evaluate
    from deepvideo_r1.config import load_config
    from deepvideo_r1.models.tiny import make_tiny_model

    model = make_tiny_model(
        tmp_path / "m", text_hidden=32, text_layers=1, vision_hidden=32, vision_depth=1, vocab_size=512
    )
    record = {"id": "q", "problem_type": "numerical", "question": "How many?", "answer": "3"}
    (tmp_path / "d.jsonl").write_text(json.dumps(record) + "\n")
    sets = [f"model.path={model}", f"data.eval_file={tmp_path / 'd.jsonl'}", "rollout.max_new_tokens=2"]
    capfd.readouterr()
    report = evaluate(load_config(None, sets), tmp_path / "e")
    assert report.n == 1 and "Loading weights" not in capfd.readouterr().err
