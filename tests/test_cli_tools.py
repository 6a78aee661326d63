"""CLI: --version, config show / keys, train --dry-run (config, every record, media, model dir)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from deepvideo_r1 import __version__
from deepvideo_r1.cli import app
from deepvideo_r1.config import describe_fields
from deepvideo_r1.presets import TINY_CPU

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"deepvideo-r1 {__version__}"


def test_config_show_prints_the_resolved_config():
    result = runner.invoke(
        app, ["config", "show", "--set", "algo.beta=0.5", "--set", "train.report_to=[wandb]"]
    )
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.output)
    assert shown["algo"]["beta"] == 0.5 and shown["train"]["report_to"] == ["wandb"]
    preset = yaml.safe_load(Path(TINY_CPU).read_text())  # the default, as for `train`
    assert shown["sft"]["steps"] == preset["sft"]["steps"] > 0 and shown["data"]["synth"]["n_eval"] == 2400
    bad = runner.invoke(app, ["config", "show", "--set", "algo.betta=1"])
    assert bad.exit_code == 2 and "did you mean beta" in bad.output


def test_config_keys_lists_every_key_with_type_and_description():
    result = runner.invoke(app, ["config", "keys"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert len(lines) == len(describe_fields())
    (report_to,) = [line for line in lines if line.startswith("train.report_to ")]
    assert "list[Literal['tensorboard', 'wandb', 'mlflow']]" in report_to and "Trackers" in report_to


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


RECORD = {
    "id": "a",
    "problem_type": "multiple_choice",
    "question": "Which?",
    "options": ["x", "y"],
    "answer": "A",
}


def test_dry_run_checks_every_record_media_and_model(tmp_path):
    import numpy as np

    from deepvideo_r1.video.encode import write_video

    write_video(tmp_path / "clip.mp4", np.zeros((4, 28, 28, 3), dtype=np.uint8), fps=4)  # it decodes
    good = {**RECORD, "videos": [{"path": "clip.mp4"}]}
    _jsonl(tmp_path / "train.jsonl", [good, {**good, "id": "b"}])
    args = [
        "train",
        "--dry-run",
        "-o",
        str(tmp_path / "run"),
        "--set",
        f"data.train_file={tmp_path / 'train.jsonl'}",
    ]
    ok = runner.invoke(app, [*args, "--check-media"])
    assert ok.exit_code == 0, ok.output
    assert "train.jsonl: 2 records (jsonl; multiple_choice=2); media checked: 1 files decode" in ok.output
    assert not (tmp_path / "run").exists()  # nothing was built or trained
    # one record later in the file lacks its video: the error names it
    _jsonl(tmp_path / "train.jsonl", [good, {**good, "id": "b", "videos": [{"path": "gone.mp4"}]}])
    missing = runner.invoke(app, [*args, "--check-media"])
    assert missing.exit_code == 2 and "gone.mp4" in missing.output
    assert runner.invoke(app, args).exit_code == 0  # without --check-media the records are fine
    _jsonl(tmp_path / "train.jsonl", [good, {"id": "c", "question": "no type"}])
    bad = runner.invoke(app, args)
    assert bad.exit_code == 2 and "train.jsonl, line 2: missing required field 'problem_type'" in bad.output
    nomodel = runner.invoke(app, [*args[:-2], "--set", f"model.path={tmp_path}"])
    assert nomodel.exit_code == 2 and "no config.json" in nomodel.output
