"""Shared-prefix forward: each group's prompt through the decoder once, its G completions attending to it.

The repeated path runs the B = N·G rows [prompt ⊕ completion]: G·(L+T) tokens per group. Here:

1. the N prompts [N, L] run once (vision features scattered, 3-D rope positions p [3, N, L]); each
   layer's rotated keys/values K_l, V_l [N, kv_heads, L, d] are kept;
2. the completions [B, T-1] (the last token predicts nothing) run with keys cat(repeat_G(K_l), K_l^c)
   and values likewise, under the mask
       allowed[b, t, j] = prompt_mask[n(b), j]                  for j < L
                        = (j - L <= t) ∧ completion_mask[b, j-L] for j ≥ L
   at positions p[:, n(b), L-1] + 1 + t (text continues the prompt's last position, as get_rope_index
   numbers it in the joined row).

Completion token t is predicted by the prompt's last output when t = 0 and by completion output t-1
after. P + G·(T-1) tokens per group instead of G·(P+T). The backward of repeat_G sums the G rows'
key/value gradients into the prompt — what the repeated path's G prompt copies sum to. Gradient
checkpointing works: the caches below are pure on replay (the prompt's first recording wins, the
completion cache never stores), so the layers may keep them under checkpointing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn
from transformers import DynamicCache

from deepvideo_r1.models.batch import PromptBatch, SequenceBatch
from deepvideo_r1.models.vision import encode_vision, unwrap


class SharedPrefixUnsupportedError(ValueError):
    """The model cannot take the shared-prefix path (family or attention kernel)."""


class _RecordingCache(DynamicCache):
    """Prompt pass: keeps each layer's keys/values [N, kv, L, d] and returns them unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        # first write wins: a checkpoint replay in backward must not swap in recomputed tensors
        self.kv.setdefault(layer_idx, (key_states, value_states))
        return key_states, value_states


class _PrefixCache(DynamicCache):
    """Completion pass: prepends the prompt's keys/values, repeated G times, and stores nothing."""

    def __init__(self, prompt_kv: dict[int, tuple[torch.Tensor, torch.Tensor]], group_size: int) -> None:
        super().__init__()
        self.prompt_kv = prompt_kv
        self.group_size = group_size

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        pk, pv = self.prompt_kv[layer_idx]  # [N, kv, L, d]
        g = self.group_size
        keys = torch.cat([pk.repeat_interleave(g, dim=0), key_states], dim=2)  # [B, kv, L+T', d]
        values = torch.cat([pv.repeat_interleave(g, dim=0), value_states], dim=2)
        return keys, values


def _bool_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return allowed


