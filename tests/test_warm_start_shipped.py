"""The shipped warm start: its files match their recipe, the preset is the recipe, a run installs
it instead of training, another recipe trains instead (saying why), a damaged file is refused."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from accelerate import Accelerator
from safetensors.torch import load_file
from typer.testing import CliRunner

from deepvideo_r1.artifacts import MANIFEST_FILE, write_manifest
from deepvideo_r1.cli import app
from deepvideo_r1.config import load_config
from deepvideo_r1.models.tiny import make_tiny_model
from deepvideo_r1.pipeline import (
    DONE_MARKER,
    SFT_SETTINGS,
    run_training,
    sft_settings,
    shipped_fits,
    shipped_sft_stage,
)
from deepvideo_r1.presets import TINY_CPU
from deepvideo_r1.presets.warm_start import (
    INSTALLED_RECIPE,
    RECIPE,
    SHIPPED_DIR,
    ShippedWarmStartError,
    check_files,
    install_shipped,
    mismatch,
    read_recipe,
    recipe_differences,
    write_shipped,
)

SMALL = (
    "model.tiny_sizes={text_hidden: 32, text_layers: 1, vision_hidden: 32, vision_depth: 1, vocab_size: 400}"
)


def preset(*sets: str):
    return load_config(TINY_CPU, list(sets))


def test_the_shipped_files_match_their_recipe():
    recipe = read_recipe()
    assert "model.safetensors" in recipe["sha256"] and "tokenizer.json" in recipe["sha256"]
    assert MANIFEST_FILE not in recipe["sha256"]  # an installed copy writes its own
    check_files(SHIPPED_DIR, recipe)
    assert recipe["command"] == "python scripts/build_warm_start.py"
    assert set(recipe["built_with"]) >= {"torch", "transformers", "accelerate"}


@pytest.mark.parametrize("seed", [0, 3])
def test_the_preset_is_the_shipped_recipe_at_any_seed_and_data_size(seed):
    cfg = preset(f"train.seed={seed}", f"data.synth.seed={seed}", "data.synth.n_eval=100")
    assert cfg.sft.shipped
    assert recipe_differences(read_recipe()["settings"], sft_settings(cfg)) == {}


def test_the_recipe_was_trained_at_seed_0_with_the_preset_sft_section():
    settings = read_recipe()["settings"]
    assert settings["seed"] == 0 and settings["data"]["synth"]["seed"] == 0
    assert {k: v for k, v in settings["sft"].items() if k != "shipped"} == {
        k: v for k, v in sft_settings(preset())["sft"].items() if k != "shipped"
    }  # no hinted examples: the hint options are left out


@pytest.mark.parametrize(
    ("override", "key"),
    [("sft.steps=100", "sft.steps"), ("video.num_frames=4", "video.num_frames"), ("sft.lr=0.01", "sft.lr")],
)
def test_another_recipe_trains_instead_and_install_refuses_it_by_name(tmp_path, caplog, override, key):
    cfg = preset(override, "data.synth.num_frames=4" if key == "video.num_frames" else "sft.batch_size=16")
    with caplog.at_level(logging.INFO, logger="deepvideo_r1.pipeline"):
        assert not shipped_fits(cfg)
    assert "does not fit this run (" in caplog.text and "not using it" in caplog.text
    assert f"{key}: " in caplog.text
    with pytest.raises(ShippedWarmStartError, match=rf"does not fit this run: .*{key}: .* shipped, .* here"):
        install_shipped(tmp_path / "sft_model", sft_settings(cfg))
    assert not (tmp_path / "sft_model").exists()


def test_only_the_tiny_preset_on_synthetic_data_fits(tmp_path):
    assert shipped_fits(preset("train.seed=3", "data.synth.seed=3", "data.synth.n_train=100"))
    assert not shipped_fits(preset("sft.shipped=false"))
    assert mismatch(sft_settings(preset(f"model.path={tmp_path}"))).startswith("model.path is set")
    assert mismatch(sft_settings(preset("data.train_file=t.jsonl"))).startswith("data.train_file is set")


def test_hint_options_count_only_when_examples_are_hinted():
    """Without hinted examples the hint options change nothing: left out, the recipe still fits."""
    assert "hint_fraction" not in sft_settings(preset("sft.hint_max_steps=5"))["sft"]
    assert shipped_fits(preset("sft.hint_max_steps=5"))
    hinted = sft_settings(preset("sft.hint_fraction=0.5"))
    assert (hinted["sft"]["hint_fraction"], hinted["sft"]["hint_max_steps"]) == (0.5, 2)
    assert (
        mismatch(hinted)
        == "sft.hint_fraction: None shipped, 0.5 here, sft.hint_max_steps: None shipped, 2 here"
    )


@pytest.fixture
def small_shipped(tmp_path) -> tuple[Path, dict]:
    """A warm start written by write_shipped from a small tiny model, with the preset's settings."""
    model_dir = make_tiny_model(
        tmp_path / "model",
        seed=0,
        text_hidden=32,
        text_layers=1,
        vision_hidden=32,
        vision_depth=1,
        vocab_size=400,
    )
    (model_dir / SFT_SETTINGS).write_text("{}")  # a trained sft_model's own files are not shipped
    write_manifest(model_dir)
    settings = sft_settings(preset(SMALL, "sft.shipped=false"))
    recipe = write_shipped(model_dir, settings, {"command": "test"}, tmp_path / "shipped")
    return tmp_path / "shipped", recipe


