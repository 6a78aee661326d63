"""The RL loop: steps, logging, atomic checkpoints and exact resume."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from accelerate.utils import gather_object

from deepvideo_r1.checkpoints.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    model_state_for_saving,
    read_model_weights,
    read_optimizer_state,
    save_checkpoint,
)
from deepvideo_r1.checkpoints.integrity import CheckpointError
from deepvideo_r1.distributed.sharding import (
    full_model_state,
    full_optimizer_state,
    gather_policy_state,
    is_deepspeed,
    is_fsdp1,
    is_fsdp2,
    is_sharded,
    load_full_model_state,
    load_full_optimizer_state,
    strip_prefix,
)
from deepvideo_r1.metrics.completions import (
    TABLE_COLUMNS,
    append_completions,
    table_rows,
    truncate_completions,
)
from deepvideo_r1.metrics.logger import MetricsLogger, TrainProgress
from deepvideo_r1.metrics.trackers import log_table
from deepvideo_r1.models.trainable import is_lora
from deepvideo_r1.rollout.hf import NonFiniteLogitsError
from deepvideo_r1.training.context import RunContext
from deepvideo_r1.training.groups import completion_rows
from deepvideo_r1.training.resume import (
    CHECKPOINT_DIR,
    ResumePlan,
    format_changes,
    plan_resume,
    train_file_bytes,
)
from deepvideo_r1.training.step import StepReport, rl_step

logger = logging.getLogger(__name__)


def trainer_state(ctx: RunContext, hints_by_rank: list[dict]) -> dict:
    """The JSON part of a checkpoint: controller buffer, hint banks, data position.

    Each rank keeps its own hint bank (the self-generated traces of the samples it drew), so every
    rank's is saved; "hints" (rank 0's) is what a single-process checkpoint has always held.
    """
    state = {
        "controller": ctx.augment.controller.state_dict(),
        "hints": hints_by_rank[0],
        "sampler": ctx.sampler.state_dict(),
    }
    if len(hints_by_rank) > 1:
        state["hints_by_rank"] = hints_by_rank
    return state


def hints_for_rank(state: dict, rank: int, world_size: int) -> dict:
    """The hint bank `rank` resumes with: its own when the world size is the one saved (exact
    resume); after a change of world size, every saved rank's traces together."""
    banks = state.get("hints_by_rank") or [state["hints"]]
    if len(banks) == world_size:
        return banks[rank]
    if len(banks) > 1:
        logger.warning("hint banks of %d ranks merged for %d processes", len(banks), world_size)
    return {"entries": {sid: e for bank in banks for sid, e in bank["entries"].items()}}


def _local_optimizer(ctx: RunContext):
    return ctx.optimizer.optimizer if hasattr(ctx.optimizer, "optimizer") else ctx.optimizer


def _fsdp(ctx: RunContext) -> bool:
    return is_fsdp2(ctx.policy) or is_fsdp1(ctx.policy)


def _sharded_states(ctx: RunContext) -> tuple[dict | None, dict | None]:
    """(full weights, full optimizer state) of a sharded policy, gathered by every rank; else Nones.

    FSDP (ours or accelerate's): both. DeepSpeed ZeRO-3: the full weights only (see `save`).
    """
    if _fsdp(ctx):
        weights = strip_prefix(full_model_state(ctx.policy), "model.")
        return weights, full_optimizer_state(ctx.policy, _local_optimizer(ctx))
    if is_sharded(ctx.policy):
        return strip_prefix(gather_policy_state(ctx.accelerator, ctx.policy), "model."), None
    return None, None


def save(ctx: RunContext, step: int) -> Path | None:
    """Checkpoint on the main process (every rank contributes its RNG state and, when the policy is
    sharded, its shards: gathering is collective)."""
    acc = ctx.accelerator
    rng = gather_object([capture_rng_state()]) if acc.num_processes > 1 else [capture_rng_state()]
    own_hints = ctx.augment.hints.state_dict()
    hints = gather_object([own_hints]) if acc.num_processes > 1 else [own_hints]
    weights, optimizer_state = _sharded_states(ctx)
    path = None
    if acc.is_main_process:
        lora = is_lora(ctx.model)
        path = save_checkpoint(
            Path(ctx.cfg.train.output_dir) / CHECKPOINT_DIR,
            step,
            model_state=weights
            if weights is not None
            else model_state_for_saving(ctx.model, adapters_only=lora),
            adapters_only=lora,
            # DeepSpeed's ZeRO optimizer state is partitioned and not a plain state dict: not saved,
            # so its checkpoints export weights but cannot resume (refused in `restore`).
            optimizer=None if is_deepspeed(acc) else _local_optimizer(ctx),
            optimizer_state=optimizer_state,
            scheduler=ctx.scheduler,
            rng_states=rng,
            # the training file's size is checked before a resume (training.resume.check_train_file)
            trainer_state=trainer_state(ctx, hints)
            | {"train_file_bytes": train_file_bytes(ctx.cfg.data.train_file)},
            config=ctx.cfg,
            keep_last=ctx.cfg.train.keep_last,
        )
    acc.wait_for_everyone()
    return path


