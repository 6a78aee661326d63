"""The policy's weights as (checkpoint name, full tensor) pairs, for a rollout engine to load.

Names are those of the model's own checkpoint (`model.language_model.…`, `model.visual.…`,
`lm_head.weight`), so an engine that loads the checkpoint directory takes them as they are.

- LoRA (peft): each adapted layer is sent as base + (alpha / r) · B A, computed out of place — the
  merged weight the engine needs, without merging into the trainer's weights and unmerging after
  (which would leave rounding drift in the base weights each step); adapter tensors are not sent.
- Tied embeddings: `named_parameters` lists a shared tensor once (as the input embedding), so
  lm_head is not sent; the engine ties it itself.
- Sharded policies: call inside `gathered_for_generation`, where FSDP2 / ZeRO-3 hold whole
  parameters; a DTensor met anyway is gathered with `full_tensor()` (a collective: every rank syncs).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

PEFT_PREFIX = "base_model.model."
VISION_PREFIX = "model.visual."


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _lora_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Checkpoint name -> merged weight of every LoRA-adapted layer of a peft model."""
    merged = {}
    for name, module in model.named_modules():
        base = getattr(module, "base_layer", None)
        if base is None or not hasattr(module, "get_delta_weight"):
            continue
        weight = _full(base.weight).detach()
        for adapter in module.active_adapters:
            if adapter in getattr(module, "lora_A", {}):
                weight = weight + module.get_delta_weight(adapter).to(weight.dtype)
        merged[f"{name}.weight"] = weight
    return merged


def checkpoint_name(name: str) -> str:
    """A parameter name of the (maybe peft-wrapped) model -> its name in the model's checkpoint."""
    if name.startswith(PEFT_PREFIX):
        name = name[len(PEFT_PREFIX) :]
    return name.replace(".base_layer.", ".")


def policy_weights(model: nn.Module, *, include_vision: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
    """(checkpoint name, full detached tensor) for every weight of `model` (see module doc);
    `include_vision=False` leaves the vision tower out (a frozen tower is sent once)."""
    merged = _lora_weights(model)
    for name, param in model.named_parameters():
        if "lora_" in name or ".modules_to_save." in name:
            continue
        key = checkpoint_name(name)
        if not include_vision and key.startswith(VISION_PREFIX):
            continue
        if ".base_layer." in name:
            layer = name[: name.index(".base_layer.")]
            yield key, merged[f"{layer}.weight"] if name.endswith(".weight") else _full(param).detach()
            continue
        yield key, _full(param).detach()


def vision_is_frozen(model: nn.Module) -> bool:
    """Whether no parameter of the vision tower trains."""
    return not any(
        p.requires_grad for n, p in model.named_parameters() if checkpoint_name(n).startswith(VISION_PREFIX)
    )
