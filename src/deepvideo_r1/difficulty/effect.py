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
    vanished_all = rescued_all = 0
    for kind, name in GROUP_NAMES.items():
        rows = [k for k, kd in enumerate(kinds) if kd == kind]
        vanished = [k for k in rows if vanished_before[k]]
        rescued = sum(not flat_after[k] for k in vanished)
        out[f"difficulty/vanished_{kind}"] = float(len(vanished))
        out[f"difficulty/rescued_{kind}"] = float(rescued)
        out[f"difficulty/rescued_fraction_{kind}"] = _ratio(rescued, len(vanished))
        vanished_all, rescued_all = vanished_all + len(vanished), rescued_all + rescued
        for side, acc in (("after", accuracy_after), ("before", accuracy_before)):
            if acc is not None:
                picked = acc[torch.tensor(rows, dtype=torch.long)] if rows else None
                out[f"difficulty/{name}_accuracy_{side}"] = float(picked.mean()) if rows else math.nan
    out["difficulty/rescued_fraction"] = _ratio(rescued_all, vanished_all)
    return out


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
    kinds = [k for k in GROUP_NAMES if f"difficulty/vanished_{k}" in out]
    for kind in kinds:
        out[f"difficulty/rescued_fraction_{kind}"] = _ratio(
            out[f"difficulty/rescued_{kind}"], out[f"difficulty/vanished_{kind}"]
        )
    if kinds:
        out["difficulty/rescued_fraction"] = _ratio(
            sum(out[f"difficulty/rescued_{k}"] for k in kinds),
            sum(out[f"difficulty/vanished_{k}"] for k in kinds),
        )
    return out
