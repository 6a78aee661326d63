"""Config input that used to pass silently: repeated YAML keys, booleans for numbers, run names
that leave the run directory, and errors that named the wrong source of a value."""

from __future__ import annotations

import pytest

from deepvideo_r1.config import ConfigError, load_config
from deepvideo_r1.presets import TINY_CPU


def test_a_repeated_yaml_key_is_an_error_naming_both_lines(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  lr: 1.0e-4\n  max_steps: 3\n  lr: 5.0\n")
    with pytest.raises(ConfigError, match=r"run.yaml is not valid YAML: duplicate key 'lr' \(lines 2 and 4"):
        load_config(path)
    path.write_text("train:\n  lr: 1.0e-4\ntrain:\n  max_steps: 3\n")  # a repeated section too
    with pytest.raises(ConfigError, match=r"duplicate key 'train' \(lines 1 and 3\)"):
        load_config(path)


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.max_steps=true", "train.max_steps"),
        ("algo.beta=false", "algo.beta"),
        ("algo.reward_weights.format=true", "algo.reward_weights"),
        ("model.tiny_sizes={text_layers: true}", "model.tiny_sizes"),
    ],
)
def test_a_boolean_is_not_a_number(override, key):
    with pytest.raises(ConfigError, match=rf"{key}: a boolean where a number is expected"):
        load_config(None, [override])


def test_booleans_still_set_boolean_fields():
    cfg = load_config(None, ["model.lora.enabled=true", "train.max_steps=3"])
    assert cfg.model.lora.enabled is True and cfg.train.max_steps == 3


@pytest.mark.parametrize("name", ["../../x", "a/b", "a\\b", "..", " "])
def test_run_name_must_stay_inside_the_run_directory(name):
    with pytest.raises(ConfigError, match=r"train.run_name: run_name .* must be a plain name"):
        load_config(None, [f"train.run_name={name!r}"])
    assert load_config(None, ["train.run_name=seed-1.v2"]).train.run_name == "seed-1.v2"


def test_errors_name_where_each_value_came_from():
    # a value given with --set is reported as such, not as coming from the YAML file
    with pytest.raises(ConfigError) as caught:
        load_config(TINY_CPU, ["train.max_steps=0"])
    assert "got 0, from --set train.max_steps" in str(caught.value)
    assert "tiny_cpu.yaml" not in str(caught.value)
    # a cross-field rule names the source of each key it mentions
    with pytest.raises(ConfigError) as caught:
        load_config(TINY_CPU, ["rollout.group_size=3"])
    message = str(caught.value)
    assert "train.micro_batch_size from tiny_cpu.yaml, rollout.group_size from --set rollout" in message
