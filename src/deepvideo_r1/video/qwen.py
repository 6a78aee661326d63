"""Qwen2/2.5-VL pixel inputs without torchvision.

Pipeline per video, identical to transformers' Qwen2VLVideoProcessor up to float rounding:
smart_resize → bicubic+antialias resize of the uint8 frames → x/255 → optional `transform` (the
difficulty-aware noise hook, on [0, 1] frames) → CLIP mean/std → patchify into
[T/2 · H/14 · W/14, 3·2·14·14] rows with `grid_thw` = (T/2, H/14, W/14).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

FrameTransform = Callable[[torch.Tensor], torch.Tensor]


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
    """(h, w) multiples of `factor`, h·w within [min_pixels, max_pixels], aspect ratio kept.

    As transformers' qwen2_vl smart_resize: h = round(H/f)·f; if h·w > max: β = sqrt(H·W/max),
    h = max(f, floor(H/β/f)·f); elif h·w < min: β = sqrt(min/(H·W)), h = ceil(H·β/f)·f (same for w).
    """
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be at most 200, got {height}x{width}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def video_max_pixels(
    num_frames: int, min_pixels: int, max_pixels: int, total_pixels: int | None, temporal_patch_size: int = 2
) -> int:
    """Per-frame pixel cap under a per-video budget.

    max(min(max_pixels, total_pixels · tps // T), int(1.05 · min_pixels)) — the cap of qwen-vl-utils'
    fetch_video and of transformers' Qwen2VLVideoProcessor.resize(cap_pixels_per_frame=True).
    """
    if total_pixels is None:
        return max_pixels
    return max(min(max_pixels, total_pixels * temporal_patch_size // num_frames), int(min_pixels * 1.05))


def second_per_grid_ts(sample_fps: float, temporal_patch_size: int = 2) -> float:
    """Seconds covered by one temporal grid step = temporal_patch_size / sample_fps."""
    return temporal_patch_size / sample_fps


def _as_uint8_tchw(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """[T, H, W, 3] uint8 (numpy or torch) → [T, 3, H, W] uint8 tensor."""
    x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {x.dtype} {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2)


def resize_frames(frames: np.ndarray | torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[T, H, W, 3] uint8 → [T, 3, height, width] uint8, bicubic with antialias on the uint8 tensor.

    torch's uint8 bicubic-antialias kernel is the one torchvision's resize calls, so this equals
    the fast Qwen2-VL processors bit for bit (resizing floats and rounding would not).
    """
    x = _as_uint8_tchw(frames)
    if tuple(x.shape[-2:]) == (height, width):
        return x.contiguous()
    return F.interpolate(x.contiguous(), size=(height, width), mode="bicubic", antialias=True)


def _normalize(x: torch.Tensor, transform: FrameTransform | None) -> torch.Tensor:
    """uint8 [T, 3, H, W] → (transform(x/255) - mean) / std, float32."""
    y = x.to(torch.float32) / 255.0
    if transform is not None:
        y = transform(y)
    mean = torch.tensor(OPENAI_CLIP_MEAN, dtype=y.dtype).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD, dtype=y.dtype).view(1, 3, 1, 1)
    return (y - mean) / std


def patchify(
    x: torch.Tensor, patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2
) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """[T, C, H, W] → ([gt·gh·gw, C·tps·p·p], (gt, gh, gw)), the Qwen2-VL video processor's layout.

    T is padded to a multiple of tps by repeating the last frame. Rows run over
    (t, h-block, w-block, h-in-block, w-in-block) with blocks of merge_size² patches; each row
    is ordered (channel, t-in-patch, y, x).
    """
    if pad := -x.shape[0] % temporal_patch_size:
        x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)], dim=0)
    t, c, h, w = x.shape
    gt, gh, gw = t // temporal_patch_size, h // patch_size, w // patch_size
    m, p = merge_size, patch_size
    # [gt, tps, C, gh/m, m, p, gw/m, m, p]
    patches = x.reshape(gt, temporal_patch_size, c, gh // m, m, p, gw // m, m, p)
    # → [gt, gh/m, gw/m, m(h), m(w), C, tps, p(y), p(x)]
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    flat = patches.reshape(gt * gh * gw, c * temporal_patch_size * p * p)
    return flat, (gt, gh, gw)


def qwen_video_inputs(
    frames: np.ndarray | torch.Tensor,
    min_pixels: int,
    max_pixels: int,
    *,
    total_pixels: int | None = None,
    patch_size: int = 14,
    temporal_patch_size: int = 2,
    merge_size: int = 2,
    transform: FrameTransform | None = None,
    sample_fps: float | None = None,
) -> dict[str, torch.Tensor]:
    """uint8 frames [T, H, W, 3] → {"pixel_values_videos": [T/2·h/14·w/14, 1176] float32,
    "video_grid_thw": int64 [1, 3]} (+ "second_per_grid_ts": [1] = tps / sample_fps if given).

    (h, w) = smart_resize(H, W, patch_size·merge_size, min_pixels, per-frame cap) where the cap is
    `video_max_pixels(T, min_pixels, max_pixels, total_pixels)`. `transform` maps float frames
    [T, 3, h, w] in [0, 1] to the same shape, before normalisation.
    """
    num, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    cap = video_max_pixels(num, min_pixels, max_pixels, total_pixels, temporal_patch_size)
    h, w = smart_resize(height, width, patch_size * merge_size, min_pixels, cap)
    x = _normalize(resize_frames(frames, h, w), transform)
    flat, grid = patchify(x, patch_size, temporal_patch_size, merge_size)
    out = {"pixel_values_videos": flat, "video_grid_thw": torch.tensor([grid], dtype=torch.long)}
    if sample_fps is not None:
        out["second_per_grid_ts"] = torch.tensor([second_per_grid_ts(sample_fps, temporal_patch_size)])
    return out


def qwen_image_inputs(
    image: np.ndarray | torch.Tensor,
    min_pixels: int,
    max_pixels: int,
    *,
    patch_size: int = 14,
    temporal_patch_size: int = 2,
    merge_size: int = 2,
    transform: FrameTransform | None = None,
) -> dict[str, torch.Tensor]:
    """uint8 image [H, W, 3] → {"pixel_values": [h/14·w/14, 1176], "image_grid_thw": [[1, h/14, w/14]]}.

    As Qwen2VLImageProcessor: the one image fills all temporal_patch_size slots of each patch.
    """
    h, w = smart_resize(image.shape[0], image.shape[1], patch_size * merge_size, min_pixels, max_pixels)
    x = _normalize(resize_frames(image[None], h, w), transform)
    flat, grid = patchify(x, patch_size, temporal_patch_size, merge_size)
    return {"pixel_values": flat, "image_grid_thw": torch.tensor([grid], dtype=torch.long)}
