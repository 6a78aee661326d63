"""Policy losses behind one registry and one signature.

Every loss is ``fn(logps, old_logps, advantages, mask, group_size, *, ref_logps=None, beta=0.0,
**own_options) -> (loss, metrics)`` with
    logps, old_logps, ref_logps, mask : [B, T] per completion token (mask 1 up to and including EOS)
    advantages                        : [B]
    B = N groups × G completions, rows ordered group by group.
``loss`` is a scalar tensor; ``metrics`` maps ``loss/...`` names to detached scalar tensors.
`aggregate` is the only place a [B, T] matrix becomes a scalar.

Each loss also declares what its mean runs over (`LOSS_NORMALIZER`): "sequences" (a mean over
rows or groups, or a sum over a fixed number of rows, as Dr. GRPO's B × max_len) or "tokens" (a
mean over every completion token, as DAPO). A rollout batch split into micro-batches (and ranks)
then gives the loss of the whole batch with `micro_batch_weight`, without changing the signature.

The log-ratio that goes into ``exp`` is clamped to [-20, 20] (verl clamps too) so that extreme
but finite inputs give finite losses and gradients: per token for the token-level losses, the
sequence value only (never its tokens) for the sequence-level ones. Values in range are untouched.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from deepvideo_r1.algos.advantages import check_group_size

LossOutput = tuple[Tensor, dict[str, Tensor]]
PolicyLossFn = Callable[..., LossOutput]
AggMode = Literal["seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm"]
Normalizer = Literal["sequences", "tokens"]

POLICY_LOSSES: dict[str, PolicyLossFn] = {}
# The advantage scaling each loss is defined with: group, batch, none or raw (`group_advantages`).
LOSS_ADVANTAGE_SCALE: dict[str, str] = {}
# What each loss's mean runs over: "sequences" (rows) or "tokens" (masked completion tokens).
LOSS_NORMALIZER: dict[str, Normalizer] = {}
_LOG_RATIO_CLAMP = 20.0
_COMMON_OPTIONS = ("ref_logps", "beta")


def register_policy_loss(
    name: str, advantage_scale: str = "group", normalizer: Normalizer = "sequences"
) -> Callable[[PolicyLossFn], PolicyLossFn]:
    """Decorator: register ``fn`` under ``name`` in POLICY_LOSSES (names are unique), with the
    advantage scaling (`group_advantages` scale) the loss is defined with and what its mean runs
    over (``normalizer``: "sequences" or "tokens", see `micro_batch_weight`)."""
    if normalizer not in ("sequences", "tokens"):
        raise ValueError(f"normalizer must be 'sequences' or 'tokens', got {normalizer!r}")

    def decorator(fn: PolicyLossFn) -> PolicyLossFn:
        if name in POLICY_LOSSES:
            raise ValueError(f"policy loss {name!r} is already registered")
        POLICY_LOSSES[name] = fn
        LOSS_ADVANTAGE_SCALE[name] = advantage_scale
        LOSS_NORMALIZER[name] = normalizer
        return fn

    return decorator


def loss_option_names(name: str) -> tuple[str, ...]:
    """The keyword options loss ``name`` takes beyond the common signature (from its signature)."""
    if name not in POLICY_LOSSES:
        raise ValueError(f"unknown policy loss {name!r}; known: {', '.join(sorted(POLICY_LOSSES))}")
    params = inspect.signature(POLICY_LOSSES[name]).parameters
    return tuple(p for p, v in params.items() if v.kind is v.KEYWORD_ONLY and p not in _COMMON_OPTIONS)


def normalizer_units(name: str, mask: Tensor) -> int:
    """How many units the loss ``name`` averages over in a micro-batch with ``mask`` [b, T]:
    its rows (normalizer "sequences") or its masked tokens (normalizer "tokens")."""
    if LOSS_NORMALIZER[name] == "tokens":
        return int(mask.bool().sum())
    return int(mask.shape[0])


def micro_batch_weight(units: float, total_units: float, world_size: int = 1) -> float:
    """Factor on a micro-batch's loss so that the backward passes sum to the whole batch's loss.

    A micro-batch j holding u_j of the U units of the whole (accumulated, all-rank) batch has
    L_j = S_j / u_j, so L = S / U = sum_j L_j · u_j / U. Data-parallel backends average gradients
    over ranks, hence the factor world_size: w_j = u_j · world_size / U.
    """
    return units * world_size / max(total_units, 1.0)


def policy_loss(
    name: str,
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    **options: object,
) -> LossOutput:
    """Look up the loss ``name`` in POLICY_LOSSES and call it with the common signature."""
    if name not in POLICY_LOSSES:
        raise ValueError(f"unknown policy loss {name!r}; known: {', '.join(sorted(POLICY_LOSSES))}")
    return POLICY_LOSSES[name](logps, old_logps, advantages, mask, group_size, **options)


def aggregate(values: Tensor, mask: Tensor, mode: AggMode, max_len: int | None = None) -> Tensor:
    """Reduce per-token ``values`` [B, T] under ``mask`` [B, T] to a scalar.

        seq_mean_token_mean     : mean_b ( sum_t m v / max(sum_t m, 1) )       (GRPO)
        token_mean              : sum_{b,t} m v / max(sum_{b,t} m, 1)          (DAPO)
        seq_mean_token_sum_norm : sum_{b,t} m v / (B × max_len), max_len = T   (Dr. GRPO)
    Masked-out entries are selected away (not multiplied), so inf/NaN padding cannot leak.
    """
    mask = mask.bool()
    masked = torch.where(mask, values, torch.zeros_like(values))
    if mode == "seq_mean_token_mean":
        per_seq = masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1)  # [B]
        return per_seq.mean()
    if mode == "token_mean":
        return masked.sum() / mask.sum().clamp(min=1)
    if mode == "seq_mean_token_sum_norm":
        length = values.shape[1] if max_len is None else max_len
        if length < 1:
            raise ValueError(f"max_len must be >= 1, got {length}")
        return masked.sum() / (values.shape[0] * length)
    raise ValueError(
        f"unknown aggregation mode {mode!r}; known: seq_mean_token_mean, token_mean, seq_mean_token_sum_norm"
    )


def check_inputs(logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, group_size: int) -> None:
    """ValueError unless logps/old_logps/mask are [B, T], advantages [B], and G divides B."""
    if logps.dim() != 2:
        raise ValueError(f"logps must be [B, T], got shape {tuple(logps.shape)}")
    for label, tensor in (("old_logps", old_logps), ("mask", mask)):
        if tensor.shape != logps.shape:
            raise ValueError(f"{label} shape {tuple(tensor.shape)} != logps shape {tuple(logps.shape)}")
    if advantages.shape != logps.shape[:1]:
        raise ValueError(f"advantages must be [B]={logps.shape[0]}, got shape {tuple(advantages.shape)}")
    check_group_size(logps.shape[0], group_size)


def upcast(x: Tensor) -> Tensor:
    """fp16/bf16 -> fp32 (log-ratio sums lose too much precision in half types); others unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def token_log_ratio(logps: Tensor, old_logps: Tensor, mask: Tensor) -> Tensor:
    """log r_t = logp_t - old_logp_t on masked tokens, 0 elsewhere (not clamped); [B, T].

    old_logps is detached: it is the rollout policy's (or the reference's), a constant of the update.
    """
    logps, old_logps = upcast(logps), upcast(old_logps.detach())
    return torch.where(mask.bool(), logps - old_logps, torch.zeros_like(logps))


