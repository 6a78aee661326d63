"""Shared-prefix forward/backward equals the repeated-prompt path: log-probs, entropies, gradients."""

from __future__ import annotations

import pytest
import torch

from deepvideo_r1.algos import POLICY_LOSSES, policy_loss
from deepvideo_r1.config import AlgoConfig, ConfigError, load_config
from deepvideo_r1.models.adapter import load_policy
from deepvideo_r1.models.batch import join_completions
from deepvideo_r1.models.logprobs import completion_logprobs
from deepvideo_r1.models.prefix import (
    SharedPrefixUnsupportedError,
    check_shared_prefix,
    completion_mask_4d,
    completion_positions,
    tokens_per_group,
)
from deepvideo_r1.models.tiny import make_tiny_model
from deepvideo_r1.models.trainable import LoraOptions, prepare_trainable
from deepvideo_r1.training.policy import PolicyModule
from deepvideo_r1.training.step import loss_options
from helpers import TEST_SIZES, max_rel_grad_diff, random_image, random_video, tiny_policy

G = 3
T = 6


def _batch(ad, seed: int = 0):
    """3 groups (video; video+image; image), left padding from their different lengths, ragged
    right-padded completions (one of length 1, one cut at T)."""
    prompts = [
        ad.build_prompt("Which colour is the square?", random_video(ad.family, seed=1)),
        ad.build_prompt("Q?", random_video(ad.family, t=2, h=4, w=6, seed=2), random_image(ad.family)),
        ad.build_prompt("Count the dots.", None, random_image(ad.family, h=4, w=4, seed=3)),
    ]
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 200, (3 * G, T), generator=gen)
    lengths = torch.tensor([6, 3, 1, 5, 6, 2, 4, 6, 3])
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    batch = join_completions(ad.collate(prompts), ids.masked_fill(mask == 0, ad.pad_id), mask, G)
    assert (batch.prompts.attention_mask == 0).any()  # padding in the batch
    return batch


