"""Rolled-out groups: the typed container between rollout, rewards, difficulty and the update.

Shapes: N groups (prompts), G completions each, B = N·G rows group by group, T completion tokens.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepvideo_r1.data.prompts import build_question_text, format_answer
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.difficulty.plan import Augmentation
from deepvideo_r1.metrics.completions import MAX_GROUPS
from deepvideo_r1.models.adapter import ModelAdapter
from deepvideo_r1.models.batch import PromptInputs, SequenceBatch, join_completions
from deepvideo_r1.rewards import RewardBreakdown, compute_rewards
from deepvideo_r1.rollout import RolloutEngine


@dataclass
class Groups:
    """N prompts with G completions each. completion_ids/mask [B, T]; rewards.total [B];
    augmentations [N] (how each prompt was built); rollout_s: seconds spent generating;
    sampling_logps [B, T]: the rollout engine's log-probs of the sampled tokens (vLLM; else None)."""

    samples: list[Sample]
    prompts: list[PromptInputs]
    augmentations: list[Augmentation]
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    texts: list[str]
    rewards: RewardBreakdown
    group_size: int
    rollout_s: float = 0.0
    reward_s: float = 0.0
    sampling_logps: torch.Tensor | None = None

    @property
    def num_groups(self) -> int:
        return len(self.samples)

    def rows(self, groups: Sequence[int]) -> torch.Tensor:
        """Row indices [len(groups)·G] of the given groups."""
        g = self.group_size
        return torch.tensor([n * g + i for n in groups for i in range(g)], dtype=torch.long)


def roll_out(
    engine: RolloutEngine,
    adapter: ModelAdapter,
    samples: list[Sample],
    prompts: list[PromptInputs],
    augmentations: list[Augmentation],
    group_size: int,
    reward_weights: dict[str, float],
    seed: int,
) -> Groups:
    """Generate G completions per prompt (one batched call) and score them."""
    out = engine.generate(adapter.collate(prompts), group_size, seed=seed)
    repeated = [s for s in samples for _ in range(group_size)]
    start = time.perf_counter()
    rewards = compute_rewards(out.texts, repeated, reward_weights)
    return Groups(
        samples=samples,
        prompts=prompts,
        augmentations=augmentations,
        completion_ids=out.completion_ids.cpu(),
        completion_mask=out.completion_mask.cpu(),
        texts=out.texts,
        rewards=rewards,
        group_size=group_size,
        rollout_s=out.timing.get("rollout/total_s", 0.0),
        reward_s=time.perf_counter() - start,
        sampling_logps=out.logprobs.cpu() if out.logprobs is not None else None,
    )


def _pad_to(x: torch.Tensor, width: int, value: int) -> torch.Tensor:
    return F.pad(x, (0, width - x.shape[1]), value=value)


