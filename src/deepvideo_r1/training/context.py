"""Everything one RL run holds, built once: policy, optimizer, schedule, rollout, controller, data.

Only `training/` knows accelerate. The PolicyModule is prepared by accelerate (DDP / FSDP /
DeepSpeed); rollout uses the unwrapped model. The scheduler is stepped by us once per optimizer
step (accelerate's wrapper would step it once per process).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from torch import nn

from deepvideo_r1.algos import LOSS_ADVANTAGE_SCALE
from deepvideo_r1.config import RunConfig
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.difficulty import HintBank
from deepvideo_r1.difficulty.stage import AugmentationStage
from deepvideo_r1.distributed.sharding import fsdp2_shard, is_deepspeed, set_deepspeed_micro_batch
from deepvideo_r1.models.adapter import ModelAdapter
from deepvideo_r1.models.media import MediaLoader
from deepvideo_r1.models.precision import keep_fp32_master, loaded_dtype, mixed_precision_policy
from deepvideo_r1.models.reference import ReferencePolicy, build_reference
from deepvideo_r1.models.trainable import prepare_trainable
from deepvideo_r1.models.vision import vision_tower
from deepvideo_r1.rollout import RolloutEngine
from deepvideo_r1.training.engines import rollout_engine
from deepvideo_r1.training.guard import UpdateGuard
from deepvideo_r1.training.policy import PolicyModule
from deepvideo_r1.training.sampler import PromptSampler


@dataclass
class RunContext:
    """The state of an RL run (see module docstring). `policy` is the accelerate-wrapped module."""

    cfg: RunConfig
    accelerator: Accelerator
    policy: nn.Module
    adapter: ModelAdapter
    engine: RolloutEngine
    reference: ReferencePolicy | None
    dataset: list[Sample]
    media: MediaLoader
    sampler: PromptSampler
    augment: AugmentationStage
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    trainable_parameters: list[nn.Parameter]
    advantage_scale: str
    guard: UpdateGuard
    """Skips non-finite updates; stops after train.max_skipped_updates in a row."""
    tasks: tuple[str, ...] | None = None
    """The dataset's tasks (per-task augmentation counts), filled at the first step."""

    @property
    def model(self) -> nn.Module:
        """The unwrapped policy model (peft model under LoRA)."""
        return self.accelerator.unwrap_model(self.policy).model

    def reduce_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Mean of every metric over ranks (one collective call; keys are identical on all ranks)."""
        if self.accelerator.num_processes == 1:
            return dict(metrics)
        keys = sorted(metrics)
        values = torch.tensor([float(metrics[k]) for k in keys], device=self.accelerator.device)
        reduced = self.accelerator.reduce(values, reduction="mean").cpu().tolist()
        return dict(zip(keys, reduced, strict=True))


def lr_lambda(warmup: int, total: int, schedule: str):
    """Multiplier of the peak lr: linear warmup over `warmup` steps, then constant or cosine to 0."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def parameter_groups(model: nn.Module, lr: float, vision_lr: float | None) -> list[dict]:
    """Trainable parameters as AdamW groups: the vision tower at `vision_lr` (None = `lr`), the rest
    at `lr`."""
    params = [p for p in model.parameters() if p.requires_grad]
    if vision_lr is None:
        return [{"params": params, "lr": lr}]
    vision = {id(p) for p in vision_tower(model).parameters()}
    groups = [
        {"params": [p for p in params if id(p) not in vision], "lr": lr},
        {"params": [p for p in params if id(p) in vision], "lr": vision_lr},
    ]
    return [g for g in groups if g["params"]]