def _grads(model, batch, shared: bool, weights: torch.Tensor) -> tuple[dict, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    out = completion_logprobs(model, batch, chunk_size=4, shared_prefix=shared)
    ((out.logps * weights).sum() + 0.1 * out.entropy.sum()).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, out.logps.detach()


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen2.5-vl", "qwen3-vl"])
def test_logprobs_and_entropy_equal_repeated(tmp_path, family):
    model, ad = tiny_policy(tmp_path, family)
    batch = _batch(ad)
    with torch.no_grad():
        shared = completion_logprobs(model, batch, shared_prefix=True)
        repeated = completion_logprobs(model, batch, shared_prefix=False)
    assert (shared.logps - repeated.logps).abs().max() <= 1e-5
    assert (shared.entropy - repeated.entropy).abs().max() <= 1e-5
    assert shared.logps[batch.completion_mask == 0].abs().max() == 0


@pytest.mark.parametrize(
    ("family", "lora", "checkpointing"),
    [
        ("qwen2-vl", True, True),
        ("qwen2.5-vl", True, True),
        ("qwen3-vl", True, True),
        ("qwen2.5-vl", False, True),
        ("qwen3-vl", False, False),
    ],
)
def test_gradients_equal_repeated(tmp_path, family, lora, checkpointing):
    model, ad = tiny_policy(tmp_path, family)
    options = (
        LoraOptions(r=4, dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        if lora
        else None
    )
    model = prepare_trainable(model, "none", options, gradient_checkpointing=checkpointing).train()
    if lora:
        for n, p in model.named_parameters():
            if "lora_B" in n:  # non-zero adapters, so lora_A gets a gradient too
                torch.nn.init.normal_(p, std=0.3)
    batch = _batch(ad, seed=1)
    weights = torch.linspace(-1, 1, 3 * G * T).view(3 * G, T)
    shared, logp_s = _grads(model, batch, True, weights)
    repeated, logp_r = _grads(model, batch, False, weights)
    assert (logp_s - logp_r).abs().max() <= 1e-5
    assert shared.keys() == repeated.keys() and len(shared) > 0
    assert not any("visual" in n for n in shared)  # frozen vision
    assert max_rel_grad_diff(shared, repeated) <= 1e-5


def test_every_loss_same_gradient(tmp_path):
    """Every registered loss sees the same log-probs, so the same gradient (LoRA, checkpointing)."""
    model, ad = tiny_policy(tmp_path, "qwen2.5-vl")
    lora = LoraOptions(r=4, dropout=0.0, target_modules=["q_proj", "v_proj"])
    model = prepare_trainable(model, "none", lora, gradient_checkpointing=True).train()
    batch = _batch(ad, seed=2)
    adv = torch.linspace(-1.5, 1.5, 3 * G)
    with torch.no_grad():
        old = completion_logprobs(model, batch, shared_prefix=False).logps - 0.05
    for name in POLICY_LOSSES:
        grads = []
        for shared in (True, False):
            model.zero_grad(set_to_none=True)
            logps = completion_logprobs(model, batch, shared_prefix=shared).logps
            options = loss_options(name, AlgoConfig(loss=name), T)
            loss, _ = policy_loss(
                name, logps, old, adv, batch.completion_mask, G, ref_logps=old, beta=0.04, **options
            )
            loss.backward()
            grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        assert max_rel_grad_diff(*grads) <= 1e-5, name


def test_eager_attention_equal(tmp_path):
    model, ad = load_policy(
        make_tiny_model(tmp_path, family="qwen2.5-vl", **TEST_SIZES), attn_implementation="eager"
    )
    batch = _batch(ad)
    with torch.no_grad():
        shared = completion_logprobs(model, batch, shared_prefix=True).logps
        repeated = completion_logprobs(model, batch, shared_prefix=False).logps
    assert (shared - repeated).abs().max() <= 1e-5


def test_completion_mask_4d_by_hand():
    # 1 prompt [pad, a, b], G = 2, T' = 2; row 1's second completion token is padding
    allowed = completion_mask_4d(torch.tensor([[0, 1, 1]]), torch.tensor([[1, 1], [1, 0]]), 2)
    assert allowed.shape == (2, 1, 2, 5)
    assert allowed[0, 0].int().tolist() == [[0, 1, 1, 1, 0], [0, 1, 1, 1, 1]]
    assert allowed[1, 0].int().tolist() == [[0, 1, 1, 1, 0], [0, 1, 1, 1, 0]]


def test_completion_positions_continue_the_prompt():
    # prompt 0 ends at position 9, prompt 1 at 4 (3 rope rows equal on text); G = 2, 3 tokens
    pos = completion_positions(torch.tensor([[9, 4]] * 3), 2, 3)
    assert pos.shape == (3, 4, 3)
    assert pos[0].tolist() == [[10, 11, 12], [10, 11, 12], [5, 6, 7], [5, 6, 7]]


def test_tokens_per_group():
    # P = 1500, T = 256, G = 8: repeated 8·1756 = 14048; shared 1500 + 8·255 = 3540
    assert tokens_per_group(1500, 256, 8, shared=False) == 14048
    assert tokens_per_group(1500, 256, 8, shared=True) == 3540


def test_unsupported_model_is_a_clear_error(tmp_path):
    with pytest.raises(SharedPrefixUnsupportedError, match="shared_prefix: false"):
        check_shared_prefix(torch.nn.Linear(2, 2))
    model, _ = tiny_policy(tmp_path)
    model.model.language_model.config._attn_implementation_internal = "flex_attention"
    with pytest.raises(SharedPrefixUnsupportedError, match="flex_attention"):
        PolicyModule(model)
    PolicyModule(model, shared_prefix=False)  # the repeated path takes any kernel


def test_config_switch_and_flash_attention_rule():
    assert load_config(None).model.shared_prefix is True
    assert load_config(None, ["model.shared_prefix=false"]).model.shared_prefix is False
    with pytest.raises(ConfigError, match=r"model\.shared_prefix"):
        load_config(None, ["model.attn_implementation=flash_attention_2"])
    cfg = load_config(None, ["model.attn_implementation=flash_attention_2", "model.shared_prefix=false"])
    assert cfg.model.attn_implementation == "flash_attention_2"