def masked_log_ratio(logps: Tensor, old_logps: Tensor, mask: Tensor) -> Tensor:
    """`token_log_ratio` clamped to ±20 per token; [B, T]."""
    return token_log_ratio(logps, old_logps, mask).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)


def sequence_log_ratio(logps: Tensor, old_logps: Tensor, mask: Tensor) -> Tensor:
    """rho_b = sum_t m (logp - old), [B, T] -> [B]; not clamped (clamp only what goes into exp)."""
    return token_log_ratio(logps, old_logps, mask).sum(dim=1)


def clamp_log_ratio(log_ratio: Tensor) -> Tensor:
    """Clamp a log-ratio to ±20 before ``exp`` (zero gradient beyond, a finite value always)."""
    return log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)


def nonempty_rows(mask: Tensor) -> Tensor:
    """BoolTensor [B]: rows with at least one valid token (a row without any adds nothing)."""
    return mask.bool().any(dim=1)


def kl_term(
    logps: Tensor,
    ref_logps: Tensor | None,
    mask: Tensor,
    beta: float,
    mode: AggMode,
    max_len: int | None = None,
) -> Tensor | None:
    """Aggregated k3 KL (without beta), kl_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1.

    Returns None when ref_logps is None (then beta must be 0). Aggregated with ``mode``.
    """
    if ref_logps is None:
        if beta > 0:
            raise ValueError(f"beta={beta} > 0 needs ref_logps (the frozen reference policy's log-probs)")
        return None
    if ref_logps.shape != logps.shape:
        raise ValueError(f"ref_logps shape {tuple(ref_logps.shape)} != logps shape {tuple(logps.shape)}")
    ref, cur = upcast(ref_logps.detach()), upcast(logps)
    delta = torch.where(mask.bool(), ref - cur, torch.zeros_like(cur)).clamp(
        -_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP
    )
    kl = torch.exp(delta) - delta - 1.0
    return aggregate(kl, mask, mode, max_len)