def make_optimizer(
    params: list[nn.Parameter] | list[dict],
    lr: float,
    weight_decay: float,
    warmup: int,
    total: int,
    schedule: str,
):
    """AdamW + LambdaLR (warmup, then constant or cosine). `params` may be parameter groups."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup, total, schedule))
    return optimizer, scheduler


def trainable_model(model: nn.Module, cfg: RunConfig) -> nn.Module:
    """requires_grad per config (frozen vision by default), LoRA, gradient checkpointing."""
    m = cfg.model
    return prepare_trainable(model, m.train_vision, m.lora.adapter_options(), m.gradient_checkpointing)


def dataset_hints(dataset: list[Sample]) -> HintBank:
    """A HintBank holding every reasoning trace the dataset ships."""
    bank = HintBank()
    for sample in dataset:
        if sample.reasoning:
            bank.add(sample.id, sample.reasoning, "dataset")
    return bank


def shard_policy(policy: nn.Module, model: nn.Module, accelerator: Accelerator, mp_policy=None) -> None:
    """FSDP2 over the launched processes (train.fsdp); a single process is a configuration error."""
    if accelerator.num_processes < 2:
        raise ValueError(
            "train.fsdp=true needs at least 2 processes (e.g. accelerate launch --num_processes 2 "
            "... or torchrun); set train.fsdp=false for a single process"
        )
    fsdp2_shard(policy, model, mp_policy)


def master_weights_path(cfg: RunConfig, accelerator: Accelerator, model: nn.Module) -> str | None:
    """Who keeps fp32 master weights of a low-precision model (models.precision): "autocast"
    (single process / DDP), "fsdp2" (train.fsdp), or None (a float32 model, the option off, or a
    launcher that keeps its own: DeepSpeed, accelerate's FSDP plugin under mixed_precision bf16).

    ValueError for accelerate's FSDP plugin without mixed precision: it would step bf16 weights.
    """
    if not cfg.train.fp32_master_weights or loaded_dtype(model) == torch.float32 or is_deepspeed(accelerator):
        return None
    if accelerator.distributed_type == DistributedType.FSDP:
        if accelerator.mixed_precision == "no":
            raise ValueError(
                f"accelerate's FSDP config has mixed_precision: no over a {loaded_dtype(model)} model, so "
                "AdamW would step low-precision weights; set mixed_precision: bf16 in the accelerate config "
                "(fp32 master weights) or train.fp32_master_weights: false"
            )
        return None  # accelerate upcasts the trainable parameters and sets FSDP2's policy itself
    return "fsdp2" if cfg.train.fsdp else "autocast"


def build_context(
    cfg: RunConfig,
    accelerator: Accelerator,
    model: nn.Module,
    adapter: ModelAdapter,
    dataset: list[Sample],
    media: MediaLoader,
    engine: RolloutEngine | None = None,
) -> RunContext:
    """Wire a loaded model and dataset into a RunContext ready for `rl_step`. `engine`: the
    process's rollout engine (training.engines.start_engine; None = HF generate on the policy)."""
    model = trainable_model(model, cfg)
    shared = cfg.model.shared_prefix
    # The reference computes as the policy will: under autocast a copy of the fp32 master weights
    # (same numbers at step 0); under FSDP2's bf16 policy the loaded bf16 weights.
    master = master_weights_path(cfg, accelerator, model)
    compute = loaded_dtype(model)
    if master == "autocast":
        keep_fp32_master(model, autocast=True)
    reference = build_reference(model, cfg.algo.beta, shared_prefix=shared)
    if master == "fsdp2":
        keep_fp32_master(model, autocast=False)
    policy = PolicyModule(
        model,
        chunk_size=cfg.train.logprob_chunk_size,
        temperature=cfg.rollout.temperature,
        shared_prefix=shared,
    )
    if cfg.train.fsdp:
        # Before the optimizer exists: fully_shard replaces every parameter with a sharded one.
        shard_policy(policy, model, accelerator, mixed_precision_policy(compute) if master else None)
    t = cfg.train
    groups = parameter_groups(model, t.lr, t.vision_lr)
    params = [p for g in groups for p in g["params"]]
    optimizer, scheduler = make_optimizer(
        groups,
        t.lr,
        t.weight_decay,
        t.warmup_steps,
        t.max_steps * cfg.algo.num_iterations,
        t.schedule,
    )
    set_deepspeed_micro_batch(accelerator, t.micro_batch_size)
    if cfg.train.fsdp:
        optimizer = accelerator.prepare(optimizer)  # FSDP2 syncs gradients itself: no DDP wrapper
    else:
        policy, optimizer = accelerator.prepare(policy, optimizer)
        # accelerate's FSDP2 replaces the parameters: clip the ones the prepared policy holds (in its
        # order, which accelerate's FSDP clipping matches against the model's own list)
        params = [p for p in policy.parameters() if p.requires_grad]
    model_for_rollout = accelerator.unwrap_model(policy).model
    return RunContext(
        cfg=cfg,
        accelerator=accelerator,
        policy=policy,
        adapter=adapter,
        engine=rollout_engine(cfg, engine, model_for_rollout, adapter),
        reference=reference,
        dataset=dataset,
        media=media,
        sampler=PromptSampler(len(dataset), seed=t.seed),
        augment=AugmentationStage(cfg.difficulty, dataset_hints(dataset)),
        optimizer=optimizer,
        scheduler=scheduler,
        trainable_parameters=params,
        advantage_scale=cfg.algo.advantage_scale or LOSS_ADVANTAGE_SCALE[cfg.algo.loss],
        guard=UpdateGuard(t.max_skipped_updates),
    )
