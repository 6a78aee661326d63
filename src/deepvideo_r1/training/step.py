"""One RL step of DeepVideo-R1, in the order of the algorithm:

for each of train.grad_accumulation rollout batches: draw prompts -> roll out G completions ->
rewards -> difficulty decision per group -> (same_step) roll out again on augmented inputs; then
over all of them: group advantages -> old / reference log-probs -> num_iterations optimizer steps
over micro-batches of whole groups -> metrics.

Everything here is orchestration: the math lives in `deepvideo_r1.algos` and is called by name.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from deepvideo_r1.algos import (
    group_advantages,
    loss_option_names,
    micro_batch_weight,
    normalizer_units,
    policy_loss,
)
from deepvideo_r1.algos.drift import drift_metrics
from deepvideo_r1.algos.offpolicy import logprob_gap, scale_token_gradients, truncated_is_weights
from deepvideo_r1.config import LOSS_OPTION_FIELDS, AlgoConfig, ConfigError, loss_option_problems
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.difficulty.effect import GROUP_NAMES, pool_batch_stats
from deepvideo_r1.difficulty.plan import Augmentation
from deepvideo_r1.difficulty.self_traces import generate_self_traces
from deepvideo_r1.difficulty.stage import StageCalls
from deepvideo_r1.distributed.sharding import gathered_for_generation
from deepvideo_r1.evaluation.evaluate import category
from deepvideo_r1.models.media import encode_sample
from deepvideo_r1.rollout.engine import sleep_engine, sync_engine
from deepvideo_r1.training.context import RunContext
from deepvideo_r1.training.groups import Groups, concat_groups, micro_batches, replace_groups, roll_out
from deepvideo_r1.training.media_skips import keep_readable, media_skip_metrics


@dataclass
class StepReport:
    """Per-step metrics (python floats, already reduced over ranks) and the seconds by phase."""

    metrics: dict[str, float] = field(default_factory=dict)
    groups: Groups | None = None
    """This rank's rolled-out groups (for completion logging)."""
    advantages: torch.Tensor | None = None
    """[B] advantages, row-aligned with groups.texts."""


def step_seed(base: int, step: int, stream: int, phase: int) -> int:
    """A distinct, reproducible seed per (run seed, step, stream, phase) — resume draws the same.
    `stream` is the rank for a rank's rollout, the dataset index for one sample's augmentation."""
    return (base * 1_000_003 + step * 1_009 + stream * 101 + phase) % (2**31 - 1)


def loss_options(name: str, algo: AlgoConfig, max_new_tokens: int) -> dict:
    """The config values the chosen loss takes (by its signature); None means the loss default.

    ConfigError when a loss option is set away from its default and this loss does not take it.
    """
    problems = loss_option_problems(name, algo)
    if problems:
        raise ConfigError("; ".join(problems))
    values = {k: getattr(algo, k) for k in LOSS_OPTION_FIELDS} | {"max_completion_length": max_new_tokens}
    accepted = loss_option_names(name)
    return {k: v for k, v in values.items() if k in accepted and v is not None}


def build_groups(ctx: RunContext, indices: list[int], augs: list[Augmentation], seed: int) -> Groups:
    """Encode the prompts of `indices` (with their augmentations) and roll out G completions each."""
    samples = [ctx.dataset[i] for i in indices]
    prompts = [
        encode_sample(ctx.adapter, s, ctx.media(s), hint=a.hint, frame_transform=a.frame_transform)
        for s, a in zip(samples, augs, strict=True)
    ]
    r = ctx.cfg.rollout
    return roll_out(
        ctx.engine, ctx.adapter, samples, prompts, augs, r.group_size, ctx.cfg.algo.reward_weights, seed
    )


