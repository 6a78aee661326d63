"""Trainable parameter counts: frozen vision, merger, all, LoRA; gradient checkpointing."""

from __future__ import annotations

import pytest
import torch

from deepvideo_r1.models.batch import join_completions
from deepvideo_r1.models.logprobs import completion_logprobs
from deepvideo_r1.models.trainable import (
    TRAIN_VISION,
    LoraOptions,
    TrainableConfigError,
    count_parameters,
    prepare_trainable,
)
from deepvideo_r1.models.vision import vision_tower
from helpers import random_video, tiny_policy


def _numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("train_vision", TRAIN_VISION)
def test_vision_modes(tmp_path, train_vision):
    model, _ = tiny_policy(tmp_path)
    total = _numel(model)
    tower, merger = _numel(vision_tower(model)), _numel(vision_tower(model).merger)
    prepared = prepare_trainable(model, train_vision)
    expected = {"none": total - tower, "merger": total - tower + merger, "all": total}[train_vision]
    assert count_parameters(prepared) == (expected, total)


def test_lora_trains_only_adapters_of_language_model(tmp_path):
    model, _ = tiny_policy(tmp_path)
    total = _numel(model)
    cfg = model.config.text_config
    prepared = prepare_trainable(model, "none", LoraOptions(r=4, target_modules=["q_proj", "v_proj"]))
    trainable, new_total = count_parameters(prepared)
    # per layer: q_proj 64→64: r·(64+64) = 512; v_proj 64→32 (2 kv heads × 16): r·(64+32) = 384
    q_out = cfg.num_attention_heads * cfg.head_dim
    v_out = cfg.num_key_value_heads * cfg.head_dim
    per_layer = 4 * (cfg.hidden_size + q_out) + 4 * (cfg.hidden_size + v_out)
    assert per_layer == 896
    assert trainable == cfg.num_hidden_layers * per_layer
    assert new_total == total + trainable
    names = [n for n, p in prepared.named_parameters() if p.requires_grad]
    assert all("lora_" in n and "language_model" in n for n in names)


def test_bad_options_raise(tmp_path):
    model, _ = tiny_policy(tmp_path)
    with pytest.raises(TrainableConfigError, match="merger"):
        prepare_trainable(model, "projector")
    with pytest.raises(TrainableConfigError, match="target_modules"):
        prepare_trainable(model, lora=LoraOptions(target_modules=[]))


def test_gradient_checkpointing_with_lora_gives_gradients(tmp_path):
    model, ad = tiny_policy(tmp_path)
    prepared = prepare_trainable(model, lora=LoraOptions(r=2), gradient_checkpointing=True)
    prepared.train()
    batch = join_completions(
        ad.collate([ad.build_prompt("Q?", random_video(ad.family))]),
        torch.tensor([[5, 6, 7]]),
        torch.tensor([[1, 1, 1]]),
        1,
    )
    completion_logprobs(prepared, batch).logps.sum().backward()
    grads = [p.grad for n, p in prepared.named_parameters() if "lora_A" in n]
    assert grads and all(g is not None for g in grads)
    assert unwrap_is_checkpointing(prepared)


def unwrap_is_checkpointing(model) -> bool:
    from deepvideo_r1.models.vision import unwrap

    return bool(unwrap(model).is_activation_checkpointing)


def _vision_calls_in_backward(model, ad, shared_prefix: bool) -> int:
    """Vision-tower blocks that backward runs through, for one update of a video prompt."""
    calls = []
    hooks = [b.register_full_backward_hook(lambda *a: calls.append(1)) for b in vision_tower(model).blocks]
    batch = join_completions(
        ad.collate([ad.build_prompt("Q?", random_video(ad.family))]), torch.tensor([[5, 6, 7]]),
        torch.tensor([[1, 1, 1]]), 1,
    )  # fmt: skip
    completion_logprobs(model, batch, shared_prefix=shared_prefix).logps.sum().backward()
    for h in hooks:
        h.remove()
    return len(calls)


@pytest.mark.parametrize("shared_prefix", [True, False])
def test_a_frozen_vision_tower_stays_out_of_backward_under_checkpointing(tmp_path, shared_prefix):
    """transformers' enable_input_require_grads hooks the tower's patch embedding too, which put a
    frozen tower into backward (and its recompute): on a GPU, 45 % of a 3B-shaped update."""
    model, ad = tiny_policy(tmp_path)
    frozen = prepare_trainable(model, "none", gradient_checkpointing=True)
    frozen.train()
    assert _vision_calls_in_backward(frozen, ad, shared_prefix) == 0
    assert all(p.grad is not None for p in frozen.get_input_embeddings().parameters())
    trained, ad = tiny_policy(tmp_path / "all")
    trained = prepare_trainable(trained, "all", gradient_checkpointing=True)
    trained.train()
    assert _vision_calls_in_backward(trained, ad, shared_prefix) == len(vision_tower(trained).blocks)


def test_frozen_tower_outputs_carry_no_graph_even_when_hooked(tmp_path):
    """encode_vision (the shared-prefix path) runs a frozen tower without a graph, whatever hooks
    (peft, transformers) made its patch embedding's output require grad."""
    from deepvideo_r1.models.vision import encode_vision

    model, ad = tiny_policy(tmp_path)
    prepare_trainable(model, "none")
    model.enable_input_require_grads()  # hooks the vision patch embedding as well
    prompts = ad.collate([ad.build_prompt("Q?", random_video(ad.family))])
    assert not encode_vision(model, prompts)["video"].pooler_output[0].requires_grad
    prepare_trainable(model, "all")
    assert encode_vision(model, prompts)["video"].pooler_output[0].requires_grad
