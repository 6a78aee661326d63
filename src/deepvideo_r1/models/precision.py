"""bf16 compute over fp32 master weights.

AdamW on bf16 parameters rounds away every update smaller than bf16's resolution (8 mantissa bits:
about 2^-8 ≈ 4e-3 of the weight): at lr 1e-6 a weight of 0.02 moves by ~1e-6 per step and its
bf16 neighbours are 7.8e-5 apart, so nearly nothing changes. Here the trainable parameters (and so
their gradients and AdamW moments) are float32, the weights the model was loaded in, and the
arithmetic stays in the loaded dtype:

- single process / DDP: forwards run under `torch.autocast(compute)` (`compute_context`): each
  matmul casts its fp32 weight to bf16 (autocast caches the cast of a trainable leaf for the whole
  region, so a `generate` call casts each weight once); gradients, their accumulation over
  micro-batches and DDP's all-reduce stay fp32;
- FSDP2 (`train.fsdp`): `MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=float32)` casts
  the gathered weights itself (`mixed_precision_policy`), so no autocast;
- DeepSpeed and accelerate's FSDP plugin keep fp32 master weights of their own (not marked here).

Frozen parameters (a frozen vision tower, a LoRA base) keep the loaded dtype: nothing updates them.
`final_model/` is written in the compute dtype (`saved_state`); checkpoints keep the fp32 master
weights, so resume is exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from deepvideo_r1.models.vision import unwrap

_ATTR = "_deepvideo_master_weights"


@dataclass(frozen=True)
class MasterWeights:
    """How a model with fp32 master weights computes: `compute` is the dtype it was loaded (and is
    saved) in; `autocast`: forwards run under torch.autocast(compute) (False: FSDP2 casts)."""

    compute: torch.dtype
    autocast: bool


def loaded_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's floating parameters as loaded (the first one's)."""
    return next(p.dtype for p in model.parameters() if p.is_floating_point())


def keep_fp32_master(model: nn.Module, *, autocast: bool) -> MasterWeights | None:
    """Upcast every trainable floating parameter to float32 in place and record the loaded dtype
    as the compute dtype; returns the record (None for a float32 model: nothing to do)."""
    compute = loaded_dtype(model)
    if compute == torch.float32:
        return None
    for p in model.parameters():
        if p.requires_grad and p.is_floating_point():
            p.data = p.data.float()
    record = MasterWeights(compute=compute, autocast=autocast)
    setattr(unwrap(model), _ATTR, record)
    return record


def master_weights(model: nn.Module) -> MasterWeights | None:
    """The record `keep_fp32_master` left on the model (None: the model trains in its own dtype)."""
    return getattr(unwrap(model), _ATTR, None)


def compute_context(model: nn.Module) -> AbstractContextManager:
    """torch.autocast(compute) for a model with autocast master weights; else a no-op context."""
    record = master_weights(model)
    if record is None or not record.autocast:
        return contextlib.nullcontext()
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=record.compute)


def saved_state(model: nn.Module, state: Mapping[str, torch.Tensor] | None = None) -> dict | None:
    """`state` (default: the model's own) with floating tensors in the compute dtype, for a model
    with master weights; None when the model trains in its own dtype (save it as it is)."""
    record = master_weights(model)
    if record is None:
        return None
    state = unwrap(model).state_dict() if state is None else state
    return {k: v.to(record.compute) if v.is_floating_point() else v for k, v in state.items()}


def mixed_precision_policy(compute: torch.dtype):
    """FSDP2's policy for fp32 master weights: gather and compute in `compute`, reduce in fp32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return MixedPrecisionPolicy(param_dtype=compute, reduce_dtype=torch.float32)