def test_write_then_install_gives_the_same_files(tmp_path, small_shipped):
    directory, recipe = small_shipped
    assert SFT_SETTINGS not in recipe["sha256"] and MANIFEST_FILE not in recipe["sha256"]
    assert "config.json" in recipe["sha256"]
    assert json.loads((directory / RECIPE).read_text())["settings"] == recipe["settings"]
    out = tmp_path / "run" / "sft_model"
    install_shipped(out, sft_settings(preset(SMALL, "train.seed=4", "data.synth.seed=4")), directory)
    for name in recipe["sha256"]:
        assert (out / name).read_bytes() == (directory / name).read_bytes()
    shipped, installed = load_file(directory / "model.safetensors"), load_file(out / "model.safetensors")
    assert shipped.keys() == installed.keys()
    assert all(shipped[k].equal(installed[k]) for k in shipped)


def test_a_damaged_or_missing_file_is_refused(tmp_path, small_shipped):
    directory, _ = small_shipped
    settings = sft_settings(preset(SMALL))
    data = bytearray((directory / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (directory / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ShippedWarmStartError, match=r"model\.safetensors does not match its SHA-256"):
        install_shipped(tmp_path / "a", settings, directory)
    data[-1] ^= 1
    (directory / "model.safetensors").write_bytes(bytes(data))
    check_files(directory, read_recipe(directory))  # repaired
    (directory / "tokenizer.json").unlink()
    with pytest.raises(ShippedWarmStartError, match=r"tokenizer\.json is missing"):
        check_files(directory, read_recipe(directory))


def test_a_run_installs_the_shipped_warm_start_once(tmp_path, monkeypatch, small_shipped):
    directory, _ = small_shipped
    monkeypatch.setattr("deepvideo_r1.presets.warm_start.SHIPPED_DIR", directory)
    cfg = preset(SMALL, f"train.output_dir={tmp_path / 'run'}", "train.seed=2", "data.synth.seed=2")
    out = shipped_sft_stage(cfg, Accelerator(cpu=True))
    assert out == tmp_path / "run" / "sft_model" and (out / DONE_MARKER).exists()
    assert json.loads((out / INSTALLED_RECIPE).read_text()) == read_recipe(directory)
    assert json.loads((out / SFT_SETTINGS).read_text()) == sft_settings(cfg)
    # found complete (what a resumed run or a second rank sees): re-checked and reused as is, even
    # when the shipped files are gone
    (directory / "model.safetensors").unlink()
    assert shipped_sft_stage(cfg, Accelerator(cpu=True)) == out
    # the shipped model serves every seed and data size: an installed copy is reused at another one
    other = preset(SMALL, f"train.output_dir={tmp_path / 'run'}", "train.seed=5", "data.synth.n_train=40")
    assert shipped_sft_stage(other, Accelerator(cpu=True)) == out


def test_a_whole_run_starts_from_the_shipped_warm_start(tmp_path, monkeypatch, small_shipped):
    directory, _ = small_shipped
    monkeypatch.setattr("deepvideo_r1.presets.warm_start.SHIPPED_DIR", directory)
    fast = [
        "data.synth.n_train=4", "data.synth.n_eval=2", "rollout.group_size=2", "rollout.prompts_per_step=2",
        "rollout.max_new_tokens=6", "train.micro_batch_size=2", "train.max_steps=1", "train.report_to=[]",
    ]  # fmt: skip
    run = tmp_path / "run"
    seeds = ["train.seed=1", "data.synth.seed=1"]
    summary = run_training(preset(SMALL, *fast, *seeds, f"train.output_dir={run}"))
    assert summary["shipped_warm_start"] and summary["steps"] == 1
    assert not (run / "tiny_model").exists() and not (run / "sft_metrics.jsonl").exists()  # nothing trained
    shipped = load_file(directory / "model.safetensors")
    assert all(t.equal(shipped[k]) for k, t in load_file(run / "sft_model" / "model.safetensors").items())


def test_a_damaged_shipped_file_stops_the_cli_with_one_line(tmp_path, monkeypatch, small_shipped):
    directory, _ = small_shipped
    monkeypatch.setattr("deepvideo_r1.presets.warm_start.SHIPPED_DIR", directory)
    (directory / "config.json").write_text("{}")
    sets = [SMALL, "data.synth.n_train=2", "data.synth.n_eval=2", "train.report_to=[]"]
    args = ["sft", "-o", str(tmp_path / "run"), *[a for item in sets for a in ("--set", item)]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "config.json does not match its SHA-256" in result.output
    assert not (tmp_path / "run" / "sft_model" / DONE_MARKER).exists()


def test_a_damaged_installed_warm_start_is_refused_on_reuse(tmp_path, monkeypatch, small_shipped):
    """One flipped bit in a run's installed sft_model/ was used silently as the shipped warm start."""
    directory, _ = small_shipped
    monkeypatch.setattr("deepvideo_r1.presets.warm_start.SHIPPED_DIR", directory)
    cfg = preset(SMALL, f"train.output_dir={tmp_path / 'run'}")
    out = shipped_sft_stage(cfg, Accelerator(cpu=True))
    assert (out / MANIFEST_FILE).is_file()
    data = bytearray((out / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (out / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(
        ShippedWarmStartError, match=r"model\.safetensors does not match its SHA-256 in .*shipped_recipe"
    ):
        shipped_sft_stage(cfg, Accelerator(cpu=True))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not valid JSON"),
        ("[1]", "is not a recipe"),
        ('{"settings": {}, "sha256": {}}', "its sha256 map lists no config.json, model.safetensors"),
        (
            '{"settings": {}, "sha256": {"config.json": "x", "model.safetensors": "y"}}',
            "has no valid SHA-256",
        ),
    ],
)
def test_a_damaged_recipe_is_one_line_and_installs_nothing(tmp_path, small_shipped, content, message):
    directory, _ = small_shipped
    (directory / RECIPE).write_text(content)
    with pytest.raises(ShippedWarmStartError, match=re.escape(message)) as err:
        install_shipped(tmp_path / "sft_model", sft_settings(preset(SMALL)), directory)
    assert str(directory / RECIPE) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "sft_model").exists()
