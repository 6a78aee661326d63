"""Encode each prompt's video/image once and share the features with its G completions.

transformers 5.23's Qwen-VL forward accepts `mm_encoder_outputs={"video": out, "image": out}`
(precomputed `get_video_features` / `get_image_features` outputs, one tensor per item in
`pooler_output`, plus Qwen3-VL's per-layer `deepstack_features`). We encode the N prompts once and
repeat the per-item features G times, so the vision tower never sees the same pixels twice; the
model still scatters them into the placeholders (and checks the counts) and builds 3-D rope
positions from input_ids + mm_token_type_ids + grids, exactly as with raw pixels.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn

from deepvideo_r1.models.batch import PromptBatch


def unwrap(model: nn.Module) -> nn.Module:
    """The Qwen-VL ForConditionalGeneration under a peft wrapper (itself when not wrapped)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def vision_tower(model: nn.Module) -> nn.Module:
    """The vision encoder module (`model.model.visual`)."""
    return unwrap(model).model.visual


def _regroup(items: tuple[torch.Tensor, ...], counts: list[int], group_size: int) -> list[torch.Tensor]:
    """Per-item tensors [i0, i1, …] grouped by prompt (counts[n] items each) -> each prompt's items
    repeated G times: for prompt n with items (a, b): a, b, a, b, … (G times)."""
    out, start = [], 0
    for count in counts:
        out += list(items[start : start + count]) * group_size
        start += count
    return out


def expand_encoder_output(output: Any, counts: list[int], group_size: int) -> Any:
    """A copy of a get_*_features output whose per-item features are repeated per group."""
    expanded = copy.copy(output)
    expanded.pooler_output = _regroup(tuple(output.pooler_output), counts, group_size)
    deepstack = getattr(output, "deepstack_features", None)
    if deepstack is not None:
        expanded.deepstack_features = [_regroup(tuple(layer), counts, group_size) for layer in deepstack]
    return expanded


def item_outputs(output: Any) -> list[Any]:
    """A get_*_features output of k items -> k single-item outputs (merged features only: the
    unmerged patch states are dropped, the decoder reads `pooler_output` and deepstack)."""
    items = []
    deepstack = getattr(output, "deepstack_features", None)
    for i, features in enumerate(output.pooler_output):
        item = copy.copy(output)
        item.last_hidden_state = None
        item.pooler_output = (features,)
        if deepstack is not None:
            item.deepstack_features = [(layer[i],) for layer in deepstack]
        items.append(item)
    return items


def join_item_outputs(items: list[Any]) -> Any:
    """Inverse of `item_outputs`: one output whose per-item tuples list every item in order."""
    joined = copy.copy(items[0])
    joined.pooler_output = tuple(f for item in items for f in item.pooler_output)
    if getattr(items[0], "deepstack_features", None) is not None:
        layers = range(len(items[0].deepstack_features))
        joined.deepstack_features = [tuple(f for i in items for f in i.deepstack_features[k]) for k in layers]
    return joined


# modality -> (pixels, grid, items attribute of PromptBatch, the model's encoder method)
_MODALITIES = {
    "video": ("pixel_values_videos", "video_grid_thw", "video_items", "get_video_features"),
    "image": ("pixel_values", "image_grid_thw", "image_items", "get_image_features"),
}


def encode_vision(model: nn.Module, batch: PromptBatch) -> dict[str, Any]:
    """Run the vision tower once on the batch's pixels: {"video": out, "image": out} (keys present
    only for modalities the batch has). Gradients flow when the tower is trainable.

    A frozen tower's features are kept on the batch's VideoTensors / ImageTensors the first time
    and reused by every later encode of the same items (rollout's prefill encodes them; the old /
    reference log-probs and the update of that step reuse them). The reference policy's tower is
    the policy's frozen tower copied, so its features are the same. A trained tower always runs.
    """
    base = unwrap(model)
    outputs: dict[str, Any] = {}
    # A frozen tower has nothing upstream to train: without the graph, backward and activation
    # checkpointing do not run through it again (its windowed attention is hundreds of kernels).
    trainable = any(p.requires_grad for p in vision_tower(model).parameters())
    with torch.set_grad_enabled(torch.is_grad_enabled() and trainable):
        for key, (pixels_name, grid_name, items_name, method) in _MODALITIES.items():
            pixels, grid = getattr(batch, pixels_name), getattr(batch, grid_name)
            if pixels is None:
                continue
            items = getattr(batch, items_name)
            cacheable = not trainable and len(items) == grid.shape[0]
            if cacheable and all(item.features is not None for item in items):
                outputs[key] = join_item_outputs([item.features for item in items])
                continue
            outputs[key] = getattr(base.model, method)(pixels, grid, return_dict=True)
            if cacheable:
                for item, features in zip(items, item_outputs(outputs[key]), strict=True):
                    item.features = features
    return outputs


def shared_vision_outputs(model: nn.Module, batch: PromptBatch, group_size: int) -> dict[str, Any]:
    """Encode once per prompt, then repeat features for the G rows of each group."""
    encoded = encode_vision(model, batch)
    counts = {"video": batch.videos_per_prompt, "image": batch.images_per_prompt}
    return {key: expand_encoder_output(out, counts[key], group_size) for key, out in encoded.items()}


class VisionCallCounter:
    """Counts vision-tower forward calls, the items (videos/images) they encoded and their seconds.

    Use as a context manager: `with VisionCallCounter(model) as c: ...; c.calls, c.items, c.seconds`.
    """

    def __init__(self, model: nn.Module) -> None:
        self.tower = vision_tower(model)
        self.calls = 0
        self.items = 0
        self.seconds = 0.0
        self._started = 0.0
        self._handles: list = []

    def _before(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        self.calls += 1
        self.items += int(grid.shape[0]) if grid is not None else 0
        self._started = time.perf_counter()

    def _after(self, module: nn.Module, args: tuple, output: object) -> None:
        self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> VisionCallCounter:
        self._handles = [
            self.tower.register_forward_pre_hook(self._before, with_kwargs=True),
            self.tower.register_forward_hook(self._after),
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
