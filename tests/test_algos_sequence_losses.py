"""reinforce, rloo, rebel, reward_regression, gvpo, online_dpo: hand values, gradients, identities.

The registry-wide properties (padding, zero advantage, gradient sign, finiteness) run over these
losses in test_algos_losses.py.
"""

import math

import pytest
import torch

from deepvideo_r1.algos import LOSS_ADVANTAGE_SCALE, POLICY_LOSSES, group_advantages, policy_loss

# One group of G=4, T=2, float64. Token log-ratios logp - old:
#   row 0 [.1, .2] -> rho .3 ; row 1 [0, -.1] -> rho -.1 ; row 2 [.2, 0] -> rho .2 ;
#   row 3 [-.2, pad] -> rho -.2 (the pad token holds garbage)
# Rewards R = [2, 0, 1, 1]; scale "none" advantages A = R - 1 = [1, -1, 0, 0].
OLD = torch.tensor([[-1.0, -2.0], [-1.5, -0.5], [-3.0, -1.0], [-0.7, -0.9]], dtype=torch.float64)
DIFF = torch.tensor([[0.1, 0.2], [0.0, -0.1], [0.2, 0.0], [-0.2, 9.0]], dtype=torch.float64)
MASK = torch.tensor([[1, 1], [1, 1], [1, 1], [1, 0]])
REWARDS = torch.tensor([2.0, 0.0, 1.0, 1.0], dtype=torch.float64)
ADV = REWARDS - 1.0


def run(name, adv=ADV, **options):
    logps = (OLD + DIFF).requires_grad_(True)
    loss, metrics = policy_loss(name, logps, OLD, adv, MASK, 4, **options)
    loss.backward()
    return loss.item(), logps.grad, metrics


def test_reinforce_hand_value_and_gradient():
    # L = -(1/4)(e^.3 · 1 + e^-.1 · (-1)) = -(1.3498588 - .9048374)/4 = -.1112553
    # dL/dlogp_{0,t} = -e^.3/4 = -.3374647 ; row 1: +e^-.1/4 = .2262094 ; rows 2, 3: 0
    loss, grad, metrics = run("reinforce")
    assert loss == pytest.approx(-(math.exp(0.3) - math.exp(-0.1)) / 4, abs=1e-12)
    assert loss == pytest.approx(-0.1112553, abs=1e-7)
    torch.testing.assert_close(grad[0], torch.full((2,), -math.exp(0.3) / 4, dtype=torch.float64))
    torch.testing.assert_close(grad[1], torch.full((2,), math.exp(-0.1) / 4, dtype=torch.float64))
    assert grad[2:].abs().sum().item() == 0.0
    # ratio mean (e^.3 + e^-.1 + e^.2 + e^-.2)/4 = (1.3498588 + .9048374 + 1.2214028 + .8187308)/4
    assert metrics["loss/ratio_mean"].item() == pytest.approx(1.0737075, abs=1e-7)
    # the group-mean baseline is the loss's own: raw rewards give the same value
    assert run("reinforce", adv=REWARDS)[0] == pytest.approx(loss, abs=1e-12)


def test_rloo_leave_one_out_baseline():
    # A'_0 = 2 - (0 + 1 + 1)/3 = 4/3, A'_1 = 0 - 4/3 = -4/3, A'_2 = A'_3 = 1 - 1 = 0 (raw rewards)
    # = G/(G-1) · [1, -1, 0, 0] from the centred ones: L = 4/3 · (-.1112553) = -.1483404
    for adv in (ADV, REWARDS):
        loss, grad, _ = run("rloo", adv=adv)
        assert loss == pytest.approx(-0.1483404, abs=1e-7)
        torch.testing.assert_close(grad[0], torch.full((2,), -math.exp(0.3) / 3, dtype=torch.float64))


