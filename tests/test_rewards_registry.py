"""Reward registry, compute_rewards totals/components, and file.py:function loading."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from deepvideo_r1.data.sample import Sample
from deepvideo_r1.rewards import (
    DEFAULT_WEIGHTS,
    REWARD_FUNCTIONS,
    RewardError,
    compute_rewards,
    get_reward,
    register_reward,
)

MC = Sample(id="mc1", question="Which?", problem_type="multiple_choice", answer="B", options=["x", "y", "z"])
NUM = Sample(id="num1", question="How many?", problem_type="numerical", answer="3")
GQA = Sample(
    id="gqa1",
    question="Why?",
    problem_type="grounded_qa",
    answer="C",
    options=["p", "q", "r"],
    timestamps=[(10.0, 14.0)],
)
TG = Sample(id="tg1", question="When?", problem_type="temporal_grounding", timestamps=[(2.0, 6.0)])

COMPLETIONS = [
    "<think>r</think><answer>B</answer>",  # format 1, accuracy 1
    "<think>r</think><answer>A</answer>",  # format 1, accuracy 0
    "The answer: <answer>3</answer>",  # format 0, accuracy 1
    "<think>r</think><answer>C; 12-15.5</answer>",  # format 1, accuracy 0.5 + 0.5·2/5.5
    "<answer>4 to 6</answer>",  # format 0, IoU [4, 6] vs [2, 6] = 2/4
]
SAMPLES = [MC, MC, NUM, GQA, TG]
FORMAT = [1.0, 1.0, 0.0, 1.0, 0.0]
ACCURACY = [1.0, 0.0, 1.0, 0.5 + 0.5 * 2 / 5.5, 0.5]


def test_compute_rewards_default_weights() -> None:
    out = compute_rewards(COMPLETIONS, SAMPLES)
    assert set(out.components) == set(DEFAULT_WEIGHTS) == {"format", "accuracy"}
    assert out.total.dtype == torch.float32 and out.total.shape == (5,)
    torch.testing.assert_close(out.components["format"], torch.tensor(FORMAT))
    torch.testing.assert_close(out.components["accuracy"], torch.tensor(ACCURACY))
    # total = format + accuracy: [2, 1, 1, 1.6818, 0.5]
    torch.testing.assert_close(
        out.total, torch.tensor([f + a for f, a in zip(FORMAT, ACCURACY, strict=True)])
    )
    assert out.total.max().item() <= 2.0
    metrics = out.metrics()
    assert metrics["reward/format"].item() == pytest.approx(3 / 5)
    assert metrics["reward/total"].item() == pytest.approx(sum(FORMAT + ACCURACY) / 5)


def test_compute_rewards_custom_weights() -> None:
    out = compute_rewards(COMPLETIONS[:3], SAMPLES[:3], {"format": 0.5, "accuracy": 2.0})
    # 0.5·[1, 1, 0] + 2·[1, 0, 1] = [2.5, 0.5, 2.0]
    torch.testing.assert_close(out.total, torch.tensor([2.5, 0.5, 2.0]))


def test_unknown_reward_and_length_mismatch() -> None:
    with pytest.raises(RewardError, match="unknown reward 'lenght'; known: accuracy, format"):
        compute_rewards(COMPLETIONS, SAMPLES, {"lenght": 1.0})
    with pytest.raises(RewardError, match="5 completions but 4 samples"):
        compute_rewards(COMPLETIONS, SAMPLES[:4])


def test_every_registered_reward_is_in_unit_range() -> None:
    # Looping over the registry: a new built-in reward is checked by being registered.
    for name, fn in REWARD_FUNCTIONS.items():
        for completion, sample in zip(COMPLETIONS, SAMPLES, strict=True):
            value = fn(completion, sample)
            assert isinstance(value, float) and 0.0 <= value <= 1.0, (name, completion)


@pytest.fixture
def temp_reward() -> Iterator[str]:
    name = "test_length_penalty"
    yield name
    REWARD_FUNCTIONS.pop(name, None)


def test_register_reward(temp_reward: str) -> None:
    @register_reward(temp_reward)
    def penalty(completion: str, sample: Sample) -> float:
        return -len(completion) / 100

    assert get_reward(temp_reward) is penalty
    out = compute_rewards(["x" * 50], [NUM], {temp_reward: 2.0})
    assert out.total.tolist() == [-1.0]  # 2 · (-50 / 100)
    with pytest.raises(RewardError, match="already registered"):
        register_reward(temp_reward)(penalty)


def test_file_reward_loading(tmp_path: Path) -> None:
    path = tmp_path / "my_rewards.py"
    path.write_text(
        "def has_because(completion, sample):\n"
        "    return 1.0 if 'because' in completion else 0.0\n"
        "def broken(completion, sample):\n"
        "    return float('nan')\n"
    )
    name = f"{path}:has_because"
    out = compute_rewards(["because", "no"], [NUM, NUM], {name: 0.5, "format": 1.0})
    assert out.components[name].tolist() == [1.0, 0.0]
    assert out.total.tolist() == [0.5, 0.0]
    with pytest.raises(RewardError, match=r"has no function 'nope'; callables there: broken, has_because"):
        get_reward(f"{path}:nope")
    with pytest.raises(RewardError, match="returned nan for sample 'num1'"):
        compute_rewards(["x"], [NUM], {f"{path}:broken": 1.0})
    with pytest.raises(RewardError, match="does not exist"):
        get_reward(f"{tmp_path / 'missing.py'}:f")


def test_file_reward_import_error_is_wrapped(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(RewardError, match=r"importing reward file .*bad\.py failed: boom"):
        get_reward(f"{path}:f")


def test_totals_are_finite_for_garbage() -> None:
    garbage = ["", "<answer>", "</answer><answer>", "<answer>NaN</answer>", "\x00" * 100]
    out = compute_rewards(garbage, [NUM] * len(garbage))
    assert all(math.isfinite(v) for v in out.total.tolist())
    assert out.total.tolist() == [0.0] * len(garbage)


def test_file_reward_reloads_after_edit(tmp_path: Path) -> None:
    path = tmp_path / "versioned.py"
    path.write_text("def r(completion, sample):\n    return 1.0\n")
    assert get_reward(f"{path}:r")("", NUM) == 1.0
    assert get_reward(f"{path}:r") is get_reward(f"{path}:r")  # cached: the file runs once
    path.write_text("def r(completion, sample):\n    return 0.25\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later modification time
    assert get_reward(f"{path}:r")("", NUM) == 0.25
