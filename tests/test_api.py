"""The Python API: the package root exposes the CLI's functions, and the docs/api.md example runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import deepvideo_r1

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_root_exports_the_cli_functions():
    from deepvideo_r1.api import evaluate, sft, train
    from deepvideo_r1.config import load_config
    from deepvideo_r1.export import export_checkpoint

    assert deepvideo_r1.load_config is load_config and deepvideo_r1.train is train
    assert deepvideo_r1.evaluate is evaluate and deepvideo_r1.sft is sft
    assert deepvideo_r1.export_checkpoint is export_checkpoint
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        deepvideo_r1.trian  # noqa: B018


@pytest.mark.slow  # about 40 s on 2 cores: tiny model, 2 SFT steps, eval, 2 RL steps, eval, eval again
def test_docs_example_runs(tmp_path, monkeypatch):
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {})  # the example asserts its own result
    assert (tmp_path / "runs" / "api" / "eval_again" / "eval_report.json").is_file()
