"""Difficulty-aware augmentation: decide per group, then make the sample easier or harder.

options.py     the difficulty config section and the controller built from it
controller.py  DifficultyController: compare each group's mean reward with the recent average
frames.py      harder: Gaussian noise on / masking of decoded frames
guidance.py    easier: reasoning-step hints and the HintBank of traces
plan.py        a decision -> an Augmentation (the hint text or the frame transform)
self_traces.py traces from the policy itself when the dataset has none
effect.py      whether an augmentation rescued its group (reward variance after vs before)

The controller, frames and guidance are pure tensor/python code; plan and self_traces join them
to samples and the model.
"""

from deepvideo_r1.difficulty.controller import DifficultyController, DifficultyDecision
from deepvideo_r1.difficulty.frames import add_frame_noise, mask_frames
from deepvideo_r1.difficulty.guidance import HintBank, format_answer_and_traces_hint, format_hint

__all__ = [
    "DifficultyController",
    "DifficultyDecision",
    "HintBank",
    "add_frame_noise",
    "format_answer_and_traces_hint",
    "format_hint",
    "mask_frames",
]
