"""Checks that need only the config and the file system, run before any data is generated, any
model is loaded or any step is taken: a misspelled reward or a missing file fails in a second with
one line, not after the synthetic data, the SFT stage and the first evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from deepvideo_r1.config import RunConfig
from deepvideo_r1.data.errors import DataError
from deepvideo_r1.data.hf import is_hf_source, resolve
from deepvideo_r1.rewards import RewardError, get_reward

Command = Literal["train", "sft", "eval"]


class PreflightError(ValueError):
    """The config names something that does not exist; the message lists every such problem."""


def _model_problems(cfg: RunConfig, command: Command) -> list[str]:
    path = cfg.model.path
    if path is None:
        return ["eval needs a model: pass --model (model.path)"] if command == "eval" else []
    if not Path(path).is_dir():
        return [f"model.path {path}: no such directory"]
    if not (Path(path) / "config.json").is_file():
        return [f"model.path {path} has no config.json: not a from_pretrained model directory"]
    return []


def _file_problem(key: str, path: str | None, want: Callable[[Path], bool], kind: str) -> list[str]:
    return [] if path is None or want(Path(path)) else [f"{key} {path}: no such {kind}"]


def _is_data_input(path: Path) -> bool:
    """A data file, a save_to_disk directory, or a hub id resolved from the local cache."""
    if path.is_file():
        return True
    if not is_hf_source(path):
        return False
    try:
        resolve(path)
    except DataError:
        return False
    return True


def _data_problems(cfg: RunConfig, command: Command) -> list[str]:
    d = cfg.data
    problems = _file_problem("data.root", d.root, Path.is_dir, "directory")
    readable = _is_data_input  # a file, or a Hugging Face dataset input (data.hf)
    if command in ("train", "sft"):
        problems += _file_problem("data.train_file", d.train_file, readable, "file or dataset")
    if command in ("train", "eval"):
        problems += _file_problem("data.eval_file", d.eval_file, readable, "file or dataset")
    if command == "eval" and d.eval_file is None:
        problems.append("eval needs data: pass --data (data.eval_file)")
    return problems


def _resume_problems(cfg: RunConfig) -> list[str]:
    resume = cfg.train.resume
    if resume in ("auto", "none") or Path(resume).exists():
        return []
    return [f"train.resume {resume}: no such path (use auto, none, or a checkpoint directory)"]


def _reward_problems(cfg: RunConfig) -> list[str]:
    problems = []
    for name in cfg.algo.reward_weights:
        try:
            get_reward(name)
        except RewardError as e:
            problems.append(f"algo.reward_weights: {e}")
    return problems


def preflight_problems(cfg: RunConfig, command: Command) -> list[str]:
    """Every problem found in the config's paths and names for `command` ([] = good to go)."""
    problems = _model_problems(cfg, command) + _data_problems(cfg, command)
    if command == "train":
        problems += _resume_problems(cfg) + _reward_problems(cfg)
    return problems


def preflight(cfg: RunConfig, command: Command) -> None:
    """Raise PreflightError naming every problem `preflight_problems` finds."""
    problems = preflight_problems(cfg, command)
    if problems:
        raise PreflightError("; ".join(problems))
