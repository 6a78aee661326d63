"""The difficulty knobs of one synthetic clip and their presets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Knobs:
    """The difficulty knobs one clip is generated with."""

    object_size: float
    """Object side as a fraction of the frame side (0.4 = 22 px on a 56-px frame)."""
    num_distractors: int
    """Extra objects that do not answer the question (other colours, or extra appearances)."""
    speed: float
    """Distance moved over the clip as a fraction of the free range (frame side - object side)."""
    noise_std: float
    """Std of per-pixel Gaussian noise on [0, 1] frames, added before encoding."""


DIFFICULTY_PRESETS: dict[str, Knobs] = {
    "easy": Knobs(object_size=0.4, num_distractors=0, speed=0.9, noise_std=0.0),
    "medium": Knobs(object_size=0.3, num_distractors=1, speed=0.6, noise_std=0.04),
    "hard": Knobs(object_size=0.2, num_distractors=2, speed=0.35, noise_std=0.08),
}
