"""How far the policy has moved from the rollout policy inside one step (num_iterations > 1).

Loss-independent readouts of the off-policy iterations, the one regime where GRPO's clip and
Reg-GRPO's regression target act (at the first iteration every log-ratio is 0):

    kl_to_rollout       token mean of k3: exp(r) - r - 1 with r = old_logp - logp (KL(old || new))
    outside_clip_frac   share of completion tokens whose ratio exp(logp - old_logp) is outside
                        [1 - epsilon, 1 + epsilon] (where GRPO's clipped branch can act)
    adv_logratio_corr   Pearson correlation over rows of the advantage with the sequence
                        log-ratio sum_t (logp - old_logp) (what Reg-GRPO regresses; 0 when either
                        has no spread)

Shapes: logps, old_logps, mask [B, T]; advantages [B].
"""

from __future__ import annotations

import torch
from torch import Tensor


def _pearson(x: Tensor, y: Tensor) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    denom = float(xc.pow(2).sum().sqrt() * yc.pow(2).sum().sqrt())
    return float((xc * yc).sum()) / denom if denom > 0 else 0.0


@torch.no_grad()
def drift_metrics(
    logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, epsilon: float = 0.2
) -> dict[str, float]:
    """`drift/kl_to_rollout`, `drift/outside_clip_frac`, `drift/adv_logratio_corr` (module docstring)."""
    m = mask.to(torch.float64)
    tokens = m.sum().clamp_min(1.0)
    log_ratio = (logps.double() - old_logps.double()) * m  # [B, T], 0 on padding
    kl = (torch.exp(-log_ratio) + log_ratio - 1.0) * m
    ratio = torch.exp(log_ratio)
    outside = ((ratio < 1.0 - epsilon) | (ratio > 1.0 + epsilon)).to(torch.float64) * m
    return {
        "drift/kl_to_rollout": float(kl.sum() / tokens),
        "drift/outside_clip_frac": float(outside.sum() / tokens),
        "drift/adv_logratio_corr": _pearson(advantages.double().reshape(-1), log_ratio.sum(dim=1)),
    }
