"""Config limits: every float finite, no crash on G = 0, bounded error quotes, the frame cap."""

from __future__ import annotations

import pytest

from deepvideo_r1.config import QUOTE_CHARS, ConfigError, load_config, quote

FLOAT_FIELDS = [
    "train.lr",
    "sft.lr",
    "algo.beta",
    "algo.epsilon",
    "algo.adv_eps",
    "difficulty.threshold",
    "algo.reward_weights.accuracy",
    "train.vision_lr",
    "sft.vision_lr",
    "algo.clip_high",
]


@pytest.mark.parametrize("field", FLOAT_FIELDS)
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_floats_are_refused(field, value):
    # YAML reads .nan/.inf as float NaN/inf; `lr <= 0` is False for NaN, so only a finiteness rule stops it
    with pytest.raises(ConfigError, match=f"{field.rsplit('.', 1)[-1]}.*finite number"):
        load_config(None, [f"{field}={value}"])


def test_group_size_zero_is_a_config_error_not_a_zero_division():
    with pytest.raises(ConfigError, match="group_size=0 must be >= 2"):
        load_config(None, ["rollout.group_size=0"])


def _laughs(tmp_path, depth: int = 8):
    """A nested-alias YAML: 9**depth leaves from a few hundred bytes."""
    lines = ["train:", "  lr:", '  - &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghij"
    for k in range(1, depth):
        lines.append(f"  - &{names[k]} [" + ",".join([f"*{names[k - 1]}"] * 9) + "]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_billion_laughs_yaml_gives_a_short_error(tmp_path):
    path = _laughs(tmp_path)
    assert path.stat().st_size < 400
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    # before: the message quoted repr(value) in full, 351 MB for this file
    assert "train.lr: Input should be a valid number" in message
    assert len(message) < 400


def test_quote_bounds_long_and_nested_values():
    long = quote("x" * 10_000)
    assert "..." in long and len(long) < 70
    deep = [[[[1] * 100] * 100] * 100]
    assert len(quote(deep)) <= QUOTE_CHARS
    assert quote(0.5) == "0.5"


def test_num_frames_above_the_frame_cap_is_an_error():
    with pytest.raises(ConfigError, match=r"num_frames=1000000 exceeds video.max_frames=768"):
        load_config(None, ["video.num_frames=1000000"])
    cfg = load_config(None, ["video.num_frames=1000", "video.max_frames=1000"])
    assert cfg.video.num_frames == 1000
