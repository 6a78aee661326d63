"""Per-token log-probabilities and entropies of completion tokens, without [B, L, V] logits.

The decoder runs without its lm_head; the last hidden states of the completion positions are then
projected to the vocabulary a chunk of positions at a time:

    logp_t = log_softmax(W h_{t-1} / τ)[y_t],    H_t = -Σ_v p_v log p_v

Each chunk runs under activation checkpointing when gradients are on, so the backward pass also
holds one chunk's [chunk, V] logits at a time instead of all of them. Vision is encoded once per
prompt and shared by its G rows (models.vision); with `shared_prefix` (the default) the decoder also
runs each prompt once and its G completions attend to its keys/values (models.prefix).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from deepvideo_r1.models.batch import PromptBatch, SequenceBatch, repeat_prompts
from deepvideo_r1.models.prefix import shared_prefix_hidden_states
from deepvideo_r1.models.vision import shared_vision_outputs, unwrap


@dataclass
class LogProbResult:
    """logps, entropy: [B, T] float32, 0 where completion_mask is 0."""

    logps: torch.Tensor
    entropy: torch.Tensor


def _grid_kwargs(prompts: PromptBatch, group_size: int) -> dict[str, torch.Tensor]:
    """Grids and seconds-per-patch repeated for the B = N·G rows (pixels are not repeated)."""
    rep = repeat_prompts(prompts, group_size, with_pixels=False)
    return {k: v for k, v in rep.vision_kwargs().items() if k != "mm_token_type_ids"}


def completion_hidden_states(
    model: nn.Module, batch: SequenceBatch, *, shared_prefix: bool = True
) -> torch.Tensor:
    """Decoder output at the positions that predict each completion token: [B, T, hidden].

    Position L-1+t predicts completion token t (L = prompt length, left-padded prompts).
    `shared_prefix`: each prompt through the decoder once (models.prefix); else the B joined rows.
    """
    if shared_prefix:
        return shared_prefix_hidden_states(model, batch)
    base = unwrap(model)
    mm = shared_vision_outputs(model, batch.prompts, batch.group_size)
    out = base.model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        mm_token_type_ids=batch.mm_token_type_ids,
        mm_encoder_outputs=mm,
        use_cache=False,
        **_grid_kwargs(batch.prompts, batch.group_size),
    )
    start = batch.prompt_length - 1
    return out.last_hidden_state[:, start : start + batch.completion_ids.shape[1]]


def _chunk_logps(
    head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden [C, H], targets [C] -> (logp [C], entropy [C]) from one chunk's [C, V] fp32 logits."""
    logits = head(hidden).float() / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def chunked_token_logprobs(
    head: nn.Module,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    chunk_size: int = 128,
    temperature: float = 1.0,
) -> LogProbResult:
    """hidden [B, T, H], targets/mask [B, T] -> LogProbResult; only masked-in positions are
    projected, `chunk_size` of them at a time."""
    flat_mask = mask.reshape(-1).bool()
    index = flat_mask.nonzero().squeeze(-1)  # [M] positions that count
    h = hidden.reshape(-1, hidden.shape[-1])[index]  # [M, H]
    y = targets.reshape(-1)[index]  # [M]
    use_ckpt = torch.is_grad_enabled() and h.requires_grad
    logps, ents = [], []
    for s in range(0, h.shape[0], chunk_size):
        args = (head, h[s : s + chunk_size], y[s : s + chunk_size], temperature)
        lp, ent = checkpoint(_chunk_logps, *args, use_reentrant=False) if use_ckpt else _chunk_logps(*args)
        logps.append(lp)
        ents.append(ent)
    flat_logp = hidden.new_zeros(flat_mask.shape, dtype=torch.float32)
    flat_ent = hidden.new_zeros(flat_mask.shape, dtype=torch.float32)
    if logps:
        flat_logp = flat_logp.index_put((index,), torch.cat(logps))
        flat_ent = flat_ent.index_put((index,), torch.cat(ents))
    return LogProbResult(logps=flat_logp.view_as(targets.float()), entropy=flat_ent.view_as(targets.float()))


def completion_logprobs(
    model: nn.Module,
    batch: SequenceBatch,
    *,
    chunk_size: int = 128,
    temperature: float = 1.0,
    shared_prefix: bool = True,
) -> LogProbResult:
    """Per-token log-probs and entropies of `batch.completion_ids` under `model`: [B, T] each.

    Gradients flow to the policy (used in the training loss). Call under torch.no_grad() for old /
    reference log-probs. `temperature` divides the logits (match the rollout temperature).
    `shared_prefix` picks how the decoder runs (same numbers to ~1e-6, see models.prefix).
    """
    hidden = completion_hidden_states(model, batch, shared_prefix=shared_prefix)
    return chunked_token_logprobs(
        unwrap(model).lm_head,
        hidden,
        batch.completion_ids,
        batch.completion_mask,
        chunk_size=chunk_size,
        temperature=temperature,
    )


def naive_completion_logprobs(
    model: nn.Module, batch: SequenceBatch, *, temperature: float = 1.0
) -> LogProbResult:
    """Reference implementation (tests, benchmarks): pixels repeated G times, full [B, L+T, V]
    logits, log_softmax, gather. Same result as completion_logprobs, far more memory."""
    rep = repeat_prompts(batch.prompts, batch.group_size, with_pixels=True)
    logits = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        use_cache=False,
        **rep.pixel_kwargs(),
        **{**rep.vision_kwargs(), "mm_token_type_ids": batch.mm_token_type_ids},
    ).logits.float()
    start, width = batch.prompt_length - 1, batch.completion_ids.shape[1]
    logp_all = F.log_softmax(logits[:, start : start + width] / temperature, dim=-1)  # [B, T, V]
    mask = batch.completion_mask.float()
    logps = logp_all.gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1) * mask
    entropy = -(logp_all.exp() * logp_all).sum(-1) * mask
    return LogProbResult(logps=logps, entropy=entropy)
