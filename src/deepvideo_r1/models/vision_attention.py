"""The Qwen-VL vision tower's windowed attention in one call per block.

With sdpa or eager, transformers splits each vision block's attention at `cu_seqlens` and runs one
attention call per window (Qwen2.5-VL: 112×112-pixel windows, so 81 windows × 32 blocks = 2,592
calls for one 16-frame 252×252 video). Only implementations whose name contains "flash" are
handed the whole sequence with `cu_seqlens`; we register one under such a name and set it on the
vision config alone (the decoder keeps its own kernel). It runs all windows of a block at once:

- CUDA, bf16/fp16: `torch.nn.attention.varlen.varlen_attn` where torch has it, else flash-attn's
  `flash_attn_varlen_func` when installed;
- otherwise (CPU, fp32): one sdpa call over the whole sequence with a block-diagonal mask
  (allowed[i, j] = window(i) == window(j)), the same numbers as the per-window calls.
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface

from deepvideo_r1.models.vision import vision_tower

VARLEN_VISION_ATTENTION = "flash_varlen_windows"
"""The registered name ("flash" in it routes the whole sequence and cu_seqlens to it)."""


def _window_ids(cu_seqlens: torch.Tensor, length: int) -> torch.Tensor:
    """cu_seqlens [W+1] -> the window of each position [length]."""
    positions = torch.arange(length, device=cu_seqlens.device)
    return torch.bucketize(positions, cu_seqlens[1:].to(positions.dtype), right=True)


def _masked_sdpa(query, key, value, cu_seqlens, scaling) -> torch.Tensor:
    """[1, H, S, D] each -> [S, H, D]: one sdpa call, block-diagonal mask."""
    ids = _window_ids(cu_seqlens, query.shape[2])
    allowed = ids[:, None] == ids[None, :]  # [S, S]
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, scale=scaling)
    return out[0].transpose(0, 1)


def _torch_varlen(q, k, v, cu, max_len, scaling) -> torch.Tensor:
    from torch.nn.attention.varlen import varlen_attn

    return varlen_attn(q, k, v, cu, cu, max_len, max_len, scale=scaling)


def _flash_attn_varlen(q, k, v, cu, max_len, scaling) -> torch.Tensor:
    from flash_attn import flash_attn_varlen_func

    return flash_attn_varlen_func(q, k, v, cu, cu, max_len, max_len, softmax_scale=scaling)


def varlen_kernel(query: torch.Tensor):
    """The fused variable-length kernel for these queries, or None (then the masked sdpa call)."""
    if not query.is_cuda or query.dtype not in (torch.bfloat16, torch.float16):
        return None
    if importlib.util.find_spec("torch.nn.attention.varlen") is not None:
        return _torch_varlen
    if importlib.util.find_spec("flash_attn") is not None:
        return _flash_attn_varlen
    return None


def varlen_vision_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    scaling: float | None = None,
    dropout: float = 0.0,
    cu_seq_lens_q: torch.Tensor | None = None,
    max_length_q: int | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """query/key/value [1, H, S, D] with windows at cu_seq_lens_q [W+1] -> ([1, S, H, D], None),
    the layout transformers' attention functions return."""
    if cu_seq_lens_q is None or dropout:
        raise ValueError(f"{VARLEN_VISION_ATTENTION} serves vision blocks: needs cu_seqlens and no dropout")
    kernel = varlen_kernel(query)
    if kernel is None:
        return _masked_sdpa(query, key, value, cu_seq_lens_q, scaling)[None], None
    cu = cu_seq_lens_q.to(torch.int32)
    max_len = int(max_length_q) if max_length_q is not None else int((cu[1:] - cu[:-1]).max())
    q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))  # [S, H, D]
    return kernel(q, k, v, cu, max_len, scaling)[None], None


AttentionInterface.register(VARLEN_VISION_ATTENTION, varlen_vision_attention)


def set_vision_attention(model: nn.Module, implementation: str) -> None:
    """Set the vision tower's attention kernel alone (the decoder keeps its own)."""
    tower = vision_tower(model)
    tower.config._attn_implementation = implementation


def use_varlen_vision_attention(model: nn.Module) -> bool:
    """One attention call per vision block when the tower runs sdpa or eager (flash-attn already
    takes the whole sequence); returns whether it was switched."""
    if vision_tower(model).config._attn_implementation not in ("sdpa", "eager"):
        return False
    set_vision_attention(model, VARLEN_VISION_ATTENTION)
    return True
