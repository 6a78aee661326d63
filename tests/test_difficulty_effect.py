"""augmentation_effect: which augmented groups that had vanished now have reward variance."""

from __future__ import annotations

import math

import pytest
import torch

from deepvideo_r1.difficulty.effect import augmentation_effect, pool_batch_stats


def test_rescued_counts_and_fractions_by_kind():
    # 3 hinted groups (two had vanished) and 2 noised ones (both had vanished), G = 4
    kinds = ["decrease", "decrease", "increase", "decrease", "increase"]
    vanished = [True, True, True, False, True]
    total = torch.tensor(
        [
            [0.0, 2.0, 0.0, 0.0],  # hinted, vanished, now varied -> rescued
            [2.0, 2.0, 2.0, 2.0],  # hinted, vanished, now all correct -> not rescued
            [1.0, 2.0, 2.0, 2.0],  # noised, vanished, now varied -> rescued
            [0.0, 2.0, 2.0, 0.0],  # hinted, had not vanished -> not counted
            [2.0, 2.0, 2.0, 2.0],  # noised, vanished, still all correct -> not rescued
        ]
    )
    acc_after = (total == 2.0).float()
    acc_before = torch.tensor([[0.0] * 4, [0.0] * 4, [1.0] * 4, [0.0, 1.0, 0.0, 0.0], [1.0] * 4])
    out = augmentation_effect(kinds, vanished, total, acc_after, acc_before)
    assert out["difficulty/vanished_decrease"] == 2 and out["difficulty/rescued_decrease"] == 1
    assert out["difficulty/vanished_increase"] == 2 and out["difficulty/rescued_increase"] == 1
    assert out["difficulty/rescued_fraction_decrease"] == 0.5
    assert out["difficulty/rescued_fraction_increase"] == 0.5
    assert out["difficulty/rescued_fraction"] == 0.5  # (1 + 1) / (2 + 2)
    # hinted groups 0, 1, 3: after (1 + 4 + 2) / 12 correct; before 1 / 12
    assert out["difficulty/hinted_accuracy_after"] == pytest.approx(7 / 12)
    assert out["difficulty/hinted_accuracy_before"] == pytest.approx(1 / 12)
    # noised groups 2, 4: after (3 + 4) / 8; before 8 / 8
    assert out["difficulty/noised_accuracy_after"] == pytest.approx(7 / 8)
    assert out["difficulty/noised_accuracy_before"] == 1.0


def test_no_augmented_groups_gives_nan_fractions_and_zero_counts():
    none = torch.zeros(0, 4)
    out = augmentation_effect([], [], none, none, none)
    assert out["difficulty/vanished_decrease"] == 0 and out["difficulty/rescued_increase"] == 0
    assert math.isnan(out["difficulty/rescued_fraction"])
    assert math.isnan(out["difficulty/hinted_accuracy_after"])
    assert "difficulty/noised_accuracy_before" in out


def test_pooled_batches_add_counts_and_recompute_fractions():
    # batch 1: 1 of 2 vanished hinted groups rescued, no noised group; batch 2: 2 of 2 noised rescued
    one = {
        "difficulty/vanished_decrease": 2.0, "difficulty/rescued_decrease": 1.0,
        "difficulty/rescued_fraction_decrease": 0.5, "difficulty/vanished_increase": 0.0,
        "difficulty/rescued_increase": 0.0, "difficulty/rescued_fraction_increase": math.nan,
        "difficulty/rescued_fraction": 0.5, "difficulty/unapplied": 1.0,
        "difficulty/noised_accuracy_after": math.nan, "adv/vanishing_ratio_before": 0.25,
    }  # fmt: skip
    two = {
        "difficulty/vanished_decrease": 0.0, "difficulty/rescued_decrease": 0.0,
        "difficulty/rescued_fraction_decrease": math.nan, "difficulty/vanished_increase": 2.0,
        "difficulty/rescued_increase": 2.0, "difficulty/rescued_fraction_increase": 1.0,
        "difficulty/rescued_fraction": 1.0, "difficulty/unapplied": 0.0,
        "difficulty/noised_accuracy_after": 0.75, "adv/vanishing_ratio_before": 0.5,
    }  # fmt: skip
    out = pool_batch_stats([one, two])
    assert out["difficulty/vanished_decrease"] == 2.0 and out["difficulty/rescued_increase"] == 2.0
    assert out["difficulty/rescued_fraction_decrease"] == 0.5
    assert out["difficulty/rescued_fraction_increase"] == 1.0
    assert out["difficulty/rescued_fraction"] == 0.75  # 3 rescued of 4 vanished, not (0.5 + 1) / 2
    assert out["difficulty/unapplied"] == 1.0
    assert out["difficulty/noised_accuracy_after"] == 0.75  # the batch without noised groups is left out
    assert out["adv/vanishing_ratio_before"] == 0.375


def test_pooling_one_batch_changes_nothing():
    stats = {"difficulty/vanished_decrease": 3.0, "difficulty/rescued_decrease": 2.0,
             "difficulty/rescued_fraction_decrease": 2 / 3, "difficulty/vanished_increase": 0.0,
             "difficulty/rescued_increase": 0.0, "difficulty/rescued_fraction_increase": math.nan,
             "difficulty/rescued_fraction": 2 / 3, "reward/mean_before": 0.4}  # fmt: skip
    out = pool_batch_stats([stats])
    assert set(out) == set(stats)
    for key, value in stats.items():
        assert (math.isnan(value) and math.isnan(out[key])) or out[key] == value
