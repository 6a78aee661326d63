"""Chunked completion log-probs equal the naive full-logits computation; gradients too."""

from __future__ import annotations

import pytest
import torch

from deepvideo_r1.models.batch import join_completions
from deepvideo_r1.models.logprobs import completion_logprobs, naive_completion_logprobs
from deepvideo_r1.models.reference import build_reference
from deepvideo_r1.models.trainable import LoraOptions, prepare_trainable
from deepvideo_r1.models.vision import VisionCallCounter
from helpers import random_image, random_video, tiny_policy

G = 3


def _sequences(ad, vocab: int, seed: int = 0):
    """2 prompts (video; video+image), G = 3 random completions each, ragged masks."""
    prompts = [
        ad.build_prompt("Which colour is the square?", random_video(ad.family, seed=1)),
        ad.build_prompt("Q?", random_video(ad.family, t=2, h=4, w=6, seed=2), random_image(ad.family)),
    ]
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 200, (2 * G, 7), generator=gen)
    lengths = torch.tensor([7, 3, 1, 5, 7, 2])
    mask = (torch.arange(7)[None] < lengths[:, None]).long()
    ids = ids.masked_fill(mask == 0, ad.pad_id)
    return join_completions(ad.collate(prompts), ids, mask, G)


@pytest.fixture(scope="module", params=["qwen2.5-vl", "qwen3-vl"])
def policy(request, tmp_path_factory):
    return tiny_policy(tmp_path_factory.mktemp(request.param), request.param)


@pytest.mark.parametrize("chunk_size", [1, 4, 1000])
def test_chunked_equals_naive(policy, chunk_size):
    model, ad = policy
    batch = _sequences(ad, model.config.text_config.vocab_size)
    with torch.no_grad():
        fast = completion_logprobs(model, batch, chunk_size=chunk_size)
        ref = naive_completion_logprobs(model, batch)
    assert fast.logps.shape == (2 * G, 7)
    assert torch.allclose(fast.logps, ref.logps, atol=1e-5)
    assert torch.allclose(fast.entropy, ref.entropy, atol=1e-5)
    assert fast.logps[batch.completion_mask == 0].abs().max() == 0  # padding stays 0
    assert (fast.logps[batch.completion_mask == 1] < 0).all()
    # entropy of a distribution over V tokens is in (0, ln V]
    assert (
        fast.entropy[batch.completion_mask == 1]
        <= torch.log(torch.tensor(float(model.config.text_config.vocab_size))) + 1e-4
    ).all()


def test_gradients_match_naive(policy):
    model, ad = policy
    batch = _sequences(ad, model.config.text_config.vocab_size, seed=1)
    weights = torch.linspace(-1, 1, 7).expand(2 * G, 7)
    grads = []
    for fn in (
        lambda: completion_logprobs(model, batch, chunk_size=3),
        lambda: naive_completion_logprobs(model, batch),
    ):
        model.zero_grad()
        ((fn().logps * weights).sum()).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in ("lm_head.weight", "model.language_model.layers.0.self_attn.q_proj.weight"):
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-5), name
    model.zero_grad()


def test_vision_encoded_once_per_prompt(policy):
    model, ad = policy
    batch = _sequences(ad, model.config.text_config.vocab_size)
    with torch.no_grad(), VisionCallCounter(model) as counter:
        completion_logprobs(model, batch)
    # 2 prompts: 2 videos + 1 image encoded once each, not G = 3 times (9)
    assert counter.items == 3


def test_reference_under_lora_is_base_model(tmp_path):
    model, ad = tiny_policy(tmp_path, "qwen2.5-vl")
    batch = _sequences(ad, model.config.text_config.vocab_size)
    with torch.no_grad():
        base = completion_logprobs(model, batch).logps
    lora = prepare_trainable(model, lora=LoraOptions(r=4, target_modules=["q_proj", "v_proj"]))
    for n, p in lora.named_parameters():
        if "lora_B" in n:  # make the adapters non-zero so the policy differs from the base
            torch.nn.init.normal_(p, std=0.5)
    ref = build_reference(lora, beta=0.1)
    assert ref is not None and ref.shares_weights and ref.model is None
    ref_logps = ref.logprobs(batch)
    with torch.no_grad():
        policy_logps = completion_logprobs(lora, batch).logps
    assert torch.allclose(ref_logps, base, atol=1e-6)
    assert not torch.allclose(policy_logps, base, atol=1e-3)
    assert build_reference(lora, beta=0.0) is None


def test_reference_without_lora_is_frozen_copy(tmp_path):
    model, ad = tiny_policy(tmp_path, "qwen2.5-vl")
    batch = _sequences(ad, model.config.text_config.vocab_size)
    ref = build_reference(model, beta=0.04)
    before = ref.logprobs(batch)
    with torch.no_grad():
        model.lm_head.weight.add_(0.5)  # a training step changes the policy…
    assert torch.equal(ref.logprobs(batch), before)  # …not the reference
    assert not any(p.requires_grad for p in ref.model.parameters())