def stage_calls(ctx: RunContext, indices: list[int], step: int) -> StageCalls[Groups]:
    """The model-side callbacks the augmentation stage runs through for one rollout batch."""
    acc, seed = ctx.accelerator, ctx.cfg.train.seed
    rank = acc.process_index

    def roll(positions: list[int], augs: list[Augmentation], phase: int) -> Groups:
        return build_groups(ctx, [indices[k] for k in positions], augs, step_seed(seed, step, rank, phase))

    def self_traces(samples: list[Sample], phase: int) -> None:
        k = ctx.cfg.difficulty.self_hint_samples
        phase_seed = step_seed(seed, step, rank, phase + 10)
        generate_self_traces(samples, ctx.media, ctx.adapter, ctx.engine, ctx.augment.hints, k, phase_seed)

    return StageCalls(
        roll=roll,
        replace=lambda groups, positions, redo: replace_groups(groups, positions, redo, ctx.adapter.pad_id),
        gather=lambda t: acc.gather(t.to(acc.device)).cpu(),
        rank=rank,
        sample_id=lambda i: ctx.dataset[i].id,
        self_traces=self_traces,
        seed=lambda i, phase: step_seed(seed, step, i, phase),
    )


def collect_groups(ctx: RunContext, step: int) -> tuple[Groups | None, dict[str, float]]:
    """Draw one rollout batch and run it through the augmentation stage; returns the groups to
    train on (None when every drawn prompt had unreadable media under data.on_error: skip).
    `step` numbers rollout batches (it seeds the draws)."""
    acc = ctx.accelerator
    drawn = ctx.sampler.next_batch(ctx.cfg.rollout.prompts_per_step, acc.process_index, acc.num_processes)
    indices = keep_readable(drawn, lambda i: ctx.dataset[i], ctx.media, acc)
    if not indices:
        return None, {}
    samples = [ctx.dataset[i] for i in indices]
    return ctx.augment.run(indices, samples, stage_calls(ctx, indices, step))


def collect_rollouts(ctx: RunContext, step: int) -> tuple[Groups | None, dict[str, float]]:
    """train.grad_accumulation rollout batches of prompts_per_step prompts, rolled out one after the
    other (generation memory is that of one batch), joined for one optimizer step.

    Rollout batch k of optimizer step s is seeded as rollout (s - 1) · K + k + 1, so K = 1 draws
    what it always drew. The difficulty controller sees every batch as it comes and closes its
    step once per optimizer step; the per-batch stats are pooled (`pool_batch_stats`).
    """
    k = ctx.cfg.train.grad_accumulation
    drawn = [collect_groups(ctx, (step - 1) * k + i + 1) for i in range(k)]
    ctx.augment.end_step()
    parts = [(g, p) for g, p in drawn if g is not None]  # None: nothing readable (on_error: skip)
    if not parts:
        return None, {}
    stats = pool_batch_stats([p for _, p in parts])
    return concat_groups([g for g, _ in parts], ctx.adapter.pad_id), stats


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


@torch.no_grad()
def fixed_logprobs(ctx: RunContext, batches: list) -> tuple[list, list]:
    """Old log-probs (only when num_iterations > 1; else the current ones, detached) and reference ones."""
    device, temperature = ctx.accelerator.device, ctx.cfg.rollout.temperature
    old = [None] * len(batches)
    if ctx.cfg.algo.num_iterations > 1:
        old = [ctx.policy(b.to(device)).logps for _, b in batches]
    ref = [
        ctx.reference.logprobs(b.to(device), temperature=temperature) if ctx.reference else None
        for _, b in batches
    ]
    return old, ref


def loss_weights(ctx: RunContext, masks: list[torch.Tensor]) -> list[float]:
    """`micro_batch_weight` of each micro-batch: its share of the loss's units (rows or tokens) in
    the whole accumulated batch of every rank. The all-rank count is one collective (a sync point)."""
    acc, name = ctx.accelerator, ctx.cfg.algo.loss
    units = [normalizer_units(name, m) for m in masks]
    total = float(sum(units))
    if acc.num_processes > 1:
        total = float(acc.reduce(torch.tensor(total, device=acc.device), reduction="sum"))
    return [micro_batch_weight(u, total, acc.num_processes) for u in units]