def add_kl(loss: Tensor, metrics: dict[str, Tensor], kl: Tensor | None, beta: float) -> Tensor:
    """loss + beta · kl (only when beta > 0); records loss/policy, loss/kl and loss/total."""
    metrics["loss/policy"] = loss.detach()
    metrics["loss/kl"] = kl.detach() if kl is not None else torch.zeros((), device=loss.device)
    if kl is not None and beta > 0:
        loss = loss + beta * kl
    metrics["loss/total"] = loss.detach()
    return loss


def _clipped_surrogate(
    log_ratio: Tensor, advantages: Tensor, clip_low: float, clip_high: float
) -> tuple[Tensor, Tensor]:
    """-min(r A, clip(r, 1-clip_low, 1+clip_high) A) and the 0/1 'clipped branch active' mask.

    Shapes broadcast: log_ratio [B, T] with advantages [B, 1], or [B] with [B].
    """
    ratio = torch.exp(log_ratio)
    unclipped = -ratio * advantages
    clipped = -ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * advantages
    return torch.maximum(unclipped, clipped), (clipped > unclipped).float()


def _token_clip_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    *,
    clip_low: float,
    clip_high: float,
    mode: AggMode,
    max_len: int | None,
    ref_logps: Tensor | None,
    beta: float,
) -> LossOutput:
    """Shared body of grpo / dapo / dr_grpo: token-level clipped surrogate aggregated by ``mode``."""
    check_inputs(logps, old_logps, advantages, mask, group_size)
    log_ratio = masked_log_ratio(logps, old_logps, mask)  # [B, T]
    per_token, clipped = _clipped_surrogate(log_ratio, advantages.detach()[:, None], clip_low, clip_high)
    loss = aggregate(per_token, mask, mode, max_len)
    metrics = {
        "loss/clip_frac": aggregate(clipped, mask, "token_mean").detach(),
        "loss/ratio_mean": aggregate(torch.exp(log_ratio), mask, "token_mean").detach(),
    }
    kl = kl_term(logps, ref_logps, mask, beta, mode, max_len)
    return add_kl(loss, metrics, kl, beta), metrics


