"""Did an augmentation do its job? Counts per kind of the vanished groups it gave reward variance.

A group has *vanished* when its G rewards are all equal (every advantage is 0). Of the augmented
groups that had vanished, the *rescued* ones have unequal rewards after augmentation:

    rescued_fraction_<kind> = #(vanished before and not vanished after) / #(vanished before)

kind "decrease" (hinted: an all-wrong group should gain some correct completions, not all) and
"increase" (noised or masked: an all-correct group should lose some). The mean accuracy of the
hinted and the noised groups before and after shows the direction of the change.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from deepvideo_r1.algos.advantages import vanishing_groups

# kind of augmentation -> metric name of the groups it was applied to
GROUP_NAMES = {"decrease": "hinted", "increase": "noised"}


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def pooled_fractions(rescued: dict[str, float], vanished: dict[str, float]) -> dict[str, float]:
    """`rescued_fraction_<kind>` per kind and `rescued_fraction` (all kinds) from counts per kind
    (nan where nothing had vanished)."""
    out = {f"rescued_fraction_{k}": _ratio(rescued[k], vanished[k]) for k in rescued}
    out["rescued_fraction"] = _ratio(sum(rescued.values()), sum(vanished.values()))
    return out


def augmentation_effect(
    kinds: list[str],
    vanished_before: list[bool],
    total_after: Tensor,
    accuracy_after: Tensor | None = None,
    accuracy_before: Tensor | None = None,
) -> dict[str, float]:
    """Metrics of n augmented groups: `kinds` [n], `vanished_before` [n], rewards [n, G] after
    (and the accuracy component [n, G] before, when the same inputs were rolled out unaugmented).

    Counts `difficulty/vanished_<kind>` and `difficulty/rescued_<kind>`, the fractions
    `difficulty/rescued_fraction_<kind>` and `difficulty/rescued_fraction` (both kinds; nan when
    no augmented group had vanished), and `difficulty/<hinted|noised>_accuracy_<before|after>`
    (nan when no group of that kind).
    """
    out: dict[str, float] = {}
    flat_after = vanishing_groups(total_after.flatten(), total_after.shape[-1]).tolist() if kinds else []
    for kind, name in GROUP_NAMES.items():
        rows = [k for k, kd in enumerate(kinds) if kd == kind]
        vanished = [k for k in rows if vanished_before[k]]
        out[f"difficulty/vanished_{kind}"] = float(len(vanished))
        out[f"difficulty/rescued_{kind}"] = float(sum(not flat_after[k] for k in vanished))
        for side, acc in (("after", accuracy_after), ("before", accuracy_before)):
            if acc is not None:
                picked = acc[torch.tensor(rows, dtype=torch.long)] if rows else None
                out[f"difficulty/{name}_accuracy_{side}"] = float(picked.mean()) if rows else math.nan
    return out | _fractions_of_counts(out)


def _fractions_of_counts(stats: dict[str, float]) -> dict[str, float]:
    """The difficulty/rescued_fraction* metrics from the per-kind counts in `stats`."""
    kinds = [k for k in GROUP_NAMES if f"difficulty/vanished_{k}" in stats]
    rescued = {k: stats[f"difficulty/rescued_{k}"] for k in kinds}
    vanished = {k: stats[f"difficulty/vanished_{k}"] for k in kinds}
    return {f"difficulty/{k}": v for k, v in pooled_fractions(rescued, vanished).items()} if kinds else {}


def _is_count(key: str) -> bool:
    return key == "difficulty/unapplied" or (
        key.startswith(("difficulty/vanished_", "difficulty/rescued_")) and "fraction" not in key
    )


def pool_batch_stats(batches: list[dict[str, float]]) -> dict[str, float]:
    """One optimizer step's metrics from those of its rollout batches (train.grad_accumulation).

    Counts add up and the rescued fractions are recomputed from the pooled counts; every other
    metric is the mean over the batches that have a number for it (nan when none has).
    """
    keys = list(dict.fromkeys(k for b in batches for k in b))
    out: dict[str, float] = {}
    for key in keys:
        values = [b[key] for b in batches if key in b]
        if _is_count(key):
            out[key] = float(sum(values))
        else:
            finite = [v for v in values if not math.isnan(v)]
            out[key] = sum(finite) / len(finite) if finite else math.nan
    return out | _fractions_of_counts(out)
