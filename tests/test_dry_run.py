"""`train --dry-run --check-media` catches what the run would fail on: media that does not decode,
the resume decision (changed config, --resume none into a run) and a damaged shipped warm start."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepvideo_r1 import dryrun
from deepvideo_r1.checkpoints.checkpoint import save_checkpoint
from deepvideo_r1.cli import app
from deepvideo_r1.config import load_config
from deepvideo_r1.presets import TINY_CPU, warm_start
from deepvideo_r1.video.encode import write_video

runner = CliRunner()
RECORD = {"problem_type": "multiple_choice", "question": "Which?", "options": ["x", "y"], "answer": "A"}


def _data(tmp_path: Path, videos: list[str]) -> list[str]:
    """A train file with one sample per video; the dry-run arguments that check it."""
    lines = [json.dumps({**RECORD, "id": f"s{i}", "videos": [v]}) for i, v in enumerate(videos)]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    run = ["train", "--dry-run", "--check-media", "-o", str(tmp_path / "run")]
    return [*run, "--set", f"data.train_file={tmp_path / 'train.jsonl'}", "--set", "sft.steps=0"]


def _clip(path: Path) -> None:
    write_video(path, np.zeros((4, 28, 28, 3), dtype=np.uint8), fps=4)


@pytest.mark.parametrize("kind", ["text named .mp4", "empty mp4", "link to a system file"])
def test_media_that_does_not_decode_fails_the_dry_run_naming_sample_and_file(tmp_path, kind):
    _clip(tmp_path / "good.mp4")
    bad = tmp_path / "bad.mp4"
    if kind == "text named .mp4":
        bad.write_text("this is not a video\n")
    elif kind == "empty mp4":
        bad.write_bytes(b"")
    else:
        os.symlink(os.__file__, bad)  # a file of the system: exists, is not a video
    result = runner.invoke(app, _data(tmp_path, ["good.mp4", "bad.mp4"]))
    assert result.exit_code == 2, result.output
    assert "train.jsonl: sample 's1': cannot open" in result.output and "bad.mp4" in result.output
    assert not (tmp_path / "run").exists()


def test_decodable_media_pass_and_nothing_is_written(tmp_path):
    _clip(tmp_path / "good.mp4")
    result = runner.invoke(app, _data(tmp_path, ["good.mp4", "good.mp4"]))
    assert result.exit_code == 0, result.output
    assert "2 records (jsonl; multiple_choice=2); media checked: 1 files decode" in result.output
    assert "resume: a fresh start" in result.output and not (tmp_path / "run").exists()


def _checkpoint(run: Path, *overrides: str) -> None:
    cfg = load_config(TINY_CPU, [f"train.output_dir={run}", *overrides])
    save_checkpoint(run / "checkpoints", 2, model_state={"w": torch.zeros(2)}, config=cfg)


def test_the_resume_decision_is_checked_without_touching_the_run(tmp_path):
    run = tmp_path / "run"
    _checkpoint(run, "algo.beta=0.1")
    partial = run / "checkpoints" / "checkpoint-3.tmp-999999"
    partial.mkdir()
    base = ["train", "--dry-run", "-o", str(run)]
    changed = runner.invoke(app, [*base, "--set", "algo.beta=0.5"])
    assert changed.exit_code == 2
    assert "checkpoint-2 was trained with other settings (algo.beta: 0.1 -> 0.5)" in changed.output
    allowed = runner.invoke(app, [*base, "--set", "algo.beta=0.5", "--resume-with-changes"])
    assert allowed.exit_code == 0, allowed.output
    assert "resume: from " in allowed.output and "with changed settings: algo.beta" in allowed.output
    fresh = runner.invoke(app, [*base, "--resume", "none"])
    assert fresh.exit_code == 2 and "holds another run (checkpoints/)" in fresh.output
    cleared = runner.invoke(app, [*base, "--resume", "none", "--overwrite"])
    assert cleared.exit_code == 0 and "--overwrite clears the run first" in cleared.output
    assert partial.is_dir() and (run / "checkpoints" / "checkpoint-2").is_dir()  # dry: nothing removed


def test_the_default_names_the_shipped_warm_start_and_a_damaged_recipe_fails(tmp_path, monkeypatch):
    base = ["train", "--dry-run", "-o", str(tmp_path / "run")]
    ok = runner.invoke(app, base)
    assert ok.exit_code == 0, ok.output
    assert "model: the shipped warm start" in ok.output and "recipe and file hashes checked" in ok.output
    copy = tmp_path / "shipped"
    shutil.copytree(warm_start.SHIPPED_DIR, copy)
    recipe = (copy / "recipe.json").read_text()
    monkeypatch.setattr(warm_start, "SHIPPED_DIR", copy)
    monkeypatch.setattr(dryrun, "SHIPPED_DIR", copy)
    (copy / "recipe.json").write_text('{"settings": {')  # cut off mid-write
    broken = runner.invoke(app, base)
    assert broken.exit_code == 2 and "recipe.json is not valid JSON" in broken.output
    (copy / "recipe.json").write_text(recipe)
    with open(copy / "model.safetensors", "r+b") as f:  # one flipped byte in the weights
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    damaged = runner.invoke(app, base)
    assert damaged.exit_code == 2 and "model.safetensors does not match its SHA-256" in damaged.output
