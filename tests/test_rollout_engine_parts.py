"""The vLLM engine's pure parts, testable without vLLM: request building, the weights sent at a
sync, off-policy metrics and truncated importance sampling, engine selection."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from deepvideo_r1.algos.offpolicy import logprob_gap, scale_token_gradients, truncated_is_weights
from deepvideo_r1.config import load_config
from deepvideo_r1.presets import TINY_CPU
from deepvideo_r1.rollout.vllm_inputs import build_requests, collapse_placeholders, unpatchify
from deepvideo_r1.rollout.weights import policy_weights, vision_is_frozen
from deepvideo_r1.video.qwen import qwen_video_inputs
from helpers import tiny_policy


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return tiny_policy(tmp_path_factory.mktemp("parts"), "qwen2.5-vl")


def test_unpatchify_recovers_the_frames_our_preprocessing_saw():
    frames = np.random.default_rng(0).integers(0, 256, (5, 60, 90, 3), dtype=np.uint8)  # odd T: padded
    out = qwen_video_inputs(frames, 3136, 56 * 84)
    grid = tuple(int(x) for x in out["video_grid_thw"][0])
    back = unpatchify(out["pixel_values_videos"], grid, 14, 2, 2)
    assert back.shape == (6, 56, 84, 3)
    assert torch.equal(back[5], back[4])  # the repeated last frame
    again = qwen_video_inputs(back.round().clamp(0, 255).to(torch.uint8).numpy(), 3136, 56 * 84)
    torch.testing.assert_close(again["pixel_values_videos"], out["pixel_values_videos"], rtol=0, atol=1e-5)


def test_requests_carry_unexpanded_placeholders_and_our_frame_rate(policy):
    from helpers import random_image, random_video

    _, ad = policy
    video = random_video(ad.family, t=2, h=4, w=4, seed=1)
    video.second_per_grid_ts = torch.tensor([0.5])
    batch = ad.collate([ad.build_prompt("q?", video, random_image(ad.family)), ad.build_prompt("text only")])
    first, second = build_requests(
        batch, image_token_id=ad.image_token_id, video_token_id=ad.video_token_id,
        patch_size=14, temporal_patch_size=2, merge_size=2,
    )  # fmt: skip
    assert first["prompt_token_ids"].count(ad.video_token_id) == 1
    assert first["prompt_token_ids"].count(ad.image_token_id) == 1
    frames, meta = first["multi_modal_data"]["video"]
    assert frames.shape == (4, 56, 56, 3) and meta["fps"] == 4.0 and meta["total_num_frames"] == 4
    assert meta["do_sample_frames"] is False and first["mm_processor_kwargs"] == {"do_resize": False}
    assert first["multi_modal_data"]["image"].shape == (56, 84, 3)  # grid 4 x 6 patches
    assert "multi_modal_data" not in second
    n = int(batch.attention_mask[1].sum())
    assert second["prompt_token_ids"] == batch.input_ids[1, -n:].tolist()  # left padding dropped


def test_collapse_placeholders_keeps_one_per_run():
    assert collapse_placeholders([1, 7, 7, 7, 2, 8, 8, 3, 7], {7, 8}) == [1, 7, 2, 8, 3, 7]


def test_policy_weights_are_the_checkpoint_names(policy):
    model, _ = policy
    sent = dict(policy_weights(model))
    assert set(sent) == {n for n, _ in model.named_parameters()}
    without_vision = dict(policy_weights(model, include_vision=False))
    assert without_vision and not any(k.startswith("model.visual.") for k in without_vision)
    assert vision_is_frozen(model) is False  # tiny_policy trains everything


def test_lora_is_sent_merged_and_the_trainer_weights_stay(policy):
    import copy

    from deepvideo_r1.models.trainable import LoraOptions, prepare_trainable

    model, _ = policy
    lora = prepare_trainable(
        copy.deepcopy(model), "none", LoraOptions(r=2, alpha=4, target_modules=["q_proj"])
    )
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.fill_(0.01)
    sent = dict(policy_weights(lora))
    assert set(sent) == {n for n, _ in model.named_parameters()}  # base names, no adapter tensors
    layer = lora.base_model.model.model.language_model.layers[0].self_attn.q_proj
    expected = layer.base_layer.weight + 2.0 * layer.lora_B["default"].weight @ layer.lora_A["default"].weight
    torch.testing.assert_close(sent["model.language_model.layers.0.self_attn.q_proj.weight"], expected)
    assert vision_is_frozen(lora)


def test_logprob_gap_and_truncated_importance_sampling():
    trainer = torch.tensor([[-1.0, -2.0, -0.5], [-0.1, -3.0, 0.0]])
    sampler = torch.tensor([[-1.5, -2.0, -0.4], [-0.1, -1.0, -9.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    mean, worst = logprob_gap(trainer, sampler, mask)
    assert mean == pytest.approx((0.5 + 0 + 0.1 + 0 + 2.0) / 5) and worst == pytest.approx(2.0)
    w = truncated_is_weights(trainer, sampler, cap=1.5)
    assert w[0, 0] == pytest.approx(1.5) and w[0, 2] == pytest.approx(np.exp(-0.1))
    logps = trainer.clone().requires_grad_()
    scaled = scale_token_gradients(logps, w)
    assert torch.equal(scaled, trainer)
    scaled.sum().backward()
    torch.testing.assert_close(logps.grad, w)


def test_engine_field_is_validated_and_vllm_settings_follow_the_config():
    from deepvideo_r1.config import ConfigError
    from deepvideo_r1.training.engines import RANK_SEED_STRIDE, start_engine, vllm_settings

    with pytest.raises(ConfigError, match=r"rollout\.engine"):
        load_config(TINY_CPU, ["rollout.engine=sglang"])
    cfg = load_config(TINY_CPU, ["rollout.engine=vllm", "rollout.max_model_len=2048", "train.seed=3"])
    s = vllm_settings(cfg, rank=1)
    assert s.seed == 3 + RANK_SEED_STRIDE and s.dtype == "float32" and s.max_model_len == 2048
    assert s.max_num_seqs == cfg.rollout.prompts_per_step * cfg.rollout.group_size
    assert start_engine(load_config(TINY_CPU, []), "unused", adapter=None) is None  # hf: built per use


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_engine_without_vllm_says_how_to_install(tmp_path):
    from deepvideo_r1.training.engines import start_engine

    cfg = load_config(TINY_CPU, ["rollout.engine=vllm"])
    with pytest.raises(ImportError, match=r"make_vllm_cpu_env\.sh"):
        start_engine(cfg, tmp_path, adapter=None)