def log_completions(ctx: RunContext, step: int, out: StepReport) -> None:
    """At steps 1, 1 + N, 1 + 2N, ... (N = train.log_completions_every): sample completions to
    completions.jsonl and the trackers' "completions" table (main process, its own groups)."""
    every = ctx.cfg.train.log_completions_every
    if not every or (step - 1) % every or not ctx.accelerator.is_main_process or out.groups is None:
        return
    rows = completion_rows(out.groups, out.advantages, step)
    append_completions(ctx.cfg.train.output_dir, rows)
    log_table(ctx.accelerator, "completions", TABLE_COLUMNS, table_rows(rows), step + ctx.cfg.sft.steps)


def restore(ctx: RunContext, path: Path) -> int:
    """Load a checkpoint into the context; returns its step.

    The checkpoint's weights, optimizer moments, schedule position, RNG and trainer state are
    restored; the learning rates and weight decay are this config's (the saved optimizer and
    scheduler would otherwise bring back the old ones). A sharded (FSDP2) policy: every rank reads
    the full tensors and keeps its own shard.
    """
    opt = _local_optimizer(ctx)
    wanted = [{k: g[k] for k in ("initial_lr", "weight_decay")} for g in opt.param_groups]
    rank = ctx.accelerator.process_index  # files verified by plan_resume just before
    if is_deepspeed(ctx.accelerator):
        raise CheckpointError(
            f"{path}: resuming under DeepSpeed is not supported (checkpoints hold no ZeRO optimizer "
            "state); resume with FSDP (train.fsdp=true or an accelerate FSDP config) or DDP"
        )
    if _fsdp(ctx):
        load_full_model_state(ctx.policy, {f"model.{k}": v for k, v in read_model_weights(path).items()})
        load_full_optimizer_state(ctx.policy, opt, read_optimizer_state(path))
        state = load_checkpoint(path, None, None, ctx.scheduler, rank=rank, verify=False)
    else:
        state = load_checkpoint(path, ctx.model, opt, ctx.scheduler, rank=rank, verify=False)
    _apply_hyperparameters(opt, ctx.scheduler, wanted)
    ctx.augment.controller.load_state_dict(state["controller"])
    ctx.augment.hints.load_state_dict(hints_for_rank(state, rank, ctx.accelerator.num_processes))
    ctx.sampler.load_state_dict(state["sampler"])
    logger.info("resumed from %s (step %d)", path, state["step"])
    return int(state["step"])


def _apply_hyperparameters(opt, scheduler, wanted: list[dict]) -> None:
    """Set each group's peak lr and weight decay, then its current lr = peak · lambda(position)."""
    for group, values in zip(opt.param_groups, wanted, strict=True):
        group.update(values)
    scheduler.base_lrs = [w["initial_lr"] for w in wanted]
    for group, base, factor in zip(opt.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in opt.param_groups]


def eval_due(step: int, every: int, max_steps: int) -> bool:
    """Whether the held-out evaluation runs after `step`: at the last one (the evaluation after RL)
    and, when every > 0, every `every` steps."""
    return step == max_steps or (every > 0 and step % every == 0)


def train_loop(
    ctx: RunContext,
    on_step: Callable[[int, dict], None] | None = None,
    resume: ResumePlan | None = None,
    evaluate: Callable[[int], dict[str, float]] | None = None,
) -> dict[str, float]:
    """Run steps until train.max_steps from where `resume` says (default: `plan_resume`);
    returns the last step's metrics. The first resumed step records changed settings.

    With `evaluate` (step -> eval/* metrics, called on every rank), a fresh run logs the evaluation
    of the initial policy as step 0 before its first step, and every `eval_due` step (the last one
    always) adds its evaluation to that step's record, before the step's checkpoint (a resumed run
    keeps them). So metrics.jsonl and the trackers get each evaluation when it happens, on one
    increasing step axis (W&B drops a step lower than one it has seen).
    """
    t, acc = ctx.cfg.train, ctx.accelerator
    resume = resume if resume is not None else plan_resume(ctx.cfg, acc)
    start = restore(ctx, resume.checkpoint) if resume.checkpoint is not None else 0
    metrics: dict[str, float] = {}
    # a fresh start drops every record (step 0 included) left by an interrupted earlier attempt
    log = MetricsLogger(
        t.output_dir,
        enabled=acc.is_main_process,
        resume_step=start or -1,  # a fresh start drops every record (step 0 included)
        mirror=acc.log,
        step_offset=ctx.cfg.sft.steps,
    )
    if acc.is_main_process:
        truncate_completions(t.output_dir, start)
    with (
        log,
        TrainProgress(t.max_steps, initial=start, enabled=acc.is_main_process, log_every=t.log_every) as bar,
    ):
        if evaluate is not None and start == 0:
            before = evaluate(0)
            if before:  # no held-out data: no record
                log.log(0, before)
        for step in range(start + 1, t.max_steps + 1):
            try:
                out = rl_step(ctx, step)
            except NonFiniteLogitsError as e:
                raise NonFiniteLogitsError(f"RL step {step}: {e}") from e
            metrics = out.metrics
            if step == start + 1 and resume.changes:
                metrics |= {"resume/changes": format_changes(resume.changes)}
            if evaluate is not None and eval_due(step, t.eval_every, t.max_steps):
                metrics |= evaluate(step)
            log.log(step, metrics)
            log_completions(ctx, step, out)
            bar.update(step, metrics)
            if on_step is not None:
                on_step(step, metrics)
            if (t.save_every and step % t.save_every == 0) or step == t.max_steps:
                save(ctx, step)
    return metrics
