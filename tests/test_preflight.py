"""Everything checkable from the config and the file system fails first: one line, exit code 2,
nothing generated, no model loaded."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deepvideo_r1.cli import app
from deepvideo_r1.config import load_config
from deepvideo_r1.preflight import PreflightError, preflight, preflight_problems


def _cfg(*sets: str):
    return load_config(None, list(sets))


def _one_line_exit_2(result, *fragments: str) -> None:
    """Exit code 2, no traceback, one error line (a config error may list its fields below it)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith(("error:", "config error:"))]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in (lines[0] if lines[0].startswith("error:") else result.output)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--set", "algo.reward_weights={acuracy: 1.0, format: 1.0}"], ["unknown reward 'acuracy'"]),
        (["--set", "algo.reward_weights={'{tmp}/nope.py:bonus': 1.0}"], ["reward file", "does not exist"]),
        (["--resume", "{tmp}/nope/checkpoint-3"], ["train.resume", "no such path"]),
        (["--set", "model.path={tmp}/no_model"], ["model.path", "no such directory"]),
        (["--set", "data.train_file={tmp}/missing.jsonl"], ["data.train_file", "no such file"]),
    ],
)
def test_train_fails_before_any_work(tmp_path, args, fragments):
    run = tmp_path / "run"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(app, ["train", "-o", str(run), *args])
    _one_line_exit_2(result, *fragments)
    assert not (run / "synth").exists() and not (run / "tiny_model").exists()  # nothing generated


def test_eval_with_a_missing_model_or_file_is_one_line(tmp_path):
    data = tmp_path / "eval.jsonl"
    data.write_text("")
    result = CliRunner().invoke(app, ["eval", "--model", str(tmp_path / "m"), "--data", str(data)])
    _one_line_exit_2(result, "no such directory")
    (tmp_path / "m").mkdir()
    result = CliRunner().invoke(app, ["eval", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "x")])
    _one_line_exit_2(result, "has no config.json", "data.eval_file", "no such file")


def test_a_bad_record_in_the_train_file_is_one_line(tmp_path):
    bad = {"id": "n", "problem_type": "numerical", "question": "q", "answer": "abc"}
    (tmp_path / "t.jsonl").write_text(json.dumps(bad) + "\n")
    result = CliRunner().invoke(
        app, ["train", "-o", str(tmp_path / "run"), "--set", f"data.train_file={tmp_path / 't.jsonl'}"]
    )
    _one_line_exit_2(result, "t.jsonl, line 1", "not a finite number")


def test_all_problems_are_listed_together(tmp_path):
    reward = f"algo.reward_weights={{'{tmp_path}/nope.py:bonus': 1.0}}"
    cfg = _cfg(f"model.path={tmp_path}/m", reward, f"train.resume={tmp_path}/c")
    problems = preflight_problems(cfg, "train")
    assert len(problems) == 3
    with pytest.raises(PreflightError, match=r"no such directory; .*no such path .*; .*nope.py does not"):
        preflight(cfg, "train")
    assert preflight_problems(cfg, "sft") == problems[:1]  # sft neither resumes nor scores


def test_a_good_config_passes(tmp_path):
    reward = tmp_path / "r.py"
    reward.write_text("def bonus(completion, sample):\n    return 1.0\n")
    preflight(_cfg(f"algo.reward_weights={{'{reward}:bonus': 0.5}}", "train.resume=none"), "train")
