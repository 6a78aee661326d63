"""Session-wide fixtures: the tiny run's synthetic data, tiny model and frame cache, built once.

The override lists and small builders live in `helpers.py` (importable by benchmarks too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import TINY_DATA, tiny_run_config


@pytest.fixture(scope="session")
def tiny_run_assets(tmp_path_factory) -> Path:
    """A one-step tiny run whose synth/, tiny_model/ and cache/ tests copy (`helpers.seed_run_dir`)
    instead of generating the data and the model again."""
    from deepvideo_r1.pipeline import run_training

    root = tmp_path_factory.mktemp("tiny_run_assets")
    run_training(tiny_run_config(root, *TINY_DATA, "train.max_steps=1", "sft.steps=1"))
    return root
