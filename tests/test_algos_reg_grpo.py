"""Reg-GRPO: hand values, the on-policy gradient limit, gradcheck, invariances."""

import math
import statistics
from typing import get_args

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepvideo_r1.algos import group_advantages, reg_grpo_loss
from deepvideo_r1.algos.reg_grpo import RatioNormalization, safe_group_std

# T=1, so rho = logp - old directly. N=2 groups of G=3.
RHO = torch.tensor([1.0, 2.0, 3.0, 0.0, 0.0, 3.0], dtype=torch.float64)
ADV = torch.tensor([1.0, 0.0, -1.0, 0.5, 0.5, -1.0], dtype=torch.float64)
ONES = torch.ones(6, 1)


def _loss(rho, adv, mask=ONES, **kw):
    logps = rho.reshape(-1, 1)
    return reg_grpo_loss(logps, torch.zeros_like(logps), adv, mask, 3, **kw)


def test_separated_rho_hand_value():
    # group 0: rho [1,2,3], mean 2, unbiased std 1 -> z = [-1,0,1]/1.0001
    #   (1 + 1/1.0001)^2 * 2 / 3 = 2.666400
    # group 1: rho [0,0,3], mean 1, var (1+1+4)/2 = 3 -> z = [-1,-1,2]/(sqrt3 + 1e-4)
    #   ((.5 + .577317)^2 * 2 + (-1 - 1.154634)^2) / 3 = 2.321224
    # L = (2.666400 + 2.321224) / 2 = 2.493812
    loss, metrics = _loss(RHO, ADV)
    assert loss.item() == pytest.approx(2.4938118, abs=1e-6)
    assert metrics["loss/reg_zero_spread_frac"].item() == 0.0
    # mean |z| = (2/1.0001 + 4/1.7321508) / 6 = .718186
    assert metrics["loss/reg_mean_abs_z"].item() == pytest.approx((2 / 1.0001 + 4 / 1.7321508) / 6, abs=1e-6)


def test_no_normalisation_and_epsilon():
    # "none": z = rho - mean -> group 0 [-1,0,1], group 1 [-1,-1,2]; epsilon .5
    # group 0: ((1+.5)^2 + 0 + (-1-.5)^2)/3 = 1.5 ; group 1: ((.5+.5)^2*2 + (-1-1)^2)/3 = 2
    loss, _ = _loss(RHO, ADV, ratio_normalization="none", epsilon=0.5)
    assert loss.item() == pytest.approx(1.75, abs=1e-9)


def test_matches_loop_reference_on_random_input():
    gen = torch.Generator().manual_seed(0)
    rho = torch.randn(12, generator=gen, dtype=torch.float64)
    adv = torch.randn(12, generator=gen, dtype=torch.float64)
    total = 0.0
    for n in range(4):  # 4 groups of 3, plain python statistics
        r, a = rho[3 * n : 3 * n + 3].tolist(), adv[3 * n : 3 * n + 3].tolist()
        mean, std = statistics.fmean(r), statistics.stdev(r)
        total += sum((ai - 0.7 * (ri - mean) / (std + 1e-4)) ** 2 for ai, ri in zip(a, r, strict=True)) / 3
    logps = rho.reshape(-1, 1)
    loss, _ = reg_grpo_loss(logps, torch.zeros_like(logps), adv, torch.ones(12, 1), 3, epsilon=0.7)
    assert loss.item() == pytest.approx(total / 4, rel=1e-12)


def test_length_normalize_divides_rho_by_token_count():
    # row lengths [2, 1, 2, ...]: token log-ratios [1,1] -> rho 2 (sum) or 1 (mean)
    ratios = torch.tensor([[1.0, 1.0], [3.0, 9.0], [2.0, 4.0]] * 2, dtype=torch.float64)
    mask = torch.tensor([[1, 1], [1, 0], [1, 1]] * 2)
    adv = torch.tensor([1.0, -1.0, 0.0] * 2, dtype=torch.float64)
    # length-normalised rho per group: [1, 3, 3] -> mean 7/3, deviations [-4/3, 2/3, 2/3], std 2/sqrt3
    loss, _ = reg_grpo_loss(ratios, torch.zeros_like(ratios), adv, mask, 3, length_normalize=True)
    std = 2 / math.sqrt(3) + 1e-4
    z = [-4 / 3 / std, 2 / 3 / std, 2 / 3 / std]
    expected = sum((a - zi) ** 2 for a, zi in zip([1.0, -1.0, 0.0], z, strict=True)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("epsilon", [1.0, 0.5])
def test_on_policy_gradient_is_the_formula_limit(epsilon):
    # rho ≡ 0, std = 0: dL/drho_{n,j} = -2 eps (A_j - mean A) / (G std_eps) / N, per token (rho is a sum)
    rewards = torch.tensor([1.0, 0.0, 0.0, 2.0, 1.0, 2.0], dtype=torch.float64)
    adv = group_advantages(rewards, 3)
    logps = torch.full((6, 2), -0.7, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(6, 2)
    loss, metrics = reg_grpo_loss(logps, logps.detach(), adv, mask, 3, epsilon=epsilon)
    loss.backward()
    # group means of A are 0, so expected = -2 eps A / (3 * 1e-4) / 2
    expected = (-2 * epsilon * adv / (3 * 1e-4) / 2)[:, None].expand(6, 2)
    torch.testing.assert_close(logps.grad, expected)
    # e.g. A_0 = (2/3)/(.57735+1e-4) = 1.154534 -> grad -1.154534 * eps / 3e-4 = -3848.4 * eps
    assert logps.grad[0, 0].item() == pytest.approx(-3848.45 * epsilon, rel=1e-4)
    # the value is mean A^2 (z = 0); spread is 0 in every group; correlation is 0, not NaN
    assert loss.item() == pytest.approx(adv.pow(2).mean().item())
    assert metrics["loss/reg_zero_spread_frac"].item() == 1.0
    assert metrics["loss/reg_adv_ratio_corr"].item() == 0.0


def test_on_policy_float32_and_bf16_are_finite():
    for dtype in (torch.float32, torch.bfloat16):
        logps = torch.full((4, 3), -1.0, dtype=dtype, requires_grad=True)
        loss, _ = reg_grpo_loss(logps, logps.detach(), torch.tensor([1.0, -1, 0, 0]), torch.ones(4, 3), 2)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logps.grad).all()
        assert (logps.grad[0] < 0).all() and logps.grad[2].abs().sum() == 0


def test_gradcheck_with_separated_rho():
    old = torch.zeros(6, 2, dtype=torch.float64)
    logps = torch.tensor([[0.5, 0.1], [1.0, 0.9], [-1.0, 0.2], [0.0, 0.3], [2.0, -0.4], [0.7, 0.7]],
                         dtype=torch.float64, requires_grad=True)  # fmt: skip
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [1, 1], [1, 1], [0, 0]])
    ref = torch.full((6, 2), -0.2, dtype=torch.float64)
    for norm in get_args(RatioNormalization):

        def fn(lp, norm=norm):
            return reg_grpo_loss(lp, old, ADV, mask, 3, ratio_normalization=norm, ref_logps=ref, beta=0.1)[0]

        assert torch.autograd.gradcheck(fn, (logps,))


