"""3-D rope positions of Qwen2-VL / Qwen2.5-VL prompts, by the rule the released weights were trained with.

A prompt is numbered group by group (text, image, video runs of mm_token_type_ids):

- text: one position per token, the same on the three axes, continuing from `start`;
- a vision item with merged grid (t, h, w) = (grid_t, grid_h / merge, grid_w / merge):
  temporal = start + ⌊i_t · interval⌋ (interval = tokens_per_second · second_per_grid_ts for a
  Qwen2.5-VL video, 1 otherwise), height = start + i_h, width = start + i_w;
- the text after a vision item resumes at (the largest position of the item) + 1
  = start + max(⌊(t-1) · interval⌋, h-1, w-1) + 1.

That last rule is Qwen's own (its get_rope_index, contributed with the models to transformers and
copied into vLLM's M-RoPE): text resumes past every axis of the item. transformers 5.3+ resumes at
start + max(h, w) instead, so a video whose temporal span exceeds its spatial one overlaps the text
after it (huggingface/transformers#45381); vLLM keeps Qwen's rule. `use_reference_rope` makes a
loaded model number its prompts this way whatever transformers is installed, so the trainer, the
HF rollout and vLLM agree. Images (t = 1) and Qwen3-VL (one temporal patch per item) give the same
positions under both rules.

rope deltas: decoding continues at (running token count) + delta, delta = max position + 1 - real
prompt length, as transformers 5.x applies them.
"""

from __future__ import annotations

import itertools
import types

import torch
from torch import nn

# Families whose models number video items in bulk and so depend on the resume rule.
REFERENCE_ROPE_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")


def vision_positions(start: int, grid: tuple[int, int, int], interval: float) -> torch.Tensor:
    """[3, t·h·w] positions of one vision item with merged grid (t, h, w) starting at `start`."""
    t, h, w = grid
    temporal = (torch.arange(t, dtype=torch.float64) * interval).long()
    tt, hh, ww = torch.meshgrid(temporal, torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([tt, hh, ww]).reshape(3, -1) + start


def row_positions(token_types: list[int], items: list[tuple[tuple[int, int, int], float]]) -> torch.Tensor:
    """[3, L] positions of one unpadded row. token_types: 0 text, 1 image, 2 video per token;
    items: (merged grid, temporal interval) of each vision run, in order."""
    parts, start, queue = [], 0, iter(items)
    for kind, run in itertools.groupby(token_types):
        n = len(list(run))
        if kind == 0:
            parts.append(torch.arange(n).expand(3, n) + start)
            start += n
            continue
        grid, interval = next(queue)
        pos = vision_positions(start, grid, interval)
        if pos.shape[1] != n:
            raise ValueError(f"a vision run of {n} placeholder tokens does not match its grid {grid}")
        parts.append(pos)
        start = int(pos.max()) + 1  # Qwen's rule: past every axis of the item
    return torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.long)


def rope_index(
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    *,
    spatial_merge_size: int,
    tokens_per_second: float | None = None,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    second_per_grid_ts: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """positions [3, N, L] (0 on padding) and rope deltas [N, 1] of N prompts (module rule).

    Vision items are taken in prompt order from image_grid_thw / video_grid_thw (raw patch grids);
    a video's interval is tokens_per_second · second_per_grid_ts (Qwen2.5-VL) or 1 when either is None.
    """
    grids = {
        1: iter(image_grid_thw.tolist() if image_grid_thw is not None else []),
        2: iter(video_grid_thw.tolist() if video_grid_thw is not None else []),
    }
    seconds = iter(second_per_grid_ts.tolist() if second_per_grid_ts is not None else [])
    mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    positions = torch.zeros(3, *input_ids.shape, dtype=torch.long)
    deltas = []
    for row in range(input_ids.shape[0]):
        types_row = mm_token_type_ids[row][mask[row].cpu()].tolist()
        items = []
        for kind, _ in itertools.groupby(types_row):
            if kind == 0:
                continue
            t, h, w = next(grids[kind])
            interval = 1.0
            if kind == 2 and tokens_per_second is not None and second_per_grid_ts is not None:
                interval = float(tokens_per_second) * float(next(seconds))
            items.append(((t, h // spatial_merge_size, w // spatial_merge_size), interval))
        pos = row_positions(types_row, items)
        positions[:, row, mask[row].cpu()] = pos
        deltas.append(int(pos.max()) + 1 - len(types_row) if pos.numel() else 0)
    return positions.to(input_ids.device), torch.tensor(deltas, device=input_ids.device)[:, None]


def _reference_get_rope_index(
    self: nn.Module,
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    second_per_grid_ts: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for the transformers model's get_rope_index (same arguments and outputs)."""
    vision = self.config.vision_config
    return rope_index(
        input_ids,
        mm_token_type_ids,
        spatial_merge_size=vision.spatial_merge_size,
        tokens_per_second=getattr(vision, "tokens_per_second", None),
        image_grid_thw=image_grid_thw,
        video_grid_thw=video_grid_thw,
        second_per_grid_ts=second_per_grid_ts,
        attention_mask=attention_mask,
    )


def use_reference_rope(model: nn.Module) -> nn.Module:
    """Make `model` (a Qwen2-VL / Qwen2.5-VL ForConditionalGeneration) number its prompts by Qwen's
    rule in every forward and `generate`; other families are returned untouched."""
    inner = getattr(model, "model", None)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in REFERENCE_ROPE_MODEL_TYPES and hasattr(inner, "get_rope_index"):
        # an instance attribute: it travels with deepcopy / FSDP wrapping and leaves the class alone
        inner.get_rope_index = types.MethodType(_reference_get_rope_index, inner)
    return model
