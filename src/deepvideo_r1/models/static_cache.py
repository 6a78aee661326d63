"""Decoding into a static KV cache of bucketed size, continued from the shared-prefix prefill.

`generate` with a `StaticCache` writes each new token's keys/values in place at a fixed address,
so transformers can compile the decode step (it does so on CUDA unless told `disable_compile`);
a dynamic cache grows every token and cannot be compiled. A compiled step is specialised to its
shapes, so both are bucketed: the cache length L - 1 + max_new_tokens rounds up to a multiple of
CACHE_BUCKET, and (when compiling) the B = N·G rows to the next power of two, the extra rows
copies of the last one, dropped afterwards. The prefill (models.prefix.prefill_prompts) runs the N
prompts once; its repeated keys/values are copied into the static cache.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, StaticCache

CACHE_BUCKET = 256
"""Static cache lengths are multiples of this (recompiles only when a bucket is crossed)."""


def cache_bucket(length: int, bucket: int = CACHE_BUCKET) -> int:
    """`length` rounded up to a multiple of `bucket`."""
    return -(-length // bucket) * bucket


def batch_bucket(rows: int) -> int:
    """The next power of two >= rows (at least 1)."""
    return 1 << max(rows - 1, 0).bit_length()


def pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """[B, ...] -> [rows, ...]: the extra rows are copies of the last one."""
    extra = rows - x.shape[0]
    return x if extra <= 0 else torch.cat([x, x[-1:].expand(extra, *x.shape[1:])], dim=0)


def static_from_prefill(
    prefill: DynamicCache, config, max_cache_len: int, rows: int | None = None
) -> StaticCache:
    """A StaticCache of `max_cache_len` positions holding the prefill's keys/values (every layer
    [B, kv, L-1, d], padded to `rows` rows with copies of the last)."""
    static = StaticCache(config=config, max_cache_len=max_cache_len)
    for index, layer in enumerate(prefill.layers):
        keys, values = layer.keys, layer.values
        if rows is not None:
            keys, values = pad_rows(keys, rows), pad_rows(values, rows)
        static.update(keys, values, index)
    return static
