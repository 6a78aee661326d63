"""Rollout-engine mismatch: how far the sampler's log-probs are from the trainer's, and truncated
importance sampling (TIS) to correct for it.

A separate inference engine (vLLM) samples with its own kernels, so the log-prob it assigned to a
sampled token differs slightly from the trainer's for the same weights. TIS (as TRL and verl ship
it) weights each completion token's contribution by w = min(π_trainer / π_sampler, cap) of that
token, the probabilities being those at rollout time (no gradient through w).
"""

from __future__ import annotations

import torch
from torch import Tensor


def logprob_gap(trainer_logps: Tensor, sampler_logps: Tensor, mask: Tensor) -> tuple[float, float]:
    """(mean, max) of |trainer - sampler| log-prob over the completion tokens of `mask` [B, T]."""
    keep = mask.bool()
    if not bool(keep.any()):
        return 0.0, 0.0
    gap = (trainer_logps.detach().float() - sampler_logps.to(trainer_logps.device).float()).abs()[keep]
    return float(gap.mean()), float(gap.max())


def truncated_is_weights(trainer_logps: Tensor, sampler_logps: Tensor, cap: float) -> Tensor:
    """[B, T] min(exp(trainer - sampler), cap), detached."""
    ratio = torch.exp(trainer_logps.detach().float() - sampler_logps.to(trainer_logps.device).float())
    return ratio.clamp(max=cap).to(trainer_logps.dtype)


def scale_token_gradients(logps: Tensor, weights: Tensor) -> Tensor:
    """Same values as `logps`; the gradient reaching each token's log-prob is scaled by its weight.

    Any loss of per-token log-probs then weights each token's gradient term by w — TIS's per-token
    loss weight — whichever registered loss is used.
    """
    return logps.detach() + weights * (logps - logps.detach())