def _additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    zero = torch.zeros((), dtype=dtype, device=allowed.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


# The 4-D mask each attention kernel takes (sdpa: True = attend; eager: added to the scores).
MASK_FORMATS: dict[str, Callable[[torch.Tensor, torch.dtype], torch.Tensor]] = {
    "sdpa": _bool_mask,
    "eager": _additive_mask,
}


def _text_model(model: nn.Module) -> nn.Module:
    """The decoder stack (`model.model.language_model`); errors if the family has no such split."""
    base = unwrap(model)
    inner = getattr(base, "model", None)
    if not (hasattr(inner, "language_model") and hasattr(inner, "get_rope_index")):
        kind = getattr(getattr(base, "config", None), "model_type", type(base).__name__)
        raise SharedPrefixUnsupportedError(
            f"model type {kind!r} has no language_model/get_rope_index (Qwen-VL layout); "
            "set model.shared_prefix: false"
        )
    return inner.language_model


def check_shared_prefix(model: nn.Module) -> str:
    """Raise SharedPrefixUnsupportedError unless `model` can take the shared path; returns its
    attention kernel name."""
    impl = _text_model(model).config._attn_implementation
    if impl not in MASK_FORMATS:
        raise SharedPrefixUnsupportedError(
            f"shared prefix needs attention {' or '.join(MASK_FORMATS)}, the model uses {impl!r}; "
            "set model.attn_implementation: sdpa or model.shared_prefix: false"
        )
    return impl


@contextlib.contextmanager
def _cache_under_checkpointing(text_model: nn.Module) -> Iterator[None]:
    """Let checkpointed decoder layers keep our caches (both are replay-safe, see module doc)."""
    layers = list(text_model.layers)
    for layer in layers:
        layer._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for layer in layers:
            del layer._can_checkpoint_with_cache  # back to the class default


def prompt_positions(model: nn.Module, prompts: PromptBatch) -> torch.Tensor:
    """3-D rope positions of the prompts [3, N, L], as the model's forward computes them."""
    kwargs = prompts.vision_kwargs()
    if "video_grid_thw" not in kwargs and "image_grid_thw" not in kwargs:
        # text-only: the model falls back to 0..L-1 for every row
        n, length = prompts.input_ids.shape
        return torch.arange(length, device=prompts.input_ids.device).expand(3, n, length)
    base = unwrap(model)
    positions, _ = base.model.get_rope_index(
        prompts.input_ids, attention_mask=prompts.attention_mask, **kwargs
    )
    return positions


def completion_positions(last: torch.Tensor, group_size: int, width: int) -> torch.Tensor:
    """last [3, N] (each prompt's final position) -> [3, B, width]: last + 1 + t, rows repeated G."""
    steps = torch.arange(1, width + 1, device=last.device)
    return (last.repeat_interleave(group_size, dim=1)[..., None] + steps).long()


def completion_mask_4d(
    prompt_mask: torch.Tensor, completion_mask: torch.Tensor, group_size: int
) -> torch.Tensor:
    """prompt_mask [N, L], completion_mask [B, T'] -> allowed [B, 1, T', L+T'] (bool, see module doc)."""
    width = completion_mask.shape[1]
    prompt_part = prompt_mask.bool().repeat_interleave(group_size, dim=0)[:, None, :].expand(-1, width, -1)
    causal = torch.ones(width, width, dtype=torch.bool, device=completion_mask.device).tril()
    own = causal[None] & completion_mask.bool()[:, None, :]  # [B, T', T']
    return torch.cat([prompt_part, own], dim=2)[:, None]


def _prompt_pass(model: nn.Module, prompts: PromptBatch, positions: torch.Tensor, cache: _RecordingCache):
    """The N prompts once, with vision; returns last_hidden_state [N, L, hidden]."""
    base = unwrap(model)
    return base.model(
        input_ids=prompts.input_ids,
        attention_mask=prompts.attention_mask,
        position_ids=positions,
        mm_encoder_outputs=encode_vision(model, prompts),
        cache=cache,
        use_cache=True,
        **prompts.vision_kwargs(),
    ).last_hidden_state


def shared_prefix_hidden_states(model: nn.Module, batch: SequenceBatch) -> torch.Tensor:
    """Decoder outputs at the positions predicting each completion token: [B, T, hidden], equal to the
    repeated path's `out[:, L-1 : L-1+T]`."""
    impl = check_shared_prefix(model)
    text = _text_model(model)
    g, prompts = batch.group_size, batch.prompts
    positions = prompt_positions(model, prompts)
    recorder = _RecordingCache()
    with _cache_under_checkpointing(text):
        prompt_h = _prompt_pass(model, prompts, positions, recorder)
        first = prompt_h[:, -1:].repeat_interleave(g, dim=0)  # [B, 1, hidden] predicts token 0
        width = batch.completion_ids.shape[1] - 1
        if width == 0:
            return first
        allowed = completion_mask_4d(prompts.attention_mask, batch.completion_mask[:, :width], g)
        rest = text(
            input_ids=batch.completion_ids[:, :width],
            attention_mask=MASK_FORMATS[impl](allowed, prompt_h.dtype),
            position_ids=completion_positions(positions[:, :, -1], g, width),
            cache=_PrefixCache(recorder.kv, g),
            use_cache=True,
        ).last_hidden_state  # [B, T-1, hidden]
    return torch.cat([first, rest], dim=1)


def _generation_positions(model: nn.Module, prompts: PromptBatch) -> torch.Tensor:
    """[3, N, L] positions as `generate` numbers a prompt: get_rope_index with vision, else the
    attention-mask running count (generate's text convention)."""
    kwargs = prompts.vision_kwargs()
    if "video_grid_thw" in kwargs or "image_grid_thw" in kwargs:
        return prompt_positions(model, prompts)
    mask = prompts.attention_mask.long()
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0).expand(3, -1, -1)


@torch.no_grad()
def prefill_prompts(
    model: nn.Module, prompts: PromptBatch, group_size: int
) -> tuple[DynamicCache, torch.Tensor]:
    """Run the N prompts but their last token once and repeat the cache to B = N·G rows.

    Returns (cache of L-1 positions [B rows], rope deltas [B, 1]). `generate` then runs the last
    prompt token of each row and decodes at text position (running count) + delta — the prompt's
    last 3-D position + 1 + t, as when it prefills the B repeated rows itself.
    """
    if bool(prompts.mm_token_type_ids[:, -1].any()):
        raise ValueError(
            "a prompt ends in a vision placeholder; prompts must end in text (the chat template's "
            "generation prompt)"
        )
    base = unwrap(model)
    positions = _generation_positions(model, prompts)
    cache = DynamicCache(config=base.config)
    head = {k: v for k, v in prompts.vision_kwargs().items() if k != "mm_token_type_ids"}
    base.model(
        input_ids=prompts.input_ids[:, :-1],
        attention_mask=prompts.attention_mask[:, :-1],
        mm_token_type_ids=prompts.mm_token_type_ids[:, :-1],
        position_ids=positions[:, :, :-1],
        mm_encoder_outputs=encode_vision(model, prompts),
        cache=cache,
        use_cache=True,
        **head,
    )
    cache.batch_repeat_interleave(group_size)  # [N, kv, L-1, d] -> [B, kv, L-1, d] per layer
    n_real = prompts.attention_mask.long().sum(-1)
    deltas = positions[0, :, -1] + 1 - n_real  # last position = (n_real - 1) + delta
    return cache, deltas.repeat_interleave(group_size)[:, None]


def tokens_per_group(prompt_length: int, completion_length: int, group_size: int, shared: bool) -> int:
    """Decoder tokens one group costs: G·(L+T) repeated, L + G·(T-1) shared."""
    if shared:
        return prompt_length + group_size * max(completion_length - 1, 0)
    return group_size * (prompt_length + completion_length)
