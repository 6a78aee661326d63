"""Which parameters train: vision tower frozen by default (the paper trains the language model
only), optionally the merger (projector) or the whole tower; LoRA through peft; gradient
checkpointing."""

from __future__ import annotations

import torch
from torch import nn

from deepvideo_r1.models.options import TRAIN_VISION, LoraOptions, TrainVision
from deepvideo_r1.models.vision import unwrap, vision_tower


class TrainableConfigError(ValueError):
    """An invalid train_vision / LoRA option."""


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def _language_target_regex(targets: list[str]) -> str:
    """Regex matching target modules inside the language model only (never the vision tower)."""
    return rf".*language_model.*\.({'|'.join(targets)})$"


def _set_vision_trainable(model: nn.Module, train_vision: str) -> None:
    tower = vision_tower(model)
    for p in tower.parameters():
        p.requires_grad_(train_vision == "all")
    if train_vision == "merger":
        for p in tower.merger.parameters():
            p.requires_grad_(True)


def _output_requires_grad(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
    output.requires_grad_(True)


def prepare_trainable(
    model: nn.Module,
    train_vision: TrainVision = "none",
    lora: LoraOptions | None = None,
    gradient_checkpointing: bool = False,
) -> nn.Module:
    """Set requires_grad (and wrap with LoRA) for training; returns the model to train.

    Without LoRA the language model and lm_head train in full. With LoRA only the adapters train
    (plus the vision parts `train_vision` names). The returned model under LoRA is a peft model.
    """
    if train_vision not in TRAIN_VISION:
        raise TrainableConfigError(f"train_vision={train_vision!r}; choose one of {', '.join(TRAIN_VISION)}")
    if gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        # checkpointed blocks need an input that requires grad when the embeddings are frozen (LoRA).
        # Only the language model's: transformers' enable_input_require_grads also hooks the vision
        # tower's patch embedding, which puts a frozen tower into the backward graph.
        model.get_input_embeddings().register_forward_hook(_output_requires_grad)
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        if not lora.target_modules:
            raise TrainableConfigError("lora.target_modules is empty; name modules such as q_proj, v_proj")
        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=_language_target_regex(lora.target_modules),
            bias="none",
        )
        model = get_peft_model(model, config)
    _set_vision_trainable(model, train_vision)
    return model


def is_lora(model: nn.Module) -> bool:
    """True when `model` is a peft model with adapters."""
    return hasattr(model, "disable_adapter") and unwrap(model) is not model
