"""Turn a difficulty decision into model inputs: a hint in the prompt, or a transform of the frames.

decrease -> guidance: the first l_guide steps of the sample's reasoning trace (HintBank) after the
            question, or (guidance="answer_and_traces") the answer and up to l_guide whole traces
            (the dataset's and the self-generated ones: several reasoning paths where there are).
increase -> frame noise clamp(x + noise_std·l_perturb·N(0,1), 0, 1) on frames in [0, 1] before
            normalisation, or frame masking (increase_mode="mask_frames").
A decision that cannot be applied (no trace for a hint, no video to perturb) becomes "none" and
is counted, never silently replaced by another augmentation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from deepvideo_r1.data.prompts import format_answer
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.difficulty.controller import DifficultyDecision
from deepvideo_r1.difficulty.frames import add_frame_noise, mask_frames
from deepvideo_r1.difficulty.guidance import HintBank, format_answer_and_traces_hint, format_hint
from deepvideo_r1.difficulty.options import DifficultyConfig


@dataclass(frozen=True)
class Augmentation:
    """How one group's prompt is built. kind: "none" | "increase" | "decrease"; level as decided;
    `unapplied` names why a decision was dropped ("" when applied or when there was none)."""

    kind: str = "none"
    level: float = 0.0
    hint: str | None = None
    frame_transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    unapplied: str = ""


NO_AUGMENTATION = Augmentation()


def noise_transform(std: float, level: float, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Frames [F, 3, H, W] in [0, 1] -> the same with Gaussian noise of std · level, seeded."""

    def transform(frames: torch.Tensor) -> torch.Tensor:  # [F, 3, H, W] in [0, 1]
        generator = torch.Generator(device=frames.device).manual_seed(seed)
        return add_frame_noise(frames, std=std, level=level, generator=generator)

    return transform


def mask_transform(fraction: float, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Frames [F, ...] -> the same with a seeded `fraction` of the frames zeroed."""

    def transform(frames: torch.Tensor) -> torch.Tensor:
        return mask_frames(frames, fraction, generator=torch.Generator().manual_seed(seed))[0]

    return transform


def _hint_text(sample: Sample, hints: HintBank, level: int, cfg: DifficultyConfig) -> str:
    """answer_and_traces: the answer and up to `level` of the sample's traces (several reasoning
    paths where the bank has them); partial_trace: the first `level` steps of its first trace."""
    if cfg.guidance == "answer_and_traces":
        return format_answer_and_traces_hint(format_answer(sample) or "", hints.traces(sample.id), level)
    return format_hint(hints.get(sample.id) or [], level)


def plan_augmentation(
    decision: DifficultyDecision | None,
    sample: Sample,
    hints: HintBank,
    cfg: DifficultyConfig,
    seed: int,
) -> Augmentation:
    """The Augmentation for one group; `seed` fixes the noise / mask draw (reproducible runs)."""
    if decision is None or decision.kind == "none":
        return NO_AUGMENTATION
    if decision.kind == "decrease":
        steps = hints.get(sample.id)
        if not steps:
            return Augmentation(unapplied="no_trace")
        return Augmentation(
            "decrease", decision.level, hint=_hint_text(sample, hints, int(decision.level), cfg)
        )
    if not sample.videos:
        return Augmentation(unapplied="no_video")
    if cfg.increase_mode == "mask_frames":
        return Augmentation(
            "increase", decision.level, frame_transform=mask_transform(cfg.mask_fraction, seed)
        )
    return Augmentation(
        "increase", decision.level, frame_transform=noise_transform(cfg.noise_std, decision.level, seed)
    )
