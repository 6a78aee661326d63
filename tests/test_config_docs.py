"""docs/configuration.md's generated blocks match config.py and the tiny preset (no drift)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from deepvideo_r1.config import RunConfig, describe_fields
from deepvideo_r1.presets import TINY_CPU

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "configuration.md"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_config_docs", REPO / "scripts" / "gen_config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_page_is_what_the_script_writes():
    text = DOC.read_text(encoding="utf-8")
    assert _generator().render(text) == text, (
        "docs/configuration.md is stale: run python scripts/gen_config_docs.py"
    )


def test_a_hand_edit_inside_a_block_is_undone():
    gen = _generator()
    text = DOC.read_text(encoding="utf-8")
    edited = text.replace("| `algo.epsilon` |", "| `algo.epsilon` (edited) |", 1)
    assert edited != text  # the row exists, so the edit took
    assert gen.render(edited) == text


def test_every_field_and_shipped_config_is_on_the_page():
    text = DOC.read_text(encoding="utf-8")
    missing = [row["name"] for row in describe_fields() if f"| `{row['name']}` |" not in text]
    assert not missing, missing
    for path in [*REPO.glob("configs/*.yaml"), *REPO.glob("configs/accelerate/*.yaml"), Path(TINY_CPU)]:
        assert path.name in text, path


def test_preset_table_holds_the_values_of_the_preset_file():
    raw = yaml.safe_load(Path(TINY_CPU).read_text(encoding="utf-8"))
    preset = _generator().preset_block()
    steps, group = raw["sft"]["steps"], raw["rollout"]["group_size"]
    assert f"| `sft.steps` | `{steps!r}` | `{RunConfig().sft.steps!r}` |" in preset
    # a value equal to the default gets no row
    assert ("`rollout.group_size`" in preset) == (group != RunConfig().rollout.group_size)


def test_missing_markers_are_an_error():
    with pytest.raises(ValueError, match="BEGIN GENERATED: fields"):
        _generator().replace_block("no markers here", "fields", "x")
