"""Difficulty-aware augmentations: frame noise / masking (harder) and reasoning hints (easier).

Pure tensor/python code: imports no model, trainer, video or data module.
"""

from deepvideo_r1.augment.guidance import (
    HintBank,
    format_answer_and_traces_hint,
    format_hint,
    split_reasoning_steps,
)
from deepvideo_r1.augment.noise import add_frame_noise, mask_frames

__all__ = [
    "HintBank",
    "add_frame_noise",
    "format_answer_and_traces_hint",
    "format_hint",
    "mask_frames",
    "split_reasoning_steps",
]
