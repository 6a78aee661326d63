"""Which frames to take from a clip: frame counts and target times (pure functions, no decoding).

Follows qwen-vl-utils' `smart_nframes` (vision_process.py): counts are multiples of the temporal
patch size (FRAME_FACTOR = 2); with `fps`, n = floor2(clamp(D · fps, ceil2(min_frames),
floor2(min(max_frames, frames_in_clip)))); with `num_frames`, n = round2(num_frames).
"""

from __future__ import annotations

import math

import numpy as np

FRAME_FACTOR = 2
DEFAULT_NUM_FRAMES = 16


def round_by_factor(x: float, factor: int) -> int:
    """Nearest multiple of `factor` (Python's round: halves go to even)."""
    return round(x / factor) * factor


def ceil_by_factor(x: float, factor: int) -> int:
    """Smallest multiple of `factor` that is >= x."""
    return math.ceil(x / factor) * factor


def floor_by_factor(x: float, factor: int) -> int:
    """Largest multiple of `factor` that is <= x."""
    return math.floor(x / factor) * factor


def resolve_frame_count(
    clip_duration: float,
    source_fps: float,
    num_frames: int | None,
    fps: float | None,
    min_frames: int = 4,
    max_frames: int = 768,
    factor: int = FRAME_FACTOR,
) -> int:
    """Number of frames T to sample from a clip of `clip_duration` seconds; T is a multiple of `factor`.

    Exactly one of `num_frames` / `fps` may be given; with neither, num_frames = 16. The result is
    never below `factor` (one temporal patch), so a one-frame clip yields its frame twice.
    """
    if num_frames is not None and fps is not None:
        raise ValueError("give either num_frames or fps, not both (num_frames samples uniformly by count)")
    if fps is None:
        count = DEFAULT_NUM_FRAMES if num_frames is None else num_frames
        if count < 1:
            raise ValueError(f"num_frames must be >= 1, got {count}")
        return max(factor, round_by_factor(count, factor))
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    frames_in_clip = max(1, round(clip_duration * source_fps))
    lo = ceil_by_factor(min_frames, factor)
    hi = floor_by_factor(min(max_frames, frames_in_clip), factor)
    n = min(max(clip_duration * fps, lo), hi, frames_in_clip)
    return max(factor, floor_by_factor(n, factor))


def target_times(clip_start: float, clip_end: float, n: int, source_fps: float) -> np.ndarray:
    """[n] seconds to sample: linspace(start, end - 1/source_fps, n), i.e. first to last frame of the clip.

    For a constant-frame-rate clip the nearest frame to target i is frame round(linspace(0, N-1, n))[i],
    the indices qwen-vl-utils takes.
    """
    last = max(clip_start, clip_end - 1.0 / source_fps)
    return np.linspace(clip_start, last, n)


def sample_fps(n: int, clip_duration: float) -> float:
    """Effective sampling rate T / D (qwen-vl-utils: nframes / total_frames · video_fps)."""
    return n / clip_duration
