"""Difficulty-aware augmentation as one stage of the RL step: `AugmentationStage.run`.

For one rollout batch of N prompts (in this order):
1. next_visit: the decisions stored at the prompts' earlier visits become their augmentations;
2. roll out G completions per prompt (through the step's `roll` callback);
3. the controller assesses every group of every rank in one global order (identical state on
   all ranks) and decides increase / decrease / none per group;
4. same_step: the augmented prompts are rolled out again and replace their groups; next_visit:
   the decisions are stored for the prompts' next draw;
5. stats: vanishing ratio before and after, reward before augmentation, whether each
   augmentation rescued its group (`effect.py`), the mean level.

The stage owns the controller and the hint bank (what a checkpoint saves); it runs no model: the
step hands it callbacks (`StageCalls`) for rolling out, replacing groups, gathering across ranks
and generating reasoning traces.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import torch
from torch import Tensor

from deepvideo_r1.algos.advantages import vanishing_groups, vanishing_ratio
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.difficulty.controller import DifficultyController, DifficultyDecision
from deepvideo_r1.difficulty.effect import augmentation_effect
from deepvideo_r1.difficulty.guidance import HintBank
from deepvideo_r1.difficulty.options import DifficultyConfig, build_controller
from deepvideo_r1.difficulty.plan import Augmentation, plan_augmentation
from deepvideo_r1.rewards import RewardBreakdown


class Rollout(Protocol):
    """What the stage reads of a rolled-out batch: rewards [N·G] group by group, G, and how each
    of the N prompts was built."""

    rewards: RewardBreakdown
    group_size: int
    augmentations: list[Augmentation]


R = TypeVar("R", bound=Rollout)


@dataclass(frozen=True)
class StageCalls(Generic[R]):
    """What the stage asks of the step. Positions k index the batch's prompts (0..N-1)."""

    roll: Callable[[list[int], list[Augmentation], int], R]
    """(positions, their augmentations, phase) -> those prompts rolled out (phase 0 first, 1 again)."""
    replace: Callable[[R, list[int], R], R]
    """(batch, positions, their re-rolled groups) -> the batch with those groups replaced."""
    gather: Callable[[Tensor], Tensor]
    """A tensor of this rank -> the tensors of every rank concatenated in rank order."""
    rank: int
    sample_id: Callable[[int], str]
    """Dataset index -> sample id (for the groups of other ranks)."""
    self_traces: Callable[[list[Sample], int], None]
    """(samples about to be hinted, phase) -> fill the hint bank where they have no trace."""
    seed: Callable[[int, int], int]
    """(dataset index, phase) -> the seed of that sample's noise / mask draw."""


