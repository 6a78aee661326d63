"""Qwen-VL preprocessing vs hand arithmetic, a loop reference and transformers' PIL image processor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepvideo_r1.video import (
    patchify,
    qwen_image_inputs,
    qwen_video_inputs,
    resize_frames,
    second_per_grid_ts,
    smart_resize,
    video_max_pixels,
)
from deepvideo_r1.video.qwen import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

MIN, MAX = 56 * 56, 28 * 28 * 64


def random_frames(t, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_smart_resize_hand_values():
    # 61x97: round(61/28)=2 → 56, round(97/28)=3 → 84; 56·84 = 4704 in [3136, 50176]
    assert smart_resize(61, 97, 28, MIN, MAX) == (56, 84)
    # 720x1280, max 28²·200 = 156800: 728·1288 too big; β = sqrt(921600/156800) = 2.4244
    # 720/β = 296.98 → floor(10.6)·28 = 280; 1280/β = 527.97 → floor(18.86)·28 = 504
    assert smart_resize(720, 1280, 28, MIN, 28 * 28 * 200) == (280, 504)
    # 30x40, min 12544: 28·28 too small; β = sqrt(12544/1200) = 3.2332
    # 30·β = 96.99 → ceil(3.46)·28 = 112; 40·β = 129.33 → ceil(4.62)·28 = 140
    assert smart_resize(30, 40, 28, 12544, MAX) == (112, 140)
    # Qwen3-VL factor 32: round(61/32)=2 → 64, round(97/32)=3 → 96
    assert smart_resize(61, 97, 32, MIN, MAX) == (64, 96)
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2010)


def test_total_pixels_budget_caps_each_frame():
    # 401408 · 2 // 16 = 50176 < 200704 → 50176
    assert video_max_pixels(16, 3136, 200704, 401408) == 50176
    # 10000 · 2 // 16 = 1250 is below the floor int(3136 · 1.05) = 3292
    assert video_max_pixels(16, 3136, 200704, 10000) == 3292
    assert video_max_pixels(16, 3136, 200704, None) == 200704
    frames = random_frames(4, 112, 140)
    # cap = 4 · 28 · 28 · 2 // 4 = 1568 → floor 3292; 112·140 = 15680 > 3292 → β = sqrt(15680/3292) = 2.18
    # 112/β = 51.3 → 28; 140/β = 64.1 → 56: grid (2, 2, 4)
    out = qwen_video_inputs(frames, 3136, 200704, total_pixels=4 * 28 * 28)
    assert out["video_grid_thw"].tolist() == [[2, 2, 4]]


def loop_patchify(x: torch.Tensor, p: int, tps: int, m: int) -> torch.Tensor:
    """Reference: a row per patch in merge-block order; row = x[t:t+tps, :, y:y+p, x:x+p] as (c, t, y, x)."""
    t, _, h, w = x.shape
    rows = []
    for t0 in range(0, t, tps):
        for bh in range(h // p // m):
            for bw in range(w // p // m):
                for mh in range(m):
                    for mw in range(m):
                        y0, x0 = (bh * m + mh) * p, (bw * m + mw) * p
                        cube = x[t0 : t0 + tps, :, y0 : y0 + p, x0 : x0 + p]  # [tps, C, p, p]
                        rows.append(cube.permute(1, 0, 2, 3).reshape(-1))
    return torch.stack(rows)


@pytest.mark.parametrize(("t", "h", "w", "p", "m"), [(4, 56, 84, 14, 2), (2, 8, 12, 2, 2), (6, 12, 6, 3, 1)])
def test_patchify_matches_loop_reference(t, h, w, p, m):
    x = torch.randn(t, 3, h, w)
    flat, grid = patchify(x, p, 2, m)
    assert grid == (t // 2, h // p, w // p)
    torch.testing.assert_close(flat, loop_patchify(x, p, 2, m), rtol=0, atol=0)


def test_odd_frame_count_repeats_last_frame():
    x = torch.randn(3, 3, 28, 28)
    flat, grid = patchify(x)
    padded, _ = patchify(torch.cat([x, x[-1:]]))
    assert grid == (2, 2, 2)
    torch.testing.assert_close(flat, padded, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("t", "h", "w", "grid"),
    [(4, 61, 97, [2, 4, 6]), (8, 48, 64, [4, 4, 4]), (2, 224, 224, [1, 16, 16]), (16, 352, 640, [8, 10, 20])],
)
def test_video_shapes_and_grid(t, h, w, grid):
    # 61x97 → 56x84 (see above); 48x64 → 56x56; 224x224 stays. 352x640 under max 50176:
    # β = sqrt(225280/50176) = 2.1189; 352/β = 166.1 → floor(5.93)·28 = 140; 640/β = 302.0 → 10·28 = 280
    # → grid (16/2, 140/14, 280/14) = (8, 10, 20)
    out = qwen_video_inputs(random_frames(t, h, w), MIN, MAX, sample_fps=2.0)
    pv, thw = out["pixel_values_videos"], out["video_grid_thw"]
    assert thw.dtype == torch.long and thw.tolist() == [grid]
    assert pv.shape == (grid[0] * grid[1] * grid[2], 3 * 2 * 14 * 14) and pv.dtype == torch.float32
    assert out["second_per_grid_ts"].tolist() == [1.0]  # 2 / 2 fps


def test_transform_runs_on_unit_frames_before_normalisation():
    seen = {}

    def zero(x):
        seen["range"] = (x.min().item(), x.max().item(), tuple(x.shape))
        return torch.zeros_like(x)

    out = qwen_video_inputs(random_frames(2, 56, 56), MIN, MAX, transform=zero)
    lo, hi, shape = seen["range"]
    assert lo >= 0.0 and hi <= 1.0 and shape == (2, 3, 56, 56)
    row = out["pixel_values_videos"][0]  # (channel, t, y, x): 392 values per channel
    for c in range(3):
        expected = -OPENAI_CLIP_MEAN[c] / OPENAI_CLIP_STD[c]
        torch.testing.assert_close(row[c * 392 : (c + 1) * 392], torch.full((392,), expected))


def test_uint8_resize_known_values():
    const = np.full((1, 61, 97, 3), 77, np.uint8)
    assert resize_frames(const, 112, 168).unique().tolist() == [77]  # kernels sum to 1
    # a ramp 4·x over 32 columns halved to 16: output j is centred on input 2j + 0.5 and the
    # symmetric, normalised kernel reproduces a linear function: 4·(2j + 0.5) = 8j + 2
    ramp = np.broadcast_to((4 * np.arange(32, dtype=np.uint8))[None, None, :, None], (1, 4, 32, 3)).copy()
    out = resize_frames(ramp, 4, 16)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 4, 16)
    assert out[0, 0, 0].tolist() == [8 * j + 2 for j in range(16)]


def test_image_equals_video_of_the_image_twice():
    img = random_frames(1, 61, 97)[0]
    image = qwen_image_inputs(img, MIN, MAX)
    video = qwen_video_inputs(np.stack([img, img]), MIN, MAX)
    assert image["image_grid_thw"].tolist() == video["video_grid_thw"].tolist() == [[1, 4, 6]]
    torch.testing.assert_close(image["pixel_values"], video["pixel_values_videos"], rtol=0, atol=0)


def test_matches_transformers_pil_image_processor():
    pil = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    processor = pil.Qwen2VLImageProcessorPil(min_pixels=MIN, max_pixels=MAX)
    one_level = 1.0 / 255 / min(OPENAI_CLIP_STD) + 1e-5  # one grey level after normalisation
    for h, w, tol in [(56, 84, 1e-5), (61, 97, one_level), (200, 300, one_level)]:
        img = random_frames(1, h, w, seed=h)[0]
        ref = processor(images=[img], return_tensors="pt")
        ours = qwen_image_inputs(img, MIN, MAX)
        assert ours["image_grid_thw"].tolist() == ref["image_grid_thw"].tolist()
        # no resize (56x84): exact; else PIL's bicubic and torch's uint8 kernel differ by ≤ 1 level
        torch.testing.assert_close(ours["pixel_values"], ref["pixel_values"], rtol=0, atol=tol)


def test_pil_processor_bound_when_height_shrinks_and_width_grows():
    # 481x353 -> 476x364 (max_pixels high enough that only the rounding to 28 resizes). Pillow runs
    # the height pass first here, torch always the width pass first; both round and clip the
    # intermediate to uint8, so the width pass's bicubic overshoot is clipped at different stages.
    # Measured (benchmarks/pil_resize_diff.py): 22.4 levels on this uniform noise, at most 31 on
    # random 0/255 images; the opposite directions (353x481 -> 364x476) stay within 2 levels.
    pil = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    big = 28 * 28 * 256
    processor = pil.Qwen2VLImageProcessorPil(min_pixels=MIN, max_pixels=big)
    level = 1.0 / 255 / min(OPENAI_CLIP_STD)
    for (h, w), grid, levels in [((481, 353), [1, 34, 26], 32), ((353, 481), [1, 26, 34], 2)]:
        img = random_frames(1, h, w, seed=h)[0]
        ref = processor(images=[img], return_tensors="pt")
        ours = qwen_image_inputs(img, MIN, big)
        assert ours["image_grid_thw"].tolist() == ref["image_grid_thw"].tolist() == [grid]
        diff = (ours["pixel_values"] - ref["pixel_values"]).abs().max().item()
        assert diff <= levels * level + 1e-5, f"{h}x{w}: {diff / level:.1f} grey levels"


def test_second_per_grid_ts():
    assert second_per_grid_ts(4.0) == 0.5  # 2 / 4
    assert second_per_grid_ts(1.0, temporal_patch_size=2) == 2.0
