"""A frozen vision tower runs once per prompt per step: its features are kept on the prompt's
VideoTensors / ImageTensors and reused, with the same log-probs and gradients as encoding again."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from deepvideo_r1.config import RunConfig
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.models.adapter import PixelBudget
from deepvideo_r1.models.batch import join_completions
from deepvideo_r1.models.logprobs import completion_logprobs
from deepvideo_r1.models.media import SampleMedia
from deepvideo_r1.models.trainable import prepare_trainable
from deepvideo_r1.models.vision import VisionCallCounter, encode_vision, vision_tower
from deepvideo_r1.training.context import build_context
from deepvideo_r1.training.step import rl_step
from helpers import random_image, random_video, tiny_policy

G = 2


def _batch(ad, seed: int = 0):
    """2 prompts (video; video + image), G = 2 random completions each."""
    prompts = [
        ad.build_prompt("Which colour?", random_video(ad.family, seed=1)),
        ad.build_prompt("Q?", random_video(ad.family, t=2, h=4, w=6, seed=2), random_image(ad.family)),
    ]
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 200, (2 * G, 5), generator=gen)
    mask = torch.ones_like(ids)
    return prompts, join_completions(ad.collate(prompts), ids, mask, G)


@pytest.fixture(scope="module", params=["qwen2.5-vl", "qwen3-vl"])
def policy(request, tmp_path_factory):
    return tiny_policy(tmp_path_factory.mktemp(request.param), request.param)


def _logps_and_grads(model, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    logps = completion_logprobs(model, batch).logps
    logps.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logps.detach(), grads


def test_kept_features_give_the_same_logprobs_and_gradients(policy):
    model, ad = policy
    model = prepare_trainable(model, "none")
    prompts, batch = _batch(ad)
    with VisionCallCounter(model) as fresh:
        want, want_grads = _logps_and_grads(model, batch)  # encodes and keeps the features
    assert all(p.video.features is not None for p in prompts) and prompts[1].image.features is not None
    with VisionCallCounter(model) as cached:
        again = join_completions(ad.collate(prompts), batch.completion_ids, batch.completion_mask, G)
        got, got_grads = _logps_and_grads(model, again)
    assert fresh.items == 3 and cached.calls == 0  # 2 videos + 1 image once; then never
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert set(got_grads) == set(want_grads)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=0, atol=0, msg=name)


def test_a_trained_tower_encodes_every_time(policy):
    model, ad = policy
    model = prepare_trainable(model, "merger")
    prompts, batch = _batch(ad)
    with VisionCallCounter(model) as counter:
        encode_vision(model, batch.prompts)
        encode_vision(model, batch.prompts)
    assert counter.items == 2 * 3 and all(p.video.features is None for p in prompts)
    for p in vision_tower(model).parameters():
        p.requires_grad_(False)


def test_one_vision_pass_per_prompt_per_step_when_frozen(tmp_path):
    """rl_step with the real HF engine, a KL reference and 2 iterations: the policy's tower encodes
    each prompt's video once (in rollout's prefill); the reference's copy never runs."""
    model, ad = tiny_policy(tmp_path / "m")
    ad.budget = PixelBudget(video_min_pixels=56 * 56, video_max_pixels=56 * 56)
    frames = np.random.default_rng(0).integers(0, 255, (4, 56, 56, 3), dtype=np.uint8)
    media = SampleMedia(frames, [0.0, 0.5, 1.0, 1.5], 2.0, None)
    cfg = RunConfig.model_validate({
        "rollout": {"group_size": 2, "prompts_per_step": 2, "max_new_tokens": 4},
        "algo": {"loss": "grpo", "beta": 0.1, "num_iterations": 2},
        "difficulty": {"enabled": False}, "train": {"micro_batch_size": 2, "seed": 0, "report_to": []},
    })  # fmt: skip
    samples = [Sample(id=f"s{i}", question=f"Q{i}?", problem_type="free_form", answer="a") for i in range(2)]
    ctx = build_context(cfg, Accelerator(cpu=True), model, ad, samples, lambda s: media)
    with VisionCallCounter(ctx.model) as policy_tower, VisionCallCounter(ctx.reference.model) as ref_tower:
        rl_step(ctx, 1)
    assert policy_tower.calls == 1 and policy_tower.items == 2  # one call, one video per prompt
    assert ref_tower.calls == 0