class AugmentationStage:
    """The augmentation of one run: its options, the controller and the hint bank."""

    def __init__(self, options: DifficultyConfig, hints: HintBank) -> None:
        self.options = options
        self.controller: DifficultyController = build_controller(options)
        self.hints = hints

    def run(
        self, indices: list[int], samples: list[Sample], calls: StageCalls[R]
    ) -> tuple[R, dict[str, float]]:
        """Roll out the prompts of dataset `indices`, augmented as decided; return the groups to
        train on and the stage's stats."""
        opts = self.options
        next_visit = opts.enabled and opts.timing == "next_visit"
        pending = [self.controller.pop_pending(s.id) if next_visit else None for s in samples]
        positions = list(range(len(samples)))
        groups = calls.roll(positions, self.plan(indices, samples, pending, calls, phase=0), 0)
        stats = before_stats(groups)
        if opts.enabled:
            decisions = self.assess(groups, indices, calls)
            if opts.timing == "same_step":
                groups, effect = self.same_step(groups, indices, samples, decisions, calls)
                stats |= effect
            else:
                stats |= next_visit_effect(groups, pending)
            levels = [d.level for d in decisions if d.kind != "none"]
            stats["difficulty/level_mean"] = _mean(levels) if levels else math.nan
        stats["adv/vanishing_ratio_after"] = vanishing_ratio(groups.rewards.total, groups.group_size)
        return groups, stats

    def plan(
        self,
        indices: list[int],
        samples: list[Sample],
        decisions: Sequence[DifficultyDecision | None],
        calls: StageCalls,
        phase: int,
    ) -> list[Augmentation]:
        """Augmentations for these decisions; traces are generated first where guidance needs one."""
        needing = [s for s, d in zip(samples, decisions, strict=True) if d and d.kind == "decrease"]
        if needing:
            calls.self_traces(needing, phase)
        return [
            plan_augmentation(d, s, self.hints, self.options, seed=calls.seed(i, phase))
            for i, s, d in zip(indices, samples, decisions, strict=True)
        ]

    def assess(self, groups: Rollout, indices: list[int], calls: StageCalls) -> list[DifficultyDecision]:
        """Run the controller over the groups of every rank in one global order; return this rank's."""
        rewards = groups.rewards.total.view(-1, groups.group_size)  # [N, G]
        all_rewards = calls.gather(rewards)  # [N·world, G]
        all_ids = calls.gather(torch.tensor(indices)).tolist()
        decisions = [
            self.controller.assess(row, sample_id=calls.sample_id(i))
            for row, i in zip(all_rewards, all_ids, strict=True)
        ]
        n = len(indices)
        return decisions[calls.rank * n : (calls.rank + 1) * n]

    def same_step(
        self,
        groups: R,
        indices: list[int],
        samples: list[Sample],
        decisions: list[DifficultyDecision],
        calls: StageCalls[R],
    ) -> tuple[R, dict[str, float]]:
        """Re-roll the augmented prompts now and put their groups in place of the first ones."""
        which = [k for k, d in enumerate(decisions) if d.kind != "none"]
        augs = self.plan(
            [indices[k] for k in which], [samples[k] for k in which], [decisions[k] for k in which], calls, 1
        )
        applied = [(k, a) for k, a in zip(which, augs, strict=True) if a.kind != "none"]
        positions = [k for k, _ in applied]
        if positions:
            redo = calls.roll(positions, [a for _, a in applied], 1)
            stats = same_step_effect(groups, redo, positions, [a.kind for _, a in applied])
            groups = calls.replace(groups, positions, redo)
        else:
            none = torch.zeros(0, groups.group_size)
            acc = none if "accuracy" in groups.rewards.components else None
            stats = augmentation_effect([], [], none, acc, acc)
        stats["difficulty/unapplied"] = float(sum(bool(a.unapplied) for a in augs))
        return groups, stats

    def end_step(self) -> None:
        """Close the optimizer step for the controller (window_unit="steps" pushes its mean)."""
        if self.options.enabled:
            self.controller.end_step()

    def metrics(self) -> dict[str, float]:
        """The controller's decision counts and r_ref since the last call (empty when disabled)."""
        return self.controller.metrics(reset=True) if self.options.enabled else {}


def before_stats(groups: Rollout) -> dict[str, float]:
    """Vanishing ratio and rewards of the first rollout: the clean learning curve (hinted groups
    inflate the final one); under next_visit it already carries the decisions of earlier visits."""
    stats = {"adv/vanishing_ratio_before": vanishing_ratio(groups.rewards.total, groups.group_size)}
    stats |= {f"reward/{k}_before": float(v.mean()) for k, v in groups.rewards.components.items()}
    stats["reward/mean_before"] = float(groups.rewards.total.mean())
    return stats


def _rows(values: Tensor, g: int, which: list[int] | None = None) -> Tensor:
    """[B] -> [n, G] (the groups `which`, or all)."""
    rows = values.view(-1, g)
    return rows if which is None else rows[torch.tensor(which, dtype=torch.long)]


def same_step_effect(before: Rollout, after: Rollout, which: list[int], kinds: list[str]) -> dict[str, float]:
    """augmentation_effect of groups `which` of `before`, re-rolled (augmented) as `after`."""
    g = before.group_size
    vanished = vanishing_groups(_rows(before.rewards.total, g, which).flatten(), g).tolist()
    acc_before = before.rewards.components.get("accuracy")
    acc_after = after.rewards.components.get("accuracy")
    return augmentation_effect(
        kinds,
        vanished,
        _rows(after.rewards.total, g),
        _rows(acc_after, g) if acc_after is not None else None,
        _rows(acc_before, g, which) if acc_before is not None else None,
    )


def next_visit_effect(groups: Rollout, pending: list[DifficultyDecision | None]) -> dict[str, float]:
    """augmentation_effect of the groups built from decisions stored at an earlier visit (whether
    a group had vanished is the stored decision's; there is no unaugmented rollout to compare)."""
    which = [k for k, a in enumerate(groups.augmentations) if a.kind != "none"]
    vanished = [bool(pending[k] and pending[k].vanishing) for k in which]
    kinds = [groups.augmentations[k].kind for k in which]
    acc = groups.rewards.components.get("accuracy")
    g = groups.group_size
    return augmentation_effect(
        kinds,
        vanished,
        _rows(groups.rewards.total, g, which),
        _rows(acc, g, which) if acc is not None else None,
    )


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0