@register_policy_loss("grpo")
def grpo_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    *,
    ref_logps: Tensor | None = None,
    beta: float = 0.0,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
) -> LossOutput:
    """GRPO (DeepSeekMath): l_t = -min(r_t A, clip(r_t, 1-clip_low, 1+clip_high) A), r_t = exp(logp-old).

    L = mean_b (1/|y_b|) sum_t m l_t  + beta · KL (same aggregation).
    """
    return _token_clip_loss(
        logps, old_logps, advantages, mask, group_size, clip_low=clip_low, clip_high=clip_high,
        mode="seq_mean_token_mean", max_len=None, ref_logps=ref_logps, beta=beta,
    )  # fmt: skip


@register_policy_loss("dapo", normalizer="tokens")
def dapo_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    *,
    ref_logps: Tensor | None = None,
    beta: float = 0.0,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
) -> LossOutput:
    """DAPO: the GRPO token term with clip-higher (1-0.2, 1+0.28), token-level mean.

    L = sum_{b,t} m l_t / sum_{b,t} m  + beta · KL (same aggregation).
    """
    return _token_clip_loss(
        logps, old_logps, advantages, mask, group_size, clip_low=clip_low, clip_high=clip_high,
        mode="token_mean", max_len=None, ref_logps=ref_logps, beta=beta,
    )  # fmt: skip


@register_policy_loss("dr_grpo", advantage_scale="none")
def dr_grpo_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    *,
    ref_logps: Tensor | None = None,
    beta: float = 0.0,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    max_completion_length: int | None = None,
) -> LossOutput:
    """Dr. GRPO: the GRPO token term, no length bias (use with advantages scale="none").

    L = sum_{b,t} m l_t / (B × max_completion_length)  + beta · KL; max_completion_length defaults to T.
    A fixed max_completion_length (the step passes rollout.max_new_tokens) makes the normaliser a
    constant per row, so micro-batches combine by their share of rows ("sequences").
    """
    return _token_clip_loss(
        logps, old_logps, advantages, mask, group_size, clip_low=clip_low, clip_high=clip_high,
        mode="seq_mean_token_sum_norm", max_len=max_completion_length, ref_logps=ref_logps, beta=beta,
    )  # fmt: skip


@register_policy_loss("gspo")
def gspo_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    group_size: int,
    *,
    ref_logps: Tensor | None = None,
    beta: float = 0.0,
    clip_low: float = 3e-4,
    clip_high: float = 4e-4,
) -> LossOutput:
    """GSPO (Zheng et al. 2025): sequence ratio s_b = exp(clamp(sum_t m (logp - old) / sum_t m, ±20)).

    L = (1/B) sum_{b: |y_b| > 0} -min(s_b A_b, clip(s_b, 1-clip_low, 1+clip_high) A_b)  + beta · KL
    (grpo aggregation of the per-sequence term broadcast to its tokens, as TRL does). Only the
    sequence value is clamped, so one token far off-policy still gets the gradient -A s_b / |y_b| / B
    (unclipped branch); a row without valid tokens adds nothing.
    """
    check_inputs(logps, old_logps, advantages, mask, group_size)
    lengths = mask.bool().sum(dim=1).clamp(min=1)  # [B]
    seq_log_ratio = clamp_log_ratio(sequence_log_ratio(logps, old_logps, mask) / lengths)  # [B]
    per_seq, clipped = _clipped_surrogate(seq_log_ratio, upcast(advantages.detach()), clip_low, clip_high)
    loss = aggregate(per_seq[:, None].expand_as(mask), mask, "seq_mean_token_mean")
    rows = nonempty_rows(mask)
    n_rows = rows.sum().clamp(min=1)
    metrics = {
        "loss/clip_frac": (clipped * rows).sum().detach() / n_rows,
        "loss/ratio_mean": (torch.exp(seq_log_ratio) * rows).sum().detach() / n_rows,
    }
    kl = kl_term(logps, ref_logps, mask, beta, "seq_mean_token_mean")
    return add_kl(loss, metrics, kl, beta), metrics
