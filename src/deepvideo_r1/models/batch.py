"""Typed containers for prompts and sequences, and the functions that batch them.

Shape vocabulary: N prompts, G completions per prompt, B = N·G rows (group by group), L prompt
length, T completion length, P video patches, Q image patches, D = 3·temporal_patch·patch².
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch


@dataclass
class VideoTensors:
    """One video, preprocessed. pixel_values_videos [P, D]; video_grid_thw [1, 3];
    second_per_grid_ts [1] (seconds per temporal patch = temporal_patch_size / sample_fps);
    patch_times: the mean time (s) of each temporal patch (Qwen3-VL writes them into the prompt)."""

    pixel_values_videos: torch.Tensor
    video_grid_thw: torch.Tensor
    second_per_grid_ts: torch.Tensor
    patch_times: list[float]
    features: Any = field(default=None, repr=False, compare=False)
    """A frozen vision tower's output for this video, kept by the first encode (models.vision)."""


@dataclass
class ImageTensors:
    """One image, preprocessed. pixel_values [Q, D]; image_grid_thw [1, 3]."""

    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor
    features: Any = field(default=None, repr=False, compare=False)
    """A frozen vision tower's output for this image, kept by the first encode (models.vision)."""


@dataclass
class PromptInputs:
    """One tokenised prompt with its vision tensors (any may be None). input_ids [L]."""

    input_ids: torch.Tensor
    video: VideoTensors | None = None
    image: ImageTensors | None = None
    text: str = ""