def test_correlation_metric_is_one_for_aligned_ratios():
    _, metrics = _loss(2 * ADV + 1, ADV)
    assert metrics["loss/reg_adv_ratio_corr"].item() == pytest.approx(1.0)


def test_bad_normalisation_name():
    with pytest.raises(ValueError, match="ratio_normalization"):
        _loss(RHO, ADV, ratio_normalization="mad")


@settings(max_examples=50, deadline=None)
@given(
    rho=st.lists(st.floats(-5, 5), min_size=6, max_size=6),
    adv=st.lists(st.floats(-2, 2), min_size=6, max_size=6),
    shifts=st.tuples(st.floats(-10, 10), st.floats(-10, 10)),
    norm=st.sampled_from(["std", "none"]),
)
def test_invariant_to_a_constant_added_to_a_groups_log_ratios(rho, adv, shifts, norm):
    # shift every sequence log-ratio of group n by c_n through its first (always valid) token
    logps = torch.tensor(rho, dtype=torch.float64).reshape(6, 1).repeat(1, 2)
    mask = torch.tensor([[1, 1], [1, 0]] * 3)
    adv_t = torch.tensor(adv, dtype=torch.float64)
    old = torch.zeros_like(logps)
    shifted = old.clone()
    shifted[:3, 0] -= shifts[0]
    shifted[3:, 0] -= shifts[1]
    base, _ = reg_grpo_loss(logps, old, adv_t, mask, 3, ratio_normalization=norm)
    moved, _ = reg_grpo_loss(logps, shifted, adv_t, mask, 3, ratio_normalization=norm)
    # rtol covers z = d/(std + 1e-4) when std is tiny and d is rounded after a shift of 10
    assert moved.item() == pytest.approx(base.item(), rel=1e-6, abs=1e-6)


def test_safe_group_std_value_and_zero_spread_gradient():
    values = torch.tensor([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]], dtype=torch.float64, requires_grad=True)
    std = safe_group_std(values)
    # row 0: mean 7/3, squared deviations 16/9 + 1/9 + 25/9 = 42/9, / 2 -> 7/3 ; row 1: 0 exactly
    torch.testing.assert_close(std.detach(), torch.tensor([[math.sqrt(7 / 3)], [0.0]], dtype=torch.float64))
    std.sum().backward()
    assert torch.equal(values.grad[1], torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(values.grad[0], ((values[0] - 7 / 3) / (2 * math.sqrt(7 / 3))).detach())


def test_far_off_token_keeps_its_gradient():
    # rho is a plain sum (no exp, so no clamp): a token at log-ratio +25 moves rho by 25 and keeps
    # dL/dlogp_t = dL/drho. G=2, ratio_normalization none, epsilon 1: rho = [25, 0], mean 12.5,
    # z = [12.5, -12.5]; A = [1, -1]: L = ((1 - 12.5)^2 + (-1 + 12.5)^2)/2 = 132.25
    # dL/drho_0 = (1/2)(2(A_0 - z_0)(-1/2) + 2(A_1 - z_1)(+1/2)) = (11.5 + 11.5)/2 = 11.5
    old = torch.zeros(2, 3, dtype=torch.float64)
    logps = old.clone()
    logps[0, 1] = 25.0
    logps.requires_grad_(True)
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    loss, _ = reg_grpo_loss(logps, old, adv, torch.ones(2, 3), 2, ratio_normalization="none")
    loss.backward()
    assert loss.item() == pytest.approx(132.25)
    torch.testing.assert_close(logps.grad[0], torch.full((3,), 11.5, dtype=torch.float64))