def _cat_rows(a: torch.Tensor, b: torch.Tensor, value: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(a.shape[1], b.shape[1])
    return _pad_to(a, width, value), _pad_to(b, width, value)


def replace_groups(groups: Groups, which: Sequence[int], new: Groups, pad_id: int) -> Groups:
    """`groups` with group which[k] replaced by group k of `new` (same G)."""
    ids, new_ids = _cat_rows(groups.completion_ids, new.completion_ids, pad_id)
    mask, new_mask = _cat_rows(groups.completion_mask, new.completion_mask, 0)
    logps = new_logps = None
    if groups.sampling_logps is not None and new.sampling_logps is not None:
        logps, new_logps = _cat_rows(groups.sampling_logps, new.sampling_logps, 0)
    texts, total = list(groups.texts), groups.rewards.total.clone()
    components = {k: v.clone() for k, v in groups.rewards.components.items()}
    samples, prompts, augs = list(groups.samples), list(groups.prompts), list(groups.augmentations)
    for k, n in enumerate(which):
        dst, src = groups.rows([n]), new.rows([k])
        ids[dst], mask[dst], total[dst] = new_ids[src], new_mask[src], new.rewards.total[src]
        if logps is not None:
            logps[dst] = new_logps[src]
        for name in components:
            components[name][dst] = new.rewards.components[name][src]
        for d, s in zip(dst.tolist(), src.tolist(), strict=True):
            texts[d] = new.texts[s]
        samples[n], prompts[n], augs[n] = new.samples[k], new.prompts[k], new.augmentations[k]
    return Groups(
        samples=samples,
        prompts=prompts,
        augmentations=augs,
        completion_ids=ids,
        completion_mask=mask,
        texts=texts,
        rewards=RewardBreakdown(total=total, components=components),
        group_size=groups.group_size,
        rollout_s=groups.rollout_s + new.rollout_s,
        reward_s=groups.reward_s + new.reward_s,
        sampling_logps=logps,
    )


def concat_groups(parts: Sequence[Groups], pad_id: int) -> Groups:
    """The groups of every part, in order, as one Groups (completions right-padded to one width)."""
    width = max(p.completion_ids.shape[1] for p in parts)
    components = {k: torch.cat([p.rewards.components[k] for p in parts]) for k in parts[0].rewards.components}
    return Groups(
        samples=[s for p in parts for s in p.samples],
        prompts=[x for p in parts for x in p.prompts],
        augmentations=[a for p in parts for a in p.augmentations],
        completion_ids=torch.cat([_pad_to(p.completion_ids, width, pad_id) for p in parts]),
        completion_mask=torch.cat([_pad_to(p.completion_mask, width, 0) for p in parts]),
        texts=[t for p in parts for t in p.texts],
        rewards=RewardBreakdown(total=torch.cat([p.rewards.total for p in parts]), components=components),
        group_size=parts[0].group_size,
        rollout_s=sum(p.rollout_s for p in parts),
        reward_s=sum(p.reward_s for p in parts),
        sampling_logps=(
            torch.cat([_pad_to(p.sampling_logps, width, 0) for p in parts])
            if all(p.sampling_logps is not None for p in parts)
            else None
        ),
    )


def micro_batches(
    groups: Groups, groups_per_micro: int, adapter: ModelAdapter
) -> list[tuple[list[int], SequenceBatch]]:
    """Split into micro-batches of whole groups: (group indices, SequenceBatch [b, L+T])."""
    out = []
    for start in range(0, groups.num_groups, groups_per_micro):
        which = list(range(start, min(start + groups_per_micro, groups.num_groups)))
        rows = groups.rows(which)
        mask = groups.completion_mask[rows]
        width = max(int(mask.sum(dim=1).max()), 1)  # drop columns that are padding in every row
        batch = join_completions(
            adapter.collate([groups.prompts[n] for n in which]),
            groups.completion_ids[rows][:, :width],
            mask[:, :width],
            groups.group_size,
        )
        out.append((which, batch))
    return out


def completion_rows(
    groups: Groups, advantages: torch.Tensor, step: int, max_groups: int = MAX_GROUPS
) -> list[dict]:
    """One dict per completion of the first `max_groups` groups; advantages [B] row-aligned with texts.

    Row r = n·G + i is completion i of group n (groups are stored group by group).
    """
    g = groups.group_size
    rows = []
    for n in range(min(max_groups, groups.num_groups)):
        sample, aug = groups.samples[n], groups.augmentations[n]
        prompt = build_question_text(sample, aug.hint)
        for i in range(g):
            r = n * g + i
            rows.append(
                {
                    "step": step,
                    "sample_id": sample.id,
                    "prompt": prompt,
                    "gold": format_answer(sample),
                    "completion": groups.texts[r],
                    "reward": float(groups.rewards.total[r]),
                    "rewards": {k: float(v[r]) for k, v in groups.rewards.components.items()},
                    "advantage": float(advantages[r]),
                    "augmentation": aug.kind,
                    "level": float(aug.level),
                    "hint": aug.hint,
                }
            )
    return rows
