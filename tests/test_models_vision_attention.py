"""The vision tower's windowed attention in one call per block equals the per-window calls."""

from __future__ import annotations

import pytest
import torch

from deepvideo_r1.models import vision_attention
from deepvideo_r1.models.vision import vision_tower
from deepvideo_r1.models.vision_attention import (
    VARLEN_VISION_ATTENTION,
    _window_ids,
    set_vision_attention,
    varlen_kernel,
)
from helpers import random_image, random_video, tiny_policy


@pytest.fixture(scope="module", params=["qwen2.5-vl", "qwen2-vl", "qwen3-vl"])
def policy(request, tmp_path_factory):
    return tiny_policy(tmp_path_factory.mktemp(request.param), request.param)


def _features(model, video, image) -> torch.Tensor:
    base = model.model
    v = base.get_video_features(video.pixel_values_videos, video.video_grid_thw, return_dict=True)
    i = base.get_image_features(image.pixel_values, image.image_grid_thw, return_dict=True)
    return torch.cat([*v.pooler_output, *i.pooler_output])


def _counting_sdpa(monkeypatch) -> list[int]:
    calls, real = [], torch.nn.functional.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counted)
    return calls


def test_one_call_per_block_equals_per_window_calls(policy, monkeypatch):
    model, ad = policy
    assert vision_tower(model).config._attn_implementation == VARLEN_VISION_ATTENTION  # set at load
    assert model.config.text_config._attn_implementation == "sdpa"  # the decoder keeps its kernel
    # 2 temporal patches of 16×16 patches: Qwen2.5-VL's 112-pixel windows split each into 2×2
    video = random_video(ad.family, t=2, h=16, w=16, seed=1)
    image = random_image(ad.family, h=8, w=12, seed=2)
    depth = len(vision_tower(model).blocks)
    calls = _counting_sdpa(monkeypatch)
    fused = _features(model, video, image)
    assert len(calls) == 2 * depth  # one per block, per call (video, image)
    set_vision_attention(model, "sdpa")
    try:
        calls.clear()
        per_window = _features(model, video, image)
        assert len(calls) > 2 * depth  # transformers' loop: one call per window (or frame)
    finally:
        set_vision_attention(model, VARLEN_VISION_ATTENTION)
    torch.testing.assert_close(fused, per_window, rtol=1e-5, atol=1e-5)


def test_gradients_through_the_fused_call_equal_per_window(tmp_path):
    model, ad = tiny_policy(tmp_path / "m")
    video = random_video(ad.family, t=1, h=16, w=16, seed=3)
    grads = []
    for impl in (VARLEN_VISION_ATTENTION, "sdpa"):
        set_vision_attention(model, impl)
        model.zero_grad(set_to_none=True)
        out = model.model.get_video_features(video.pixel_values_videos, video.video_grid_thw)
        torch.cat(out.pooler_output).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in vision_tower(model).named_parameters()})
    for name, grad in grads[1].items():
        torch.testing.assert_close(grads[0][name], grad, rtol=1e-5, atol=1e-6, msg=name)


def test_window_ids_and_cpu_kernel_choice():
    # windows [0, 3), [3, 4), [4, 7): positions 0..6
    assert _window_ids(torch.tensor([0, 3, 4, 7]), 7).tolist() == [0, 0, 0, 1, 2, 2, 2]
    assert varlen_kernel(torch.zeros(2, 2)) is None  # CPU: the masked sdpa call
    with pytest.raises(ValueError, match="cu_seqlens"):
        vision_attention.varlen_vision_attention(None, *[torch.zeros(1, 1, 2, 4)] * 3)
