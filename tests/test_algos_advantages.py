"""Group advantages and vanishing statistics."""

from typing import get_args

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepvideo_r1.algos import group_advantages, vanishing_groups, vanishing_ratio
from deepvideo_r1.algos.advantages import AdvantageScale

REWARDS = torch.tensor([1.0, 0.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0])  # N=2 groups of G=4


def test_group_scale_hand_values():
    # group 0: mean 0.75, deviations [.25, -.75, .25, .25];
    # unbiased var = (3 * .0625 + .5625) / 3 = .25 -> std .5; A = dev / (.5 + 1e-4)
    adv = group_advantages(REWARDS, group_size=4)
    expected0 = torch.tensor([0.25, -0.75, 0.25, 0.25]) / 0.5001
    torch.testing.assert_close(adv[:4], expected0)
    # group 1 is all 2.0: exact zeros, no eps noise
    assert torch.equal(adv[4:], torch.zeros(4))


def test_batch_scale_divides_by_whole_batch_std():
    # batch mean 11/8 = 1.375; squared deviations 3*.140625 + 1.890625 + 4*.390625 = 3.875;
    # unbiased var = 3.875 / 7 = .553571 -> std .744024
    adv = group_advantages(REWARDS, group_size=4, scale="batch")
    torch.testing.assert_close(adv[:4], torch.tensor([0.25, -0.75, 0.25, 0.25]) / (0.7440238 + 1e-4))
    assert torch.equal(adv[4:], torch.zeros(4))


def test_none_scale_is_dr_grpo_centering():
    adv = group_advantages(REWARDS, group_size=4, scale="none")
    torch.testing.assert_close(adv, torch.tensor([0.25, -0.75, 0.25, 0.25, 0, 0, 0, 0]))


# every centred scale ("raw" hands the reward itself to the loss, so it is not zero here)
@pytest.mark.parametrize("scale", [s for s in get_args(AdvantageScale) if s != "raw"])
def test_equal_rewards_give_exact_zeros(scale):
    # 0.1 is not exactly representable: a float mean would leave ~1e-9 residuals, scaled by 1/eps
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.7, 0.7, 0.7])
    assert torch.equal(group_advantages(rewards, 3, scale=scale), torch.zeros(6))


def test_errors_on_bad_group_layout():
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_advantages(torch.zeros(5), group_size=2)
    with pytest.raises(ValueError, match=">= 2"):
        group_advantages(torch.zeros(4), group_size=1)
    with pytest.raises(ValueError, match="unknown advantage scale"):
        group_advantages(torch.zeros(4), group_size=2, scale="rank")
    with pytest.raises(ValueError, match="1-D"):
        group_advantages(torch.zeros(2, 2), group_size=2)


def test_integer_rewards_are_accepted():
    adv = group_advantages(torch.tensor([1, 0]), group_size=2)
    # mean .5, std sqrt(.5) = .707107
    torch.testing.assert_close(adv, torch.tensor([0.5, -0.5]) / (0.7071068 + 1e-4))


def test_vanishing_groups_and_ratio():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])  # groups of 2: equal, differ, equal
    assert vanishing_groups(rewards, 2).tolist() == [True, False, True]
    assert vanishing_ratio(rewards, 2) == pytest.approx(2 / 3)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.integers(2, 6).flatmap(
                lambda g: st.tuples(st.just(g), st.lists(st.floats(-10, 10), min_size=n * g, max_size=n * g))
            ),
        )
    ),
    st.sampled_from(["group", "batch", "none"]),
)
def test_advantages_have_zero_group_mean(data, scale):
    n_groups, (group_size, values) = data
    adv = group_advantages(torch.tensor(values, dtype=torch.float64), group_size, scale=scale)
    assert torch.isfinite(adv).all()
    group_means = adv.reshape(n_groups, group_size).mean(dim=1)
    torch.testing.assert_close(group_means, torch.zeros(n_groups, dtype=torch.float64), atol=1e-9, rtol=0)