def test_rebel_consecutive_pairs_hand_value():
    # eta = .5, pairs (0, 1), (2, 3):
    #   (.3 - (-.1))/.5 - (1 - (-1)) = .8 - 2 = -1.2 -> 1.44 ;  (.2 - (-.2))/.5 - (0 - 0) = .8 -> .64
    # L = (1.44 + .64)/2 = 1.04 ; dL/drho_0 = (1/2) · 2 · (-1.2)/.5 = -2.4, rho_1 +2.4, rho_2 1.6, rho_3 -1.6
    loss, grad, _ = run("rebel", eta=0.5)
    assert loss == pytest.approx(1.04, abs=1e-12)
    expected = torch.tensor([[-2.4, -2.4], [2.4, 2.4], [1.6, 1.6], [-1.6, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(grad, expected)
    assert run("rebel", adv=REWARDS, eta=0.5)[0] == pytest.approx(1.04, abs=1e-12)  # differences only


def test_rebel_odd_group_leaves_the_last_completion_unpaired():
    logps = torch.zeros(6, 2, dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([1.0, -1.0, 5.0, 0.0, 2.0, 7.0], dtype=torch.float64)  # G=3: rows 2 and 5 unpaired
    loss, _ = policy_loss("rebel", logps, logps.detach() - 0.1, adv, torch.ones(6, 2), 3)
    loss.backward()
    # pair (0,1): 0 - 2 -> 4 ; pair (3,4): 0 - (-2) -> 4 ; L = 4
    assert loss.item() == pytest.approx(4.0)
    assert logps.grad[2].abs().sum() == 0 and logps.grad[5].abs().sum() == 0


def test_reward_regression_regresses_the_raw_reward():
    # eta = .5: rho/.5 - R = [.6 - 2, -.2 - 0, .4 - 1, -.4 - 1] = [-1.4, -.2, -.6, -1.4]
    # L = (1.96 + .04 + .36 + 1.96)/4 = 1.08 ; dL/drho_b = 2 (rho_b/.5 - R_b)/.5/4 = residual_b
    loss, grad, _ = run("reward_regression", adv=REWARDS, eta=0.5)
    assert loss == pytest.approx(1.08, abs=1e-12)
    expected = torch.tensor([[-1.4, -1.4], [-0.2, -0.2], [-0.6, -0.6], [-1.4, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(grad, expected)
    assert LOSS_ADVANTAGE_SCALE["reward_regression"] == "raw"
    torch.testing.assert_close(group_advantages(REWARDS, 4, scale="raw"), REWARDS)


def test_gvpo_hand_value_and_gradient():
    # gvpo_beta = .5: rho mean .05 -> c = [.25, -.15, .15, -.25] ; r = [1, -1, 0, 0]
    # .5c - r = [-.875, .925, .075, -.125] -> squares .765625 + .855625 + .005625 + .015625 = 1.6425
    # L = 1.6425 / (2 · 3) = .27375 ; dL/drho_j = .5 (.5 c_j - r_j)/3 (both centred, the mean's terms cancel)
    loss, grad, _ = run("gvpo", gvpo_beta=0.5)
    assert loss == pytest.approx(0.27375, abs=1e-12)
    residual = torch.tensor([-0.875, 0.925, 0.075, -0.125], dtype=torch.float64) * 0.5 / 3
    torch.testing.assert_close(grad[:, 0], residual)
    assert run("gvpo", adv=REWARDS, gvpo_beta=0.5)[0] == pytest.approx(0.27375, abs=1e-12)


def _two_groups():
    # group 0 as above; group 1 all tied (A = 0): no preference, adds 0 but counts in 1/N
    old = torch.cat([OLD, OLD])
    logps = torch.cat([OLD + DIFF, OLD + DIFF]).requires_grad_(True)
    adv = torch.cat([ADV, torch.zeros(4, dtype=torch.float64)])
    return logps, old, adv, torch.cat([MASK, MASK])


def test_online_dpo_best_vs_worst_against_the_rollout_policy():
    # beta = 0: h = rho ; best = row 0 (A=1), worst = row 1 (A=-1): margin .3 - (-.1) = .4
    # group 0: -log sigmoid(.5 · .4) = log(1 + e^-.2) = .5981389 ; L = .5981389 / 2 (N = 2)
    # dL/dh_0 = -.5 · sigmoid(-.2) / 2 = -.5 · .4501660 / 2 = -.1125415 on each token of row 0
    logps, old, adv, mask = _two_groups()
    loss, metrics = policy_loss("online_dpo", logps, old, adv, mask, 4, dpo_beta=0.5)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-0.2)) / 2, abs=1e-12)
    torch.testing.assert_close(
        logps.grad[0], torch.full((2,), -0.1125415, dtype=torch.float64), atol=1e-7, rtol=0
    )
    assert logps.grad[2:].abs().sum().item() == 0.0  # neither best nor worst, and the tied group
    assert metrics["loss/dpo_pref_frac"].item() == 0.5
    assert metrics["loss/dpo_margin"].item() == pytest.approx(0.4)


def test_online_dpo_uses_the_reference_when_beta_is_positive():
    # ref = old - .5 on row 0's two tokens: h_0 = .3 + 1.0 = 1.3, h_1 = -.1 -> margin 1.4
    # policy term: log(1 + e^-.7) / 2 = .4031862 / 2 ; with beta = 0 the reference is ignored
    logps, old, adv, mask = _two_groups()
    ref = old.clone()
    ref[0] -= 0.5
    _, metrics = policy_loss("online_dpo", logps, old, adv, mask, 4, ref_logps=ref, beta=0.1, dpo_beta=0.5)
    assert metrics["loss/policy"].item() == pytest.approx(math.log(1 + math.exp(-0.7)) / 2, abs=1e-12)
    assert metrics["loss/kl"].item() > 0
    no_ref, _ = policy_loss("online_dpo", logps, old, adv, mask, 4, ref_logps=ref, beta=0.0, dpo_beta=0.5)
    assert no_ref.item() == pytest.approx(math.log(1 + math.exp(-0.2)) / 2, abs=1e-12)


def test_on_policy_gradients_are_scaled_policy_gradients():
    # num_iterations = 1 (old = logps): each loss's gradient is c × reinforce's (docs/method.md)
    gen = torch.Generator().manual_seed(0)
    logps0 = -torch.rand(8, 5, generator=gen, dtype=torch.float64)
    mask = (torch.arange(5)[None, :] < torch.tensor([5, 3, 4, 5, 2, 5, 1, 4])[:, None]).long()
    rewards = torch.rand(8, generator=gen, dtype=torch.float64)
    centred = group_advantages(rewards, 4, scale="none")

    def grad(name, adv, **options):
        logps = logps0.clone().requires_grad_(True)
        policy_loss(name, logps, logps.detach(), adv, mask, 4, **options)[0].backward()
        return logps.grad

    reinforce = grad("reinforce", centred)
    torch.testing.assert_close(grad("rloo", centred), reinforce * 4 / 3)  # G/(G-1)
    torch.testing.assert_close(grad("gvpo", centred, gvpo_beta=0.3), reinforce * 0.3 * 4 / 3)
    torch.testing.assert_close(grad("dr_grpo", centred), reinforce / 5)  # ÷ max_len T = 5
    # reward regression: -2 R_b/(eta B) per token, i.e. 2/eta × REINFORCE without a baseline
    no_baseline = -(rewards / 8)[:, None].expand(8, 5) * mask
    torch.testing.assert_close(grad("reward_regression", rewards, eta=0.5), no_baseline * 4)


SEQUENCE_LOSSES = sorted(n for n, fn in POLICY_LOSSES.items() if fn.__module__.endswith(".sequence_losses"))


@pytest.mark.parametrize("name", SEQUENCE_LOSSES)
def test_split_into_whole_groups_weighted_by_group_share_gives_the_same_loss_and_gradient(name):
    # the trainer backpropagates loss(micro-batch) × groups_in_micro / groups: every loss here is a
    # mean over per-group terms, so 1 batch of 3 groups == (1 group) · 1/3 + (2 groups) · 2/3
    gen = torch.Generator().manual_seed(1)
    old = -torch.rand(12, 5, generator=gen, dtype=torch.float64)
    logps0 = old + 0.2 * torch.randn(12, 5, generator=gen, dtype=torch.float64)
    ref = old + 0.2 * torch.randn(12, 5, generator=gen, dtype=torch.float64)
    mask = (torch.arange(5)[None, :] < torch.randint(1, 6, (12,), generator=gen)[:, None]).long()
    adv = torch.rand(12, generator=gen, dtype=torch.float64)
    results = []
    for splits in ([slice(0, 12)], [slice(0, 4), slice(4, 12)]):
        logps = logps0.clone().requires_grad_(True)
        total = 0.0
        for rows in splits:
            loss, _ = policy_loss(
                name, logps[rows], old[rows], adv[rows], mask[rows], 4, ref_logps=ref[rows], beta=0.1
            )
            total = total + loss * (rows.stop - rows.start) / 12
        total.backward()
        results.append((total.detach(), logps.grad))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
