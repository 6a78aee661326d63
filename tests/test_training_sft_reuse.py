"""check_sft_settings: a saved SFT model is reused only with the settings it was trained with
(the end-to-end case is in test_training_e2e.py)."""

from __future__ import annotations

import json

import pytest

from deepvideo_r1.pipeline import SFT_SETTINGS, StaleSftModelError, check_sft_settings

SETTINGS = {"sft": {"steps": 500, "lr": 1e-3}, "seed": 0, "data": {"synth": {"seed": 0, "n_train": 800}}}


def _write(tmp_path, settings):
    (tmp_path / SFT_SETTINGS).write_text(json.dumps(settings))


def test_equal_settings_pass(tmp_path):
    _write(tmp_path, SETTINGS)
    check_sft_settings(tmp_path, json.loads(json.dumps(SETTINGS)))


def test_each_differing_setting_is_named(tmp_path):
    _write(tmp_path, SETTINGS)
    changed = {**SETTINGS, "sft": {"steps": 300, "lr": 1e-3}, "seed": 1}
    with pytest.raises(StaleSftModelError, match=r"\(seed, sft\.steps differ, see .*sft_settings\.json\)"):
        check_sft_settings(tmp_path, changed)
    # nested sections compare leaf by leaf: the one that differs is named, data.synth.seed
    other_data = {**SETTINGS, "data": {"synth": {"seed": 2, "n_train": 800}}}
    with pytest.raises(StaleSftModelError, match=r"\(data\.synth\.seed differ"):
        check_sft_settings(tmp_path, other_data)


def test_a_setting_added_or_removed_counts_as_different(tmp_path):
    _write(tmp_path, SETTINGS)
    with pytest.raises(StaleSftModelError, match=r"\(max_grad_norm differ"):
        check_sft_settings(tmp_path, {**SETTINGS, "max_grad_norm": 1.0})


def test_a_model_without_recorded_settings_is_refused(tmp_path):
    with pytest.raises(StaleSftModelError, match=r"has no sft_settings\.json"):
        check_sft_settings(tmp_path, SETTINGS)


def test_a_damaged_settings_file_is_one_line_naming_it(tmp_path):
    from deepvideo_r1.pipeline import SFT_SETTINGS, StaleSftModelError, check_sft_settings

    (tmp_path / SFT_SETTINGS).write_text("{torn")
    with pytest.raises(StaleSftModelError, match=r"sft_settings\.json is not valid JSON .*delete"):
        check_sft_settings(tmp_path, {"seed": 0})
