"""Sequence-level losses Reg-GRPO is compared with: REINFORCE, RLOO, REBEL, reward regression,
online DPO, and GVPO (Reg-GRPO's closest published relative).

Same registry and signature as `losses.py`. With rho_b = sum_t m (logp - old) [B] the sequence
log-ratio to the rollout policy, every loss here is a function of rho and the per-completion
advantage (or reward) only; B = N × G rows group by group. At the on-policy step
(num_iterations = 1) rho ≡ 0 and each reduces to a policy gradient (docs/method.md).
A row without valid tokens has rho = 0; the per-row losses (reinforce, rloo, reward_regression)
leave its term out, the group-coupled ones count it with rho = 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from deepvideo_r1.algos.losses import (
    LossOutput,
    add_kl,
    check_inputs,
    clamp_log_ratio,
    kl_term,
    nonempty_rows,
    register_policy_loss,
    sequence_log_ratio,
    upcast,
)


def _grouped(x: Tensor, group_size: int) -> Tensor:
    """[B] -> [N, G]."""
    return x.reshape(-1, group_size)


def _finish(
    loss: Tensor,
    metrics: dict[str, Tensor],
    logps: Tensor,
    ref_logps: Tensor | None,
    mask: Tensor,
    beta: float,
) -> LossOutput:
    """Add beta · KL (grpo aggregation, as for gspo and reg_grpo) and the common metrics."""
    kl = kl_term(logps, ref_logps, mask, beta, "seq_mean_token_mean")
    return add_kl(loss, metrics, kl, beta), metrics


def _weighted_sequence_pg(
    logps: Tensor, old_logps: Tensor, weights: Tensor, mask: Tensor, ref_logps: Tensor | None, beta: float
) -> LossOutput:
    """L = -(1/B) sum_{b non-empty} exp(clamp(rho_b, ±20)) w_b: importance-weighted sequence PG."""
    ratio = torch.exp(clamp_log_ratio(sequence_log_ratio(logps, old_logps, mask)))  # [B]
    rows = nonempty_rows(mask)
    per_row = torch.where(rows, -ratio * weights, torch.zeros_like(ratio))
    metrics = {"loss/ratio_mean": (ratio * rows).sum().detach() / rows.sum().clamp(min=1)}
    return _finish(per_row.mean(), metrics, logps, ref_logps, mask, beta)


@register_policy_loss("reinforce", advantage_scale="none")
def reinforce_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    *,
    ref_logps: Tensor | None = None,
    beta: float = 0.0,
) -> LossOutput:
    """REINFORCE with the group-mean baseline (Williams 1992), sequence level, no clip.

        A'_{n,i} = A_{n,i} - mean_j A_{n,j}        (A = R - mean R under scale "none": A' = A)
        L        = -(1/B) sum_b exp(clamp(rho_b, ±20)) A'_b  + beta · KL
    On-policy dL/dlogp_{b,t} = -A'_b / B: the REINFORCE estimator; later iterations weight it by
    the sequence importance ratio exp(rho_b).
    """
    check_inputs(logps, old_logps, advantages, mask, group_size)
    adv = _grouped(upcast(advantages.detach()), group_size)  # [N, G]
    weights = (adv - adv.mean(dim=1, keepdim=True)).reshape(-1)
    return _weighted_sequence_pg(logps, old_logps, weights, mask, ref_logps, beta)


@register_policy_loss("rloo", advantage_scale="none")
def rloo_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    *,
    ref_logps: Tensor | None = None,
    beta: float = 0.0,
) -> LossOutput:
    """RLOO (Kool et al. 2019; Ahmadian et al. 2024): REINFORCE with the leave-one-out baseline.

        A'_{n,i} = A_{n,i} - (1/(G-1)) sum_{j != i} A_{n,j}  = G/(G-1) · (A_{n,i} - mean_j A_{n,j})
        L        = -(1/B) sum_b exp(clamp(rho_b, ±20)) A'_b  + beta · KL
    A shift of all rewards of a group cancels, so the baseline is the same under scale none or raw.
    """
    check_inputs(logps, old_logps, advantages, mask, group_size)
    adv = _grouped(upcast(advantages.detach()), group_size)  # [N, G]
    weights = (adv - (adv.sum(dim=1, keepdim=True) - adv) / (group_size - 1)).reshape(-1)
    return _weighted_sequence_pg(logps, old_logps, weights, mask, ref_logps, beta)


@register_policy_loss("rebel", advantage_scale="none")
def rebel_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    *,
    ref_logps: Tensor | None = None,
    beta: float = 0.0,
    eta: float = 1.0,
) -> LossOutput:
    """REBEL (Gao et al. 2024) on consecutive pairs (0, 1), (2, 3), ... of each group.

        L = mean_{pairs (i, j)} ( (rho_i - rho_j) / eta - (A_i - A_j) )^2  + beta · KL
    A_i - A_j = R_i - R_j under scale none or raw. With an odd G the last completion of each group
    is left unpaired. (All pairs would give G · sum_i (d_i - mean d)^2 with d = rho/eta - A: a
    centred regression like gvpo; disjoint pairs keep REBEL's two-sample form.)
    """
    check_inputs(logps, old_logps, advantages, mask, group_size)
    paired = group_size // 2 * 2
    rho = _grouped(sequence_log_ratio(logps, old_logps, mask), group_size)[:, :paired]
    adv = _grouped(upcast(advantages.detach()), group_size)[:, :paired].to(rho.dtype)
    rho_pairs, adv_pairs = rho.reshape(-1, 2), adv.reshape(-1, 2)  # [N · G/2, 2]
    residual = (rho_pairs[:, 0] - rho_pairs[:, 1]) / eta - (adv_pairs[:, 0] - adv_pairs[:, 1])
    metrics = {"loss/rho_abs_mean": rho.abs().mean().detach()}
    return _finish(residual.pow(2).mean(), metrics, logps, ref_logps, mask, beta)


@register_policy_loss("reward_regression", advantage_scale="raw")
def reward_regression_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    *,
    ref_logps: Tensor | None = None,
    beta: float = 0.0,
    eta: float = 1.0,
) -> LossOutput:
    """Reward regression: the raw reward (scale "raw", no group baseline) onto the log-ratio.

        L = (1/B) sum_{b non-empty} (rho_b / eta - R_b)^2  + beta · KL
    REBEL with the partner's terms removed; on-policy dL/drho_b = -2 R_b / (eta B), a REINFORCE
    without baseline.
    """
    check_inputs(logps, old_logps, advantages, mask, group_size)
    rho = sequence_log_ratio(logps, old_logps, mask)  # [B]
    residual = rho / eta - upcast(advantages.detach()).to(rho.dtype)
    per_row = torch.where(nonempty_rows(mask), residual.pow(2), torch.zeros_like(residual))
    metrics = {"loss/rho_abs_mean": rho.abs().mean().detach()}
    return _finish(per_row.mean(), metrics, logps, ref_logps, mask, beta)


@register_policy_loss("gvpo", advantage_scale="none")
def gvpo_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    *,
    ref_logps: Tensor | None = None,
    beta: float = 0.0,
    gvpo_beta: float = 0.1,
) -> LossOutput:
    """GVPO (Zhang et al. 2025): group-centred log-ratio regressed onto the group-centred reward.

        c_{n,i} = rho_{n,i} - mean_j rho_{n,j},   r_{n,i} = A_{n,i} - mean_j A_{n,j}   (no std)
        L       = mean_n 1/(2(G-1)) sum_i (gvpo_beta · c_{n,i} - r_{n,i})^2  + beta · KL
    Reg-GRPO with ratio_normalization="none" and scale "none" is the same regression up to the
    constant G / (2(G-1)).
    """
    check_inputs(logps, old_logps, advantages, mask, group_size)
    rho = _grouped(sequence_log_ratio(logps, old_logps, mask), group_size)  # [N, G]
    adv = _grouped(upcast(advantages.detach()), group_size).to(rho.dtype)
    centred_rho = rho - rho.mean(dim=1, keepdim=True)
    centred_adv = adv - adv.mean(dim=1, keepdim=True)
    per_group = (gvpo_beta * centred_rho - centred_adv).pow(2).sum(dim=1) / (2 * (group_size - 1))
    metrics = {"loss/rho_abs_mean": rho.abs().mean().detach()}
    return _finish(per_group.mean(), metrics, logps, ref_logps, mask, beta)


@register_policy_loss("online_dpo", advantage_scale="none")
def online_dpo_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    *,
    ref_logps: Tensor | None = None,
    beta: float = 0.0,
    dpo_beta: float = 0.1,
) -> LossOutput:
    """Online DPO (Rafailov et al. 2023; Guo et al. 2024): best vs worst completion of each group.

        h_b = sum_t m (logp - base),  base = ref_logps if beta > 0 else old_logps (the rollout policy)
        w_n = argmax_i A_{n,i},  l_n = argmin_i A_{n,i}            (first index on ties)
        L   = (1/N) sum_{n: max A > min A} -log sigmoid(dpo_beta · (h_{w_n} - h_{l_n}))  + beta · KL
    A group whose advantages are all equal has no preference and adds 0 (it still counts in 1/N,
    so the value does not depend on how the batch is split into micro-batches).
    """
    check_inputs(logps, old_logps, advantages, mask, group_size)
    base = ref_logps if beta > 0 and ref_logps is not None else old_logps
    h = _grouped(sequence_log_ratio(logps, base, mask), group_size)  # [N, G]
    adv = _grouped(advantages.detach(), group_size)
    best, worst = adv.argmax(dim=1, keepdim=True), adv.argmin(dim=1, keepdim=True)  # [N, 1]
    margin = (h.gather(1, best) - h.gather(1, worst)).squeeze(1)  # [N]
    preferred = adv.amax(dim=1) > adv.amin(dim=1)
    per_group = torch.where(preferred, -F.logsigmoid(dpo_beta * margin), torch.zeros_like(margin))
    n_pref = preferred.sum().clamp(min=1)
    metrics = {
        "loss/dpo_margin": (margin * preferred).sum().detach() / n_pref,
        "loss/dpo_pref_frac": preferred.float().mean().detach(),
    }
    return _finish(per_group.mean(), metrics, logps, ref_logps, mask, beta)
