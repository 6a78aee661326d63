"""Group-relative advantages and the vanishing-advantage statistics.

Shapes: B = N × G rows ordered group by group (rows 0..G-1 are group 0, and so on).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

AdvantageScale = Literal["group", "batch", "none", "raw"]
_SCALES: tuple[str, ...] = get_args(AdvantageScale)


def check_group_size(batch_size: int, group_size: int) -> int:
    """Return the number of groups N = B / G; ValueError unless G >= 2 and G divides B."""
    if group_size < 2:
        raise ValueError(
            f"group_size must be >= 2 (the unbiased group std needs two completions), got {group_size}"
        )
    if batch_size == 0 or batch_size % group_size != 0:
        raise ValueError(
            f"batch size {batch_size} is not a positive multiple of group_size {group_size}: "
            "rows must hold whole groups, ordered group by group"
        )
    return batch_size // group_size


def _grouped(rewards: Tensor, group_size: int) -> Tensor:
    """[B] -> [N, G] (float), validating the group layout."""
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [B], got shape {tuple(rewards.shape)}")
    n_groups = check_group_size(rewards.shape[0], group_size)
    if not rewards.is_floating_point():
        rewards = rewards.float()
    return rewards.reshape(n_groups, group_size)  # [N, G]


def vanishing_groups(rewards: Tensor, group_size: int) -> Tensor:
    """BoolTensor [N]: True where all G rewards of the group are equal (its advantages are 0)."""
    grouped = _grouped(rewards, group_size)
    return grouped.amax(dim=1) == grouped.amin(dim=1)


def vanishing_ratio(rewards: Tensor, group_size: int) -> float:
    """Fraction of groups whose rewards are all equal (logged before and after augmentation)."""
    return vanishing_groups(rewards, group_size).float().mean().item()


def group_advantages(
    rewards: Tensor,
    group_size: int,
    scale: AdvantageScale = "group",
    eps: float = 1e-4,
) -> Tensor:
    """Group-normalised advantages, [B] -> [B].

        group: A_{n,i} = (R_{n,i} - mean_i R_{n,i}) / (std_i R_{n,i} + eps)
        batch: A_{n,i} = (R_{n,i} - mean_i R_{n,i}) / (std(R over the whole batch) + eps)
        none:  A_{n,i} =  R_{n,i} - mean_i R_{n,i}                       (Dr. GRPO)
        raw:   A_{n,i} =  R_{n,i}            (the reward itself, for losses that regress it)

    std is unbiased (correction=1). Except under raw, a group whose rewards are all equal gets exact
    zeros (the subtraction of a float mean could otherwise leave ~1e-8 noise amplified by 1/eps).
    """
    if scale not in _SCALES:
        raise ValueError(f"unknown advantage scale {scale!r}; known: {', '.join(_SCALES)}")
    grouped = _grouped(rewards, group_size)  # [N, G]
    if scale == "raw":
        return grouped.reshape(-1)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale == "group":
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)
    elif scale == "batch":
        centred = centred / (grouped.reshape(-1).std() + eps)
    flat = grouped.amax(dim=1, keepdim=True) == grouped.amin(dim=1, keepdim=True)  # [N, 1]
    centred = torch.where(flat, torch.zeros_like(centred), centred)
    return centred.reshape(-1)
