"""Increase-difficulty augmentations on decoded frames.

Both act on resized float frames in [0, 1], shape [F, C, H, W] (F frames), before CLIP
normalisation; plug them in as the video pipeline's ``transform``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check_unit_frames(frames: Tensor) -> None:
    if not frames.is_floating_point():
        raise ValueError(f"frames must be a float tensor scaled to [0, 1], got dtype {frames.dtype}")
    if frames.numel() and (frames.min() < 0 or frames.max() > 1):
        raise ValueError(
            f"frames must lie in [0, 1] (rescale uint8 by 1/255 first), got range "
            f"[{frames.min().item():.4g}, {frames.max().item():.4g}]"
        )


def add_frame_noise(
    frames: Tensor,
    std: float = 0.1,
    level: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Frame-level Gaussian noise: clamp(frames + std · level · N(0, 1), 0, 1), [F, C, H, W] -> same.

    Noise is independent per frame and pixel; ``level`` is the controller's l_perturb.
    Seeded through ``generator`` (must live on the frames' device).
    """
    _check_unit_frames(frames)
    if std < 0 or level < 0:
        raise ValueError(f"std and level must be >= 0, got std={std}, level={level}")
    noise = torch.randn(frames.shape, generator=generator, dtype=frames.dtype, device=frames.device)
    return (frames + (std * level) * noise).clamp(0.0, 1.0)


def mask_frames(
    frames: Tensor,
    fraction: float,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Zero a random subset of floor(fraction · F + 0.5) frames (at least one frame is kept).

    Args: frames [F, ...]; fraction in [0, 1]. Returns (masked copy [F, ...], kept BoolTensor [F]).
    The subset is drawn with ``torch.randperm`` on CPU from ``generator`` (a CPU generator).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if frames.dim() < 1 or frames.shape[0] == 0:
        raise ValueError(f"frames must be [F, ...] with F >= 1, got shape {tuple(frames.shape)}")
    num_frames = frames.shape[0]
    # Round half up (not banker's rounding); never drop every frame.
    n_drop = min(math.floor(fraction * num_frames + 0.5), num_frames - 1)
    dropped = torch.randperm(num_frames, generator=generator)[:n_drop]
    kept = torch.ones(num_frames, dtype=torch.bool)
    kept[dropped] = False
    masked = frames.clone()
    masked[~kept.to(frames.device)] = 0
    return masked, kept
