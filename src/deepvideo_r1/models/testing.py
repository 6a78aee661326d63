"""Helpers for tests and benchmarks: tiny models in a temp dir, random vision tensors of the right
shapes (so model code is tested without decoding videos)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deepvideo_r1.models.adapter import ModelAdapter, load_policy
from deepvideo_r1.models.batch import ImageTensors, VideoTensors
from deepvideo_r1.models.families import ModelFamily
from deepvideo_r1.models.tiny import make_tiny_model

# Smaller than the preset: tests build several models and run in seconds on 2 CPU cores.
TEST_SIZES = {
    "text_hidden": 64,
    "text_layers": 2,
    "text_heads": 4,
    "text_kv_heads": 2,
    "text_intermediate": 128,
    "vision_hidden": 32,
    "vision_depth": 2,
    "vision_heads": 2,
    "vision_intermediate": 64,
}


def tiny_policy(
    out_dir: str | Path, family: str = "qwen2.5-vl", seed: int = 0
) -> tuple[nn.Module, ModelAdapter]:
    """Write a test-sized tiny model to `out_dir` and load it back (fp32, sdpa, CPU)."""
    return load_policy(make_tiny_model(out_dir, family=family, seed=seed, **TEST_SIZES))


def random_video(
    family: ModelFamily, t: int = 2, h: int = 4, w: int = 4, fps: float = 2.0, seed: int = 0
) -> VideoTensors:
    """Random pixels [t·h·w, 3·2·p·p] for a grid (t, h, w) in patches; t temporal patches = 2t frames."""
    gen = torch.Generator().manual_seed(seed)
    dim = 3 * family.temporal_patch_size * family.patch_size**2
    seconds = family.temporal_patch_size / fps
    return VideoTensors(
        pixel_values_videos=torch.randn(t * h * w, dim, generator=gen),
        video_grid_thw=torch.tensor([[t, h, w]]),
        second_per_grid_ts=torch.tensor([seconds]),
        patch_times=[seconds * (i + 0.25) for i in range(t)],
    )


def random_image(family: ModelFamily, h: int = 4, w: int = 6, seed: int = 0) -> ImageTensors:
    """Random pixels [h·w, 3·2·p·p] for an image grid (1, h, w)."""
    gen = torch.Generator().manual_seed(seed)
    dim = 3 * family.temporal_patch_size * family.patch_size**2
    return ImageTensors(
        pixel_values=torch.randn(h * w, dim, generator=gen), image_grid_thw=torch.tensor([[1, h, w]])
    )


def max_rel_grad_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """max over parameters of max|a_p - b_p| / max|b_p| (a parameter whose gradient is all 0 in
    `b` counts its absolute difference)."""
    worst = 0.0
    for name, grad in b.items():
        scale = float(grad.abs().max())
        diff = float((a[name] - grad).abs().max())
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst
