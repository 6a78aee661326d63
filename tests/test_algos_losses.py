"""Baseline policy losses, the registry, and properties looped over every loss."""

import inspect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepvideo_r1.algos import (
    LOSS_NORMALIZER,
    POLICY_LOSSES,
    aggregate,
    micro_batch_weight,
    normalizer_units,
    policy_loss,
    register_policy_loss,
)

LN = math.log
# B=2 (one group of G=2), T=3. Row 0: ratios [1, 1.5, .5], A=+1, all tokens valid.
# Row 1: ratios [.5, 1.5, pad], A=-1; the pad token holds garbage that must not matter.
OLD = torch.tensor([[-1.0, -1.0, -1.0], [-2.0, -2.0, -2.0]])
LOGPS = OLD + torch.tensor([[0.0, LN(1.5), LN(0.5)], [LN(0.5), LN(1.5), 7.0]])
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])
ADV = torch.tensor([1.0, -1.0])


def test_grpo_hand_value():
    # row 0 (A=+1): -min(r, clip(r,.8,1.2)) = -[1, 1.2, .5] -> seq mean -2.7/3 = -.9
    # row 1 (A=-1): -min(-r, -clip(r)) = [max(.5,.8), max(1.5,1.2)] = [.8, 1.5] -> mean 1.15
    # loss = (-.9 + 1.15) / 2 = .125 ; clipped tokens: (0,1) and (1,0) -> 2/5
    loss, metrics = policy_loss("grpo", LOGPS, OLD, ADV, MASK, group_size=2)
    assert loss.item() == pytest.approx(0.125, abs=1e-6)
    assert metrics["loss/clip_frac"].item() == pytest.approx(0.4)
    assert metrics["loss/kl"].item() == 0.0


def test_dapo_hand_value():
    # clip (.8, 1.28): row 0 -> -[1, 1.28, .5]; row 1 -> [.8, 1.5]
    # token mean = (-2.78 + 2.3) / 5 = -.096
    loss, metrics = policy_loss("dapo", LOGPS, OLD, ADV, MASK, group_size=2)
    assert loss.item() == pytest.approx(-0.096, abs=1e-6)
    assert metrics["loss/clip_frac"].item() == pytest.approx(0.4)


def test_dr_grpo_hand_value():
    # grpo token terms summed: -2.7 + 2.3 = -.4 ; / (B*T = 6) ; / (B*4 = 8) with max length 4
    loss, _ = policy_loss("dr_grpo", LOGPS, OLD, ADV, MASK, group_size=2)
    assert loss.item() == pytest.approx(-0.4 / 6, abs=1e-6)
    loss, _ = policy_loss("dr_grpo", LOGPS, OLD, ADV, MASK, group_size=2, max_completion_length=4)
    assert loss.item() == pytest.approx(-0.05, abs=1e-6)


def test_gspo_hand_value():
    # s0 = exp((0 + ln1.5 + ln.5)/3) = .75**(1/3) = .908560 ; A=+1 -> -min(.90856, .9997) = -.908560
    # s1 = exp((ln.5 + ln1.5)/2) = .75**.5 = .866025 ; A=-1 -> max(.866025, .9997) = .9997 (clipped)
    # loss = (-.908560 + .9997) / 2 = .0455699 ; clip_frac = 1/2
    loss, metrics = policy_loss("gspo", LOGPS, OLD, ADV, MASK, group_size=2)
    assert loss.item() == pytest.approx(0.0455699, abs=1e-6)
    assert metrics["loss/clip_frac"].item() == pytest.approx(0.5)


def test_gspo_clamps_the_sequence_value_not_its_tokens():
    # B=8 (2 groups of 4), T=6. Row 0: one token at log-ratio +25, the rest 0, A=-1; row 1: A=+1.
    # s_0 = exp(25/6) = 64.4966 (in range: only the mean is clamped, at ±20); A<0 -> -min(-s, -1.0004)
    # = s = 64.4966; row 1: s=1 inside the clip -> -1; loss = (64.4966 - 1) / 8 = 7.93708
    # d/dlogp_{0,t} = s_0 / 6 / 8 = 1.34368 on every token of row 0 (clamping the token at 20 gave
    # loss 3.379 and no gradient on that token); row 1: -1/6/8 = -0.0208333
    old = torch.zeros(8, 6, dtype=torch.float64)
    logps = old.clone()
    logps[0, 2] = 25.0
    logps.requires_grad_(True)
    adv = torch.tensor([-1.0, 1.0, 0, 0, 0, 0, 0, 0], dtype=torch.float64)
    loss, metrics = policy_loss("gspo", logps, old, adv, torch.ones(8, 6), group_size=4)
    loss.backward()
    assert loss.item() == pytest.approx((math.exp(25 / 6) - 1) / 8, rel=1e-9)
    assert loss.item() == pytest.approx(7.9375, abs=1e-3)
    torch.testing.assert_close(logps.grad[0], torch.full((6,), math.exp(25 / 6) / 48, dtype=torch.float64))
    assert logps.grad[0, 0].item() == pytest.approx(1.344, abs=1e-3)
    torch.testing.assert_close(logps.grad[1], torch.full((6,), -1 / 48, dtype=torch.float64))
    assert metrics["loss/clip_frac"].item() == 0.0  # row 0: max(s, 1.0004) takes the unclipped s


def test_gspo_fully_masked_row_adds_nothing():
    # row 0 as in test_gspo_hand_value: -.908560 ; row 1 has no valid token: it adds 0 (before the fix
    # it added -min(1·A, clip(1)·A) = -A = +1) and counts in the mean over B = 2, as grpo's aggregation
    mask = torch.tensor([[1, 1, 1], [0, 0, 0]])
    loss, metrics = policy_loss("gspo", LOGPS, OLD, ADV, mask, group_size=2)
    assert loss.item() == pytest.approx(-0.908560 / 2, abs=1e-6)
    assert metrics["loss/ratio_mean"].item() == pytest.approx(0.908560, abs=1e-6)  # over valid rows


def test_grpo_k3_kl_hand_value():
    # ref - logp: row 0 [0, ln2, -ln2] -> k3 [0, 2-ln2-1, .5+ln2-1] = [0, .306853, .193147], mean 1/6
    #             row 1 [ln2, 0, pad]   -> [.306853, 0], mean .153426
    # KL = (.166667 + .153426)/2 = .160047 ; loss = .125 + .1 * .160047
    ref = LOGPS + torch.tensor([[0.0, LN(2), -LN(2)], [LN(2), 0.0, 123.0]])
    loss, metrics = policy_loss("grpo", LOGPS, OLD, ADV, MASK, 2, ref_logps=ref, beta=0.1)
    assert metrics["loss/kl"].item() == pytest.approx(0.160047, abs=1e-6)
    assert loss.item() == pytest.approx(0.125 + 0.1 * 0.160047, abs=1e-6)
    assert metrics["loss/policy"].item() == pytest.approx(0.125, abs=1e-6)


def test_aggregate_modes_hand_values():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # per-sequence means [2, 4] -> 3 ; token mean 10/4 = 2.5 ; sum / (B*T) = 10/6 ; / (B*5) = 1
    assert aggregate(values, mask, "seq_mean_token_mean").item() == pytest.approx(3.0)
    assert aggregate(values, mask, "token_mean").item() == pytest.approx(2.5)
    assert aggregate(values, mask, "seq_mean_token_sum_norm").item() == pytest.approx(10 / 6)
    assert aggregate(values, mask, "seq_mean_token_sum_norm", max_len=5).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="token_mean"):
        aggregate(values, mask, "sum")


def test_registry_errors_and_extension():
    with pytest.raises(ValueError, match="known: " + ", ".join(sorted(POLICY_LOSSES))):
        policy_loss("ppo", LOGPS, OLD, ADV, MASK, 2)
    with pytest.raises(ValueError, match="already registered"):
        register_policy_loss("grpo")(lambda *a, **k: None)

    @register_policy_loss("_test_zero")
    def zero_loss(logps, old_logps, advantages, mask, group_size, *, ref_logps=None, beta=0.0):
        return (logps * 0).sum(), {}

    try:
        assert policy_loss("_test_zero", LOGPS, OLD, ADV, MASK, 2)[0].item() == 0.0
    finally:
        del POLICY_LOSSES["_test_zero"]


def test_input_validation():
    with pytest.raises(ValueError, match="needs ref_logps"):
        policy_loss("grpo", LOGPS, OLD, ADV, MASK, 2, beta=0.1)
    with pytest.raises(ValueError, match="mask shape"):
        policy_loss("dapo", LOGPS, OLD, ADV, MASK[:, :2], 2)
    with pytest.raises(ValueError, match="advantages must be"):
        policy_loss("gspo", LOGPS, OLD, ADV[:1], MASK, 2)
    with pytest.raises(ValueError, match="multiple of group_size"):
        policy_loss("grpo", LOGPS, OLD, ADV, MASK, 3)


# ---- properties looped over the registry: a new loss is tested by being registered ----
ALL = sorted(POLICY_LOSSES)


def _batch(seed, n_groups=2, group_size=3, length=5, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    batch = n_groups * group_size
    old = -torch.rand(batch, length, generator=gen, dtype=dtype) * 3
    logps = old + 0.3 * torch.randn(batch, length, generator=gen, dtype=dtype)
    ref = old + 0.3 * torch.randn(batch, length, generator=gen, dtype=dtype)
    lengths = torch.randint(1, length + 1, (batch,), generator=gen)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    adv = torch.randn(batch, generator=gen, dtype=dtype)
    return logps, old, ref, mask, adv


@pytest.mark.parametrize("name", ALL)
def test_metrics_are_detached_prefixed_tensors(name):
    logps, old, ref, mask, adv = _batch(0)
    logps.requires_grad_(True)
    loss, metrics = policy_loss(name, logps, old, adv, mask, 3, ref_logps=ref, beta=0.05)
    assert loss.dim() == 0 and loss.requires_grad
    assert {"loss/policy", "loss/kl"} <= set(metrics)
    for key, value in metrics.items():
        assert key.startswith("loss/") and isinstance(value, torch.Tensor)
        assert not value.requires_grad and torch.isfinite(value)


@pytest.mark.parametrize("name", ALL)
def test_padding_does_not_change_loss_or_grads(name):
    logps, old, ref, mask, adv = _batch(1)
    pad = mask == 0
    assert pad.any()
    garbage = torch.where(pad, torch.full_like(logps, -1e30), logps)
    results = []
    for lp, od, rf in (
        (logps, old, ref),
        (garbage, torch.where(pad, 55.0, old), torch.where(pad, -9e9, ref)),
    ):
        lp = lp.clone().requires_grad_(True)
        loss, _ = policy_loss(name, lp, od, adv, mask, 3, ref_logps=rf, beta=0.1)
        loss.backward()
        results.append((loss.detach(), lp.grad))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    assert torch.equal(results[1][1][pad], torch.zeros_like(results[1][1][pad]))


def _split_loss(name, logps, old, ref, mask, adv, n_micro, weight=None):
    """Loss and d loss / d logps of 4 groups of G=2 split into n_micro micro-batches of whole groups,
    each cut to its own longest row (as the trainer does), combined with `micro_batch_weight`.

    max_completion_length (dr_grpo) is passed as the trainer passes it: the rollout cap, here T.
    """
    logps = logps.clone().requires_grad_(True)
    length = logps.shape[1]
    takes = inspect.signature(POLICY_LOSSES[name]).parameters
    options = {"max_completion_length": length} if "max_completion_length" in takes else {}
    rows = torch.arange(logps.shape[0]).chunk(n_micro)
    total_units = normalizer_units(name, mask)
    total = torch.zeros((), dtype=logps.dtype)
    for r in rows:
        width = int(mask[r].sum(dim=1).max())
        cut = (logps[r, :width], old[r, :width], adv[r], mask[r, :width])
        loss, _ = policy_loss(name, *cut, 2, ref_logps=ref[r, :width], beta=0.1, **options)
        w = micro_batch_weight(normalizer_units(name, mask[r]), total_units) if weight is None else weight(r)
        total = total + loss * w
    total.backward()
    return total.detach(), logps.grad


@pytest.mark.parametrize("name", ALL)
def test_micro_batch_split_gives_the_whole_batch_loss_and_gradient(name):
    """Every registered loss is a mean over sequences (or groups) or over tokens, so with its
    declared normaliser the split into 1, 2 or 4 micro-batches is exact, KL term included."""
    logps, old, ref, mask, adv = _batch(7, n_groups=4, group_size=2, length=6)
    mask[0, 1:] = 0  # one 1-token row, one full row: micro-batches hold different token counts
    mask[7] = 1
    whole, whole_grad = _split_loss(name, logps, old, ref, mask, adv, 1)
    for n_micro in (2, 4):
        loss, grad = _split_loss(name, logps, old, ref, mask, adv, n_micro)
        torch.testing.assert_close(loss, whole)
        torch.testing.assert_close(grad, whole_grad)


def test_token_mean_loss_is_not_the_mean_of_micro_batch_means():
    """dapo declares "tokens": weighting micro-batches by their share of groups instead (a mean of
    per-micro-batch token means) gives another loss when token counts differ."""
    assert LOSS_NORMALIZER["dapo"] == "tokens" and LOSS_NORMALIZER["grpo"] == "sequences"
    logps, old, ref, mask, adv = _batch(7, n_groups=4, group_size=2, length=6)
    mask[0, 1:] = 0
    mask[7] = 1
    whole, _ = _split_loss("dapo", logps, old, ref, mask, adv, 1)
    by_groups, _ = _split_loss("dapo", logps, old, ref, mask, adv, 4, weight=lambda r: 0.25)
    assert abs(float(by_groups - whole)) > 1e-3


def test_micro_batch_weight_hand_values():
    # tokens: micro-batches of 3 and 9 of 12 tokens -> 1/4 and 3/4; under DDP with 2 ranks and
    # 24 tokens in all, a rank's 6-token micro-batch gets 6 · 2 / 24 = 1/2 (gradients are averaged)
    assert micro_batch_weight(3, 12) == 0.25 and micro_batch_weight(9, 12) == 0.75
    assert micro_batch_weight(6, 24, world_size=2) == 0.5
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert normalizer_units("dapo", mask) == 3 and normalizer_units("grpo", mask) == 2


@pytest.mark.parametrize("name", ALL)
def test_zero_advantage_on_policy_gives_zero_policy_gradient(name):
    logps, _, _, mask, _ = _batch(2)
    logps.requires_grad_(True)
    loss, _ = policy_loss(name, logps, logps.detach(), torch.zeros(6, dtype=logps.dtype), mask, 3)
    loss.backward()
    assert torch.equal(logps.grad, torch.zeros_like(logps.grad))


@pytest.mark.parametrize("name", ALL)
def test_gradient_sign_raises_positive_advantage(name):
    # on-policy, one group: the A>0 completion's log-probs must go up under gradient descent
    logps = torch.full((2, 3), -1.0, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 3)
    loss, _ = policy_loss(name, logps, logps.detach(), torch.tensor([1.0, -1.0]), mask, 2)
    loss.backward()
    assert (logps.grad[0] < 0).all() and (logps.grad[1] > 0).all()


finite = st.floats(-1e4, 1e4, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(ALL),
    values=st.lists(finite, min_size=4 * 3 * 4, max_size=4 * 3 * 4),
    lengths=st.lists(st.integers(0, 3), min_size=4, max_size=4),
)
def test_losses_finite_for_any_finite_input(name, values, lengths):
    v = torch.tensor(values, dtype=torch.float32).reshape(4, 3, 4)  # B=4 (2 groups of 2), T=3
    mask = (torch.arange(3)[None, :] < torch.tensor(lengths)[:, None]).long()
    logps = v[..., 0].clone().requires_grad_(True)
    loss, metrics = policy_loss(name, logps, v[..., 1], v[:, 0, 3], mask, 2, ref_logps=v[..., 2], beta=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logps.grad).all()
    assert all(torch.isfinite(m) for m in metrics.values())
