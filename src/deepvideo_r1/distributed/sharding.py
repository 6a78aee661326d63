"""Sharded policies: FSDP2 wrapping, full-weight gathering, gather-once generation, optimizer state.

Every function here asks the module what it is (an FSDP2 `FSDPModule`, an FSDP1 wrapper, a
DeepSpeed ZeRO-3 engine) rather than which launcher started the run, so the same code is right
whether accelerate's FSDP / DeepSpeed plugin wrapped the policy (GPU configs) or `train.fsdp`
sharded it here (any process group, gloo on CPU included: accelerate enables its FSDP plugin only
on accelerators).

Collectives: `full_model_state`, `full_optimizer_state`, `load_full_*` and entering/leaving
`gathered_for_generation` are collective calls: every rank must make them, in the same order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn


def _fsdp2_modules(module: nn.Module) -> list[nn.Module]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in module.modules() if isinstance(m, FSDPModule)]


def is_fsdp2(module: nn.Module) -> bool:
    """True when any submodule was sharded with FSDP2's `fully_shard`."""
    return bool(_fsdp2_modules(module))


def is_fsdp1(module: nn.Module) -> bool:
    """True when any submodule is an FSDP1 `FullyShardedDataParallel` wrapper."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    return any(isinstance(m, FullyShardedDataParallel) for m in module.modules())


def _zero3_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters partitioned by DeepSpeed ZeRO-3 (they carry a `ds_id`); empty otherwise."""
    return [p for p in module.parameters() if hasattr(p, "ds_id")]


def is_sharded(module: nn.Module) -> bool:
    """Whether the module's parameters are split across ranks (FSDP1/2 or ZeRO-3)."""
    return is_fsdp2(module) or is_fsdp1(module) or bool(_zero3_parameters(module))


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The submodules FSDP2 shards one by one: instances of the model's `_no_split_modules`
    (decoder layers and vision blocks for the Qwen-VL families), outermost first."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    if not names:
        raise ValueError(f"{type(model).__name__} declares no _no_split_modules: cannot choose FSDP units")
    return [m for m in model.modules() if type(m).__name__ in names]


def fsdp2_shard(root: nn.Module, model: nn.Module, mp_policy: Any = None) -> nn.Module:
    """Shard every unit of `model` with `fully_shard`, then `root` (the module whose forward is
    differentiated; it owns what no unit does: embeddings, final norm, lm_head, merger).

    `mp_policy`: an FSDP2 MixedPrecisionPolicy (None: compute in the parameters' dtype). Needs an
    initialised process group. Returns `root`, now an FSDPModule.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = mp_policy or MixedPrecisionPolicy()
    for unit in shard_units(model):
        fully_shard(unit, mp_policy=policy)
    fully_shard(root, mp_policy=policy)
    return root


@contextlib.contextmanager
def gathered_for_generation(module: nn.Module) -> Iterator[None]:
    """Hold the full parameters for the duration (one all-gather per rollout, not per token).

    FSDP2: unshard every unit and keep it unsharded across forwards; FSDP1: summon_full_params;
    ZeRO-3: GatheredParameters. Unsharded modules: nothing happens. Inside, forwards need no
    collectives, so ranks may generate different numbers of tokens.
    """
    fsdp2 = _fsdp2_modules(module)
    if fsdp2:
        # Generation calls the inner model, not the root: settle which state is the root first
        # (FSDP2 otherwise makes the first unit it runs a root of its own and then refuses).
        fsdp2[0]._get_fsdp_state()._lazy_init()
        for m in fsdp2:
            m.unshard()
            m.set_reshard_after_forward(False, recurse=False)
        try:
            yield
        finally:
            for m in fsdp2:
                # Units reshard after forward again; a root keeps its parameters, FSDP2's own default.
                # Resharding the root too left the lm_head sharded when backward recomputed it (GPU).
                m.set_reshard_after_forward(not m._get_fsdp_state()._is_root, recurse=False)
                m.reshard()
        return
    if is_fsdp1(module):
        from torch.distributed.fsdp import FullyShardedDataParallel

        with FullyShardedDataParallel.summon_full_params(module, writeback=False, recurse=True):
            yield
        return
    zero3 = _zero3_parameters(module)
    if zero3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(zero3, modifier_rank=None):
            yield
        return
    yield


def _options(**kwargs: Any):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True, **kwargs)


def full_model_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The full (unsharded) state dict on CPU; under sharding a collective, full on every rank."""
    if is_fsdp2(module) or is_fsdp1(module):
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(module, options=_options())
    if _zero3_parameters(module):
        with gathered_for_generation(module):
            return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return module.state_dict()


def load_full_model_state(module: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Inverse of `full_model_state` for FSDP1/2 (every rank passes the full dict); strict."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    result = set_model_state_dict(module, dict(state), options=_options(strict=True))
    if result is not None and (result.missing_keys or result.unexpected_keys):
        raise KeyError(
            f"state mismatch: missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )


def full_optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer state with full tensors keyed by parameter name (FSDP1/2; a collective)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(module, optimizer, options=_options())


def load_full_optimizer_state(
    module: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Inverse of `full_optimizer_state`: every rank passes the full state and keeps its shard."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(module, optimizer, state, options=_options())


def gather_policy_state(accelerator: Any, policy: nn.Module) -> dict[str, torch.Tensor]:
    """Full weights of the (possibly wrapped) PolicyModule, keys as in its own state_dict.

    accelerate's FSDP / DeepSpeed plugins: `accelerator.get_state_dict` (ZeRO-3 needs
    `zero3_save_16bit_model`); FSDP2 from `train.fsdp`: `full_model_state`. A collective.
    """
    from accelerate.utils import DistributedType

    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        return accelerator.get_state_dict(policy)
    return full_model_state(accelerator.unwrap_model(policy))


def is_deepspeed(accelerator: Any) -> bool:
    """Whether accelerate runs this process under DeepSpeed (any ZeRO stage)."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def set_deepspeed_micro_batch(accelerator: Any, micro_batch_size: int) -> None:
    """Give DeepSpeed its per-GPU micro-batch size before `accelerator.prepare`.

    accelerate reads it from a dataloader, and the trainer passes none (it batches rollouts
    itself); DeepSpeed only books it (train_batch_size = micro · accumulation · world size).
    """
    if is_deepspeed(accelerator):
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = (
            micro_batch_size
        )


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys without `prefix` (the PolicyModule's "model."); every key must carry it."""
    missing = [k for k in state if not k.startswith(prefix)]
    if missing:
        raise KeyError(f"state keys without prefix {prefix!r}: {missing[:3]}")
    return {k[len(prefix) :]: v for k, v in state.items()}
