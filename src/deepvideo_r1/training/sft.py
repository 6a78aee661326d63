"""Supervised warm start: cross-entropy on "<think>steps</think><answer>X</answer>" targets.

The target comes from the sample's reasoning trace and gold answer (data.prompts.build_target_text);
samples without a gold answer are left out of this stage (and counted). Under data.on_error: skip a
drawn sample with unreadable media is left out of its step (`media.skipped` counts them); a step
left with nothing makes no update. With `sft.hint_fraction` a share of the examples carries the
first steps of its own trace as a hint in the prompt (the target unchanged), so the model sees
hints the way difficulty augmentation writes them.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from deepvideo_r1.config import SftConfig
from deepvideo_r1.data.prompts import build_target_text
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.difficulty.guidance import format_hint
from deepvideo_r1.distributed.sharding import set_deepspeed_micro_batch
from deepvideo_r1.metrics.logger import SFT_METRICS_FILE, MetricsLogger, TrainProgress
from deepvideo_r1.models.adapter import ModelAdapter
from deepvideo_r1.models.media import MediaLoader, encode_sample
from deepvideo_r1.training.context import make_optimizer, parameter_groups
from deepvideo_r1.training.media_skips import keep_readable
from deepvideo_r1.training.policy import PolicyModule
from deepvideo_r1.training.sampler import PromptSampler

logger = logging.getLogger(__name__)


def sft_pairs(samples: list[Sample]) -> list[tuple[Sample, str]]:
    """(sample, target text) for every sample that has a gold answer."""
    pairs = [(s, t) for s in samples if (t := build_target_text(s)) is not None]
    if not pairs:
        raise ValueError("supervised warm start: no sample has a gold answer to train on")
    if len(pairs) < len(samples):
        logger.info(
            "SFT: %d of %d samples have no gold answer and are left out",
            len(samples) - len(pairs),
            len(samples),
        )
    return pairs


def sft_hint(sample: Sample, fraction: float, max_steps: int, key: str) -> str | None:
    """The hint an SFT example carries, or None: with probability `fraction` the first 1..`max_steps`
    steps (uniform) of the sample's trace. Drawn from `key` alone, so every rank and rerun agrees."""
    if fraction <= 0 or not any(step.strip() for step in sample.reasoning or []):
        return None
    rng = random.Random(key)
    if rng.random() >= fraction:
        return None
    return format_hint(sample.reasoning, rng.randint(1, max_steps))


def run_sft(
    model: nn.Module,
    adapter: ModelAdapter,
    samples: list[Sample],
    media: MediaLoader,
    cfg: SftConfig,
    accelerator: Accelerator,
    *,
    seed: int,
    max_grad_norm: float = 1.0,
    run_dir: str | Path | None = None,
    log_every: int = 1,
) -> list[float]:
    """`cfg.steps` AdamW steps of cross-entropy on completion tokens; returns the loss per step.

    Trains `model` in place (its requires_grad flags decide what trains). With `run_dir`, each
    step's `sft/loss` and `sft/lr` go to `<run_dir>/sft_metrics.jsonl` and the accelerator's trackers.
    """
    pairs = sft_pairs(samples)
    groups = parameter_groups(model, cfg.lr, cfg.vision_lr)
    optimizer, scheduler = make_optimizer(groups, cfg.lr, 0.0, cfg.warmup_steps, cfg.steps, cfg.schedule)
    set_deepspeed_micro_batch(accelerator, cfg.batch_size)
    policy, optimizer = accelerator.prepare(
        PolicyModule(model, shared_prefix=False), optimizer
    )  # SFT: CE only
    params = [p for p in policy.parameters() if p.requires_grad]  # accelerate's FSDP2 replaced them
    sampler = PromptSampler(len(pairs), seed=seed)
    losses = []
    main = accelerator.is_main_process
    log = MetricsLogger(
        run_dir or ".", enabled=main and run_dir is not None, resume_step=0, filename=SFT_METRICS_FILE,
        mirror=accelerator.log,
    )  # fmt: skip
    bar = TrainProgress(cfg.steps, enabled=main, log_every=log_every, keys=("sft/loss",), label="sft")
    with log, bar:
        for step in range(1, cfg.steps + 1):
            drawn = sampler.next_batch(cfg.batch_size, accelerator.process_index, accelerator.num_processes)
            idx = keep_readable(drawn, lambda i: pairs[i][0], media, accelerator)
            if not idx:
                logger.warning("SFT step %d: no drawn sample has readable media; no update", step)
                continue
            drawn_pairs = [pairs[i] for i in idx]
            hints = [
                sft_hint(p[0], cfg.hint_fraction, cfg.hint_max_steps, f"{seed}:{step}:{i}")
                for i, p in zip(idx, drawn_pairs, strict=True)
            ]
            prompts = [
                encode_sample(adapter, p[0], media(p[0]), hint=h)
                for p, h in zip(drawn_pairs, hints, strict=True)
            ]
            targets = [adapter.encode_completion(p[1]) for p in drawn_pairs]
            batch = adapter.sft_batch(prompts, targets).to(accelerator.device)
            loss = policy(batch, sft=True)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            value = float(accelerator.reduce(loss.detach(), reduction="mean"))
            losses.append(value)
            record = {"sft/loss": value, "sft/lr": lr}
            if cfg.hint_fraction:
                record["sft/hinted"] = float(
                    accelerator.reduce(
                        torch.tensor(float(sum(h is not None for h in hints)), device=accelerator.device),
                        "sum",
                    )
                )
            log.log(step, record)
            bar.update(step, {"sft/loss": value})
    return losses
