"""The difficulty section of the run configuration, and the controller built from it in one call.

Owned here, next to the controller, the augmentations and the stage that read it; `config.py`
composes it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from deepvideo_r1.difficulty.controller import (
    DifficultyController,
    Kinds,
    Levels,
    Reference,
    Timing,
    Trigger,
    WindowUnit,
)
from deepvideo_r1.options import Section


class DifficultyConfig(Section):
    """Difficulty-aware augmentation; each option is an ablation in the paper."""

    enabled: bool = Field(True, description="Turn difficulty-aware augmentation on.")
    window: int = Field(100, description="W, size of the reward buffer. Paper: 100.")
    window_unit: WindowUnit = Field(
        "samples", description="W counts samples (paper appendix) or training steps."
    )
    reference: Reference = Field("relative", description="r_ref = buffer mean, or the fixed `threshold`.")
    threshold: float = Field(1.0, description="r_ref under reference=absolute (reward scale 0..2).")
    levels: Levels = Field(
        "adaptive", description="adaptive: l = f(|dR|); fixed: fixed_guide_level / fixed_perturb_level."
    )
    fixed_guide_level: int = Field(1, ge=1, description="l_guide of every hint under levels=fixed.")
    fixed_perturb_level: float = Field(
        1.0, gt=0, description="l_perturb of every noised group under levels=fixed."
    )
    kinds: Kinds = Field("both", description="Which augmentations may fire.")
    trigger: Trigger = Field(
        "all", description="Augment every group, or only those whose advantage vanished."
    )
    timing: Timing = Field(
        "same_step", description="Re-roll the augmented input this step, or apply it on the next visit."
    )
    noise_std: float = Field(0.1, ge=0, description="Gaussian noise std on [0,1] frames, times l_perturb.")
    increase_mode: Literal["noise", "mask_frames"] = Field(
        "noise", description="Increase difficulty by frame noise, or by dropping frames."
    )
    mask_fraction: float = Field(0.25, gt=0, lt=1, description="Fraction of frames dropped (mask_frames).")
    guidance: Literal["partial_trace", "answer_and_traces"] = Field(
        "partial_trace", description="Hint = first l_guide trace steps, or answer + l_guide traces."
    )
    self_hint_samples: int = Field(4, ge=1, description="k, answer-conditioned traces tried per hint.")


def build_controller(options: DifficultyConfig) -> DifficultyController:
    """The controller these options describe (a fresh reward buffer)."""
    return DifficultyController(
        window=options.window,
        reference=options.reference,
        threshold=options.threshold,
        levels=options.levels,
        fixed_level=options.fixed_guide_level,
        fixed_perturb_level=options.fixed_perturb_level,
        kinds=options.kinds,
        trigger=options.trigger,
        timing=options.timing,
        window_unit=options.window_unit,
    )