def update_policy(ctx: RunContext, groups: Groups, advantages: torch.Tensor) -> dict[str, float]:
    """num_iterations optimizer steps over micro-batches of whole groups; returns update metrics.

    Each backward is the micro-batch loss times its `loss_weights` share, so the gradient is that of
    the loss of the whole batch, however it is split. Micro-batches wait on the host and move to
    the device one at a time; each iteration walks all of them.
    """
    cfg, acc = ctx.cfg, ctx.accelerator
    g = groups.group_size
    batches = micro_batches(groups, cfg.train.micro_batch_size // g, ctx.adapter)
    weights = loss_weights(ctx, [b.completion_mask for _, b in batches])
    t0 = time.perf_counter()
    old, ref = fixed_logprobs(ctx, batches)
    logprob_s = time.perf_counter() - t0
    options = loss_options(cfg.algo.loss, cfg.algo, cfg.rollout.max_new_tokens)
    sums: dict[str, float] = {}
    skipped = 0
    gaps: list[tuple[float, float, int]] = []  # (mean, max, tokens) of |trainer - engine| log-probs
    for it in range(cfg.algo.num_iterations):
        loss_sum = 0.0
        for j, (which, host_batch) in enumerate(batches):
            sync = j == len(batches) - 1
            # DeepSpeed steps its engine inside backward unless told this is not the last micro-batch
            acc.sync_gradients = sync
            batch = host_batch.to(acc.device)
            with nullcontext() if sync else acc.no_sync(ctx.policy):
                out = ctx.policy(batch)
                logps = out.logps
                adv = advantages[groups.rows(which)].to(logps.device)
                old_logps = old[j] if old[j] is not None else logps.detach()
                gap_log = gaps if it == 0 else None
                logps = _engine_correction(ctx, groups, which, logps, old_logps, batch, gap_log)
                loss, metrics = policy_loss(
                    cfg.algo.loss,
                    logps,
                    old_logps,
                    adv,
                    batch.completion_mask,
                    g,
                    ref_logps=ref[j],
                    beta=cfg.algo.beta,
                    **options,
                )
                acc.backward(loss * weights[j])
                # off-policy drift (all 0 at the first iteration): where clip / regression act
                clip = cfg.algo.clip_low or 0.2
                metrics |= drift_metrics(logps, old_logps, adv, batch.completion_mask, clip)
            loss_sum += float(loss.detach())
            metrics["perf/entropy"] = _masked_mean(out.entropy.detach(), batch.completion_mask)
            for k, v in metrics.items():  # weighted like the loss: loss/* are the whole batch's values
                sums[k] = sums.get(k, 0.0) + float(v) * weights[j]
        grad_norm = acc.clip_grad_norm_(ctx.trainable_parameters, cfg.train.max_grad_norm)
        if ctx.guard.allow(_all_ranks_sum(ctx, loss_sum), float(grad_norm)):
            ctx.optimizer.step()
            ctx.scheduler.step()
        else:
            skipped += 1  # weights, optimizer moments and schedule stay where they were
        ctx.optimizer.zero_grad(set_to_none=True)
    out_metrics = {k: v / cfg.algo.num_iterations for k, v in sums.items()}
    out_metrics["perf/grad_norm"] = float(grad_norm)  # before clipping
    out_metrics["perf/grad_norm_clipped"] = min(float(grad_norm), cfg.train.max_grad_norm)
    out_metrics["perf/skipped_updates"] = float(skipped)
    out_metrics["perf/logprob_s"] = logprob_s
    if gaps:
        tokens = max(sum(n for _, _, n in gaps), 1)
        out_metrics["rollout/logprob_gap_mean"] = sum(m * n for m, _, n in gaps) / tokens
        out_metrics["rollout/logprob_gap_max"] = max(x for _, x, _ in gaps)
    return out_metrics


def _engine_correction(ctx: RunContext, groups: Groups, which, logps, old_logps, batch, gaps: list | None):
    """With an engine that returns its sampling log-probs (vLLM): record |trainer - engine| on the
    first iteration (into `gaps`) and, with rollout.importance_sampling_cap, weight each token's
    gradient by min(π_trainer(at rollout) / π_engine, cap). Returns the log-probs the loss takes."""
    if groups.sampling_logps is None:
        return logps
    mask = batch.completion_mask
    sampler = groups.sampling_logps[groups.rows(which)][:, : mask.shape[1]].to(logps.device)
    if gaps is not None:
        gaps.append((*logprob_gap(logps, sampler, mask), int(mask.sum())))
    cap = ctx.cfg.rollout.importance_sampling_cap
    if cap is None:
        return logps
    return scale_token_gradients(logps, truncated_is_weights(old_logps, sampler, cap))


def _all_ranks_sum(ctx: RunContext, value: float) -> float:
    """`value` summed over ranks (NaN anywhere gives NaN everywhere, so all ranks skip together)."""
    if ctx.accelerator.num_processes == 1:
        return value
    total = torch.tensor([value], device=ctx.accelerator.device)
    return float(ctx.accelerator.reduce(total, reduction="sum"))


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def rollout_metrics(groups: Groups, tasks: tuple[str, ...] = ()) -> dict[str, float]:
    """Reward components, accuracy / format rates, completion length, augmentation counts.

    Per kind: `augment/<kind>` groups, `augment/<kind>_level_mean` (nan when none), and with
    `tasks` (every task of the dataset, so each rank logs the same keys) `augment/<hinted|noised>/<task>`
    counts: which task each augmented group came from.
    """
    comps = groups.rewards.components
    out = {"reward/mean": float(groups.rewards.total.mean())}
    out |= {f"reward/{k}": float(v.mean()) for k, v in comps.items()}
    if "accuracy" in comps:
        out["reward/accuracy_rate"] = float((comps["accuracy"] >= 1.0).float().mean())
    if "format" in comps:
        out["reward/format_rate"] = float((comps["format"] >= 1.0).float().mean())
    out["perf/completion_len"] = float(groups.completion_mask.sum(dim=1).float().mean())
    kinds = [a.kind for a in groups.augmentations]
    for kind in ("increase", "decrease"):
        out[f"augment/{kind}"] = float(kinds.count(kind))
        levels = [a.level for a in groups.augmentations if a.kind == kind]
        out[f"augment/{kind}_level_mean"] = _mean(levels) if levels else math.nan
        picked = [task_of(s) for s, k in zip(groups.samples, kinds, strict=True) if k == kind]
        out |= {f"augment/{GROUP_NAMES[kind]}/{t}": float(picked.count(t)) for t in tasks}
    return out


def task_of(sample: Sample) -> str:
    """The sample's task (its evaluation category, e.g. "task=count"); "other" when it has none."""
    return category(sample) or "other"


def dataset_tasks(dataset: list[Sample]) -> tuple[str, ...]:
    """Every task of the dataset, sorted (the per-task augmentation counts log each of them)."""
    return tuple(sorted({task_of(s) for s in dataset}))


def rl_step(ctx: RunContext, step: int) -> StepReport:
    """One full step; returns metrics averaged over ranks."""
    t0 = time.perf_counter()
    # Sharded weights are gathered once, on every rank, for the whole collect phase: re-rollouts and
    # self traces happen only on ranks whose groups need them, so they must not be collectives.
    with gathered_for_generation(ctx.policy):
        sync_s = sync_engine(ctx.engine, ctx.model)  # vLLM: the last update's weights, once
        groups, stats = collect_rollouts(ctx, step)
    sleep_engine(ctx.engine)  # vLLM on CUDA frees its memory for the update
    if groups is None:  # nothing readable was drawn: no update this step
        return StepReport(metrics={**media_skip_metrics(ctx.media, ctx.accelerator), "perf/empty_steps": 1.0})
    t1 = time.perf_counter()
    advantages = group_advantages(
        groups.rewards.total, groups.group_size, scale=ctx.advantage_scale, eps=ctx.cfg.algo.adv_eps
    )
    update = update_policy(ctx, groups, advantages)
    t2 = time.perf_counter()
    if ctx.tasks is None:
        ctx.tasks = dataset_tasks(ctx.dataset)
    metrics = {**rollout_metrics(groups, ctx.tasks), **stats, **update}
    metrics |= {"adv/abs_mean": float(advantages.abs().mean())}
    metrics |= {"perf/rollout_s": groups.rollout_s, "perf/reward_s": groups.reward_s}
    metrics |= {"perf/collect_s": t1 - t0, "perf/update_s": t2 - t1}
    metrics |= {"perf/lr": float(ctx.scheduler.get_last_lr()[0])}
    if sync_s is not None:
        metrics["rollout/sync_s"] = sync_s
    metrics = ctx.reduce_metrics(metrics) | media_skip_metrics(ctx.media, ctx.accelerator)
    metrics |= ctx.augment.metrics()  # identical on every rank: not averaged
    return StepReport(metrics=metrics, groups=groups, advantages=advantages)
