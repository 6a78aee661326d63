"""Reg-GRPO: regress the group-normalised advantage onto the normalised log-ratio.

DeepVideo-R1 (Park et al., arXiv 2506.07464). No clip, no min; registered as "reg_grpo".
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from deepvideo_r1.algos.losses import (
    LossOutput,
    add_kl,
    check_inputs,
    kl_term,
    register_policy_loss,
    sequence_log_ratio,
    upcast,
)

RatioNormalization = Literal["std", "none"]


def safe_group_std(values: Tensor) -> Tensor:
    """Unbiased std over the last dim, [N, G] -> [N, 1], exact value with a finite gradient at 0.

    ``sqrt(var)`` backpropagates 0/0 = NaN when all values are equal (so does ``torch.std`` in
    older torch releases). The double ``where`` keeps the exact value (0 there) while the sqrt
    only ever sees positive inputs, so the gradient of the std at zero spread is 0, not NaN.
    """
    centred = values - values.mean(dim=-1, keepdim=True)
    var = centred.pow(2).sum(dim=-1, keepdim=True) / (values.shape[-1] - 1)
    positive = var > 0
    safe_var = torch.where(positive, var, torch.ones_like(var))
    return torch.where(positive, safe_var.sqrt(), torch.zeros_like(var))


def _pearson(x: Tensor, y: Tensor) -> Tensor:
    """Pearson correlation of two [B] vectors; 0 when either has zero spread (never NaN)."""
    xc, yc = x - x.mean(), y - y.mean()
    denom = xc.pow(2).sum().sqrt() * yc.pow(2).sum().sqrt()
    safe = torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where(denom > 0, (xc * yc).sum() / safe, torch.zeros_like(denom))


@register_policy_loss("reg_grpo")
def reg_grpo_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    *,
    epsilon: float = 1.0,
    std_eps: float = 1e-4,
    ratio_normalization: RatioNormalization = "std",
    length_normalize: bool = False,
    ref_logps: Tensor | None = None,
    beta: float = 0.0,
) -> LossOutput:
    """Reg-GRPO loss.

        rho_{n,i} = sum_t m_t (logp_t - old_logp_t)          (÷ sum_t m_t if length_normalize)
        z_{n,i}   = (rho_{n,i} - mean_i rho) / (std_i rho + std_eps)   (std unbiased)
                    ratio_normalization="none": z = rho - mean_i rho
        L         = mean_n (1/G) sum_i (A_{n,i} - epsilon · z_{n,i})^2  + beta · KL (grpo aggregation)

    Shapes: logps, old_logps, ref_logps, mask [B, T]; advantages [B]; B = N × G group by group.
    At the on-policy step (rho ≡ 0) the gradient is the formula's limit,
    dL/drho_{n,j} = -2 · epsilon · (A_{n,j} - mean_i A_{n,i}) / (G · std_eps) / N, never NaN or 0.
    """
    if ratio_normalization not in ("std", "none"):
        raise ValueError(f"ratio_normalization must be 'std' or 'none', got {ratio_normalization!r}")
    check_inputs(logps, old_logps, advantages, mask, group_size)
    n_groups = logps.shape[0] // group_size
    rho = sequence_log_ratio(logps, old_logps, mask)  # [B]; no exp, so no clamp
    if length_normalize:
        rho = rho / mask.bool().sum(dim=1).clamp(min=1)
    rho_g = rho.reshape(n_groups, group_size)  # [N, G]
    z = rho_g - rho_g.mean(dim=1, keepdim=True)
    std = safe_group_std(rho_g)  # [N, 1]
    if ratio_normalization == "std":
        z = z / (std + std_eps)
    adv_g = upcast(advantages.detach()).reshape(n_groups, group_size).to(z.dtype)
    loss = (adv_g - epsilon * z).pow(2).mean(dim=1).mean()
    metrics = {
        "loss/reg_mean_abs_z": z.abs().mean().detach(),
        "loss/reg_adv_ratio_corr": _pearson(adv_g.reshape(-1), rho.detach()),
        "loss/reg_zero_spread_frac": (std == 0).float().mean().detach(),
    }
    kl = kl_term(logps, ref_logps, mask, beta, "seq_mean_token_mean")
    return add_kl(loss, metrics, kl, beta), metrics