@dataclass
class PromptBatch:
    """N left-padded prompts and their concatenated vision tensors.

    input_ids, attention_mask, mm_token_type_ids: [N, L] (0 text, 1 image, 2 video);
    pixel_values_videos [ΣP, D], video_grid_thw [V, 3], second_per_grid_ts [V];
    pixel_values [ΣQ, D], image_grid_thw [I, 3]; videos_per_prompt / images_per_prompt: [N] counts
    (0 or 1 each) so vision outputs can be mapped back to their prompts; video_items / image_items:
    the VideoTensors / ImageTensors the pixels came from, in order (where encoded features are kept).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mm_token_type_ids: torch.Tensor
    videos_per_prompt: list[int]
    images_per_prompt: list[int]
    pixel_values_videos: torch.Tensor | None = None
    video_grid_thw: torch.Tensor | None = None
    second_per_grid_ts: torch.Tensor | None = None
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None
    video_items: list[VideoTensors] = field(default_factory=list, repr=False)
    image_items: list[ImageTensors] = field(default_factory=list, repr=False)

    @property
    def num_prompts(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: torch.device | str) -> PromptBatch:
        """A copy with every tensor moved to `device`."""
        moved = {
            f.name: v.to(device) if isinstance(v := getattr(self, f.name), torch.Tensor) else v
            for f in fields(self)
        }
        return PromptBatch(**moved)

    def vision_kwargs(self) -> dict[str, torch.Tensor]:
        """Grid/time tensors the model's forward and get_rope_index read (never pixels)."""
        out = {"mm_token_type_ids": self.mm_token_type_ids}
        for key in ("video_grid_thw", "second_per_grid_ts", "image_grid_thw"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def pixel_kwargs(self) -> dict[str, torch.Tensor]:
        """The pixel tensors (for a forward that encodes vision itself)."""
        out = {}
        if self.pixel_values_videos is not None:
            out["pixel_values_videos"] = self.pixel_values_videos
        if self.pixel_values is not None:
            out["pixel_values"] = self.pixel_values
        return out


def mm_token_type_ids(input_ids: torch.Tensor, image_token_id: int, video_token_id: int) -> torch.Tensor:
    """0 for text, 1 for image placeholders, 2 for video placeholders; same shape as input_ids."""
    types = torch.zeros_like(input_ids, dtype=torch.int32)
    types[input_ids == image_token_id] = 1
    types[input_ids == video_token_id] = 2
    return types


def _cat_or_none(parts: list[torch.Tensor]) -> torch.Tensor | None:
    return torch.cat(parts, dim=0) if parts else None


def collate_prompts(
    prompts: list[PromptInputs], pad_id: int, image_token_id: int, video_token_id: int
) -> PromptBatch:
    """Left-pad N prompts to [N, L] and concatenate their vision tensors in prompt order."""
    length = max(int(p.input_ids.numel()) for p in prompts)
    ids = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, p in enumerate(prompts):
        n = int(p.input_ids.numel())
        ids[row, length - n :] = p.input_ids  # left padding: generation appends on the right
        mask[row, length - n :] = 1
    videos = [p.video for p in prompts if p.video is not None]
    images = [p.image for p in prompts if p.image is not None]
    return PromptBatch(
        input_ids=ids,
        attention_mask=mask,
        mm_token_type_ids=mm_token_type_ids(ids, image_token_id, video_token_id) * mask.to(torch.int32),
        videos_per_prompt=[int(p.video is not None) for p in prompts],
        images_per_prompt=[int(p.image is not None) for p in prompts],
        pixel_values_videos=_cat_or_none([v.pixel_values_videos for v in videos]),
        video_grid_thw=_cat_or_none([v.video_grid_thw for v in videos]),
        second_per_grid_ts=_cat_or_none([v.second_per_grid_ts for v in videos]),
        pixel_values=_cat_or_none([i.pixel_values for i in images]),
        image_grid_thw=_cat_or_none([i.image_grid_thw for i in images]),
        video_items=videos,
        image_items=images,
    )


def _repeat_items(x: torch.Tensor | None, sizes: list[int], counts: list[int], group_size: int):
    """Repeat each prompt's slice of `x` (sizes[i] rows per item, counts[n] items for prompt n) G times."""
    if x is None:
        return None
    pieces, start, item = [], 0, 0
    for count in counts:
        n_rows = sum(sizes[item : item + count])
        pieces += [x[start : start + n_rows]] * group_size
        start, item = start + n_rows, item + count
    return torch.cat(pieces, dim=0)


def repeat_prompts(batch: PromptBatch, group_size: int, *, with_pixels: bool) -> PromptBatch:
    """Each prompt repeated G times (rows n·G … n·G+G-1 are prompt n). Grids and times follow;
    pixels too only when `with_pixels` (the naive path that encodes every copy again)."""
    vid_rows = (batch.video_grid_thw.prod(-1).tolist()) if batch.video_grid_thw is not None else []
    img_rows = (batch.image_grid_thw.prod(-1).tolist()) if batch.image_grid_thw is not None else []
    ones_v, ones_i = [1] * len(vid_rows), [1] * len(img_rows)
    vcount, icount = batch.videos_per_prompt, batch.images_per_prompt
    return replace(
        batch,
        input_ids=batch.input_ids.repeat_interleave(group_size, dim=0),
        attention_mask=batch.attention_mask.repeat_interleave(group_size, dim=0),
        mm_token_type_ids=batch.mm_token_type_ids.repeat_interleave(group_size, dim=0),
        videos_per_prompt=[c for c in vcount for _ in range(group_size)],
        images_per_prompt=[c for c in icount for _ in range(group_size)],
        video_grid_thw=_repeat_items(batch.video_grid_thw, ones_v, vcount, group_size),
        second_per_grid_ts=_repeat_items(batch.second_per_grid_ts, ones_v, vcount, group_size),
        image_grid_thw=_repeat_items(batch.image_grid_thw, ones_i, icount, group_size),
        pixel_values_videos=_repeat_items(batch.pixel_values_videos, vid_rows, vcount, group_size)
        if with_pixels
        else None,
        pixel_values=_repeat_items(batch.pixel_values, img_rows, icount, group_size) if with_pixels else None,
    )


@dataclass
class SequenceBatch:
    """Prompts joined with their completions, for log-probs and SFT.

    prompts: the N prompts (unrepeated, with pixels); input_ids, attention_mask, mm_token_type_ids:
    [B, L+T] (prompt rows repeated G times, completion right-padded); labels [B, L+T] (-100 on the
    prompt and padding); completion_ids, completion_mask [B, T]; prompt_length L.
    """

    prompts: PromptBatch
    group_size: int
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mm_token_type_ids: torch.Tensor
    labels: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    prompt_length: int

    def to(self, device: torch.device | str) -> SequenceBatch:
        """A copy with every tensor (and the prompts') moved to `device`."""
        moved = {
            f.name: v.to(device) if isinstance(v := getattr(self, f.name), (torch.Tensor, PromptBatch)) else v
            for f in fields(self)
        }
        return SequenceBatch(**moved)


def join_completions(
    prompts: PromptBatch, completion_ids: torch.Tensor, completion_mask: torch.Tensor, group_size: int
) -> SequenceBatch:
    """[B, L] repeated prompts ⊕ [B, T] completions -> [B, L+T], labels masked on the prompt.

    completion_ids/mask: [B, T] with B = N·G, rows of prompt n at n·G … n·G+G-1.
    """
    n_rows = prompts.num_prompts * group_size
    if completion_ids.shape[0] != n_rows:
        raise ValueError(
            f"completion rows {completion_ids.shape[0]} != prompts {prompts.num_prompts} × G {group_size}"
        )
    rep_ids = prompts.input_ids.repeat_interleave(group_size, dim=0)
    rep_mask = prompts.attention_mask.repeat_interleave(group_size, dim=0)
    rep_types = prompts.mm_token_type_ids.repeat_interleave(group_size, dim=0)
    cmask = completion_mask.to(rep_mask.dtype)
    input_ids = torch.cat([rep_ids, completion_ids], dim=1)  # [B, L+T]
    labels = torch.full_like(input_ids, -100)
    labels[:, rep_ids.shape[1] :] = completion_ids.masked_fill(cmask == 0, -100)
    return SequenceBatch(
        prompts=prompts,
        group_size=group_size,
        input_ids=input_ids,
        attention_mask=torch.cat([rep_mask, cmask], dim=1),
        mm_token_type_ids=torch.cat([rep_types, torch.zeros_like(completion_ids, dtype=rep_types.dtype)], 1),
        labels=labels,
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        prompt_length=int(rep_ids.shape[1]),
    )
