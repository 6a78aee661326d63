"""A PromptBatch as vLLM requests: the same tokens, pixels, grids and rope positions our model sees.

Each prompt goes as token ids with one placeholder per vision item (vLLM expands it from the grid
its processor computes) plus that item's frames. The frames are recovered from the batch's own
pixel values — un-patchified and de-normalised to [0, 255] floats at the processed resolution — so
whatever our preprocessing did (resize, frame sampling, difficulty noise) is what vLLM encodes, and
its processor, told not to resize, only normalises and patchifies them again. A video carries
fps = temporal_patch / second_per_grid_ts, so vLLM's processor derives our second_per_grid_ts.

Embedding input (our vision features as `video_embeds`) was the alternative; vLLM 0.32 drops
`second_per_grid_ts` from embedding inputs (its Qwen2-VL embedding field config has no such field),
which would number a video's temporal positions with 1 s per patch, so it is not used.
"""

from __future__ import annotations

import torch

from deepvideo_r1.models.batch import PromptBatch
from deepvideo_r1.video.qwen import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

# Inverse of video.qwen.patchify's permute(0, 3, 6, 4, 7, 2, 1, 5, 8).
_UNPATCH = (0, 6, 5, 1, 3, 7, 2, 4, 8)


def unpatchify(
    flat: torch.Tensor, grid: tuple[int, int, int], patch_size: int, temporal_patch_size: int, merge_size: int
) -> torch.Tensor:
    """[gt·gh·gw, C·tps·p·p] normalised patches -> frames [gt·tps, H, W, C] as floats in [0, 255]."""
    gt, gh, gw = grid
    m, p, tps = merge_size, patch_size, temporal_patch_size
    channels = flat.shape[1] // (tps * p * p)
    x = flat.float().reshape(gt, gh // m, gw // m, m, m, channels, tps, p, p).permute(*_UNPATCH)
    x = x.reshape(gt * tps, channels, gh * p, gw * p)
    mean = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)
    return ((x * std + mean) * 255.0).permute(0, 2, 3, 1).contiguous()


def collapse_placeholders(ids: list[int], placeholder_ids: set[int]) -> list[int]:
    """Each run of one placeholder id -> a single placeholder (vLLM expands it again)."""
    out: list[int] = []
    for tok in ids:
        if tok in placeholder_ids and out and out[-1] == tok:
            continue
        out.append(tok)
    return out


def _split(values: torch.Tensor | None, grids: torch.Tensor | None) -> list[torch.Tensor]:
    if values is None or grids is None:
        return []
    return list(torch.split(values, [int(g.prod()) for g in grids]))


def _video_item(frames: torch.Tensor, seconds: float, temporal_patch_size: int) -> tuple:
    fps = temporal_patch_size / seconds
    count = int(frames.shape[0])
    meta = {
        "fps": fps,
        "duration": count / fps,
        "total_num_frames": count,
        "frames_indices": list(range(count)),
        "do_sample_frames": False,
    }
    return frames.numpy(), meta


def build_requests(
    batch: PromptBatch,
    *,
    image_token_id: int,
    video_token_id: int,
    patch_size: int,
    temporal_patch_size: int,
    merge_size: int,
) -> list[dict]:
    """One vLLM prompt dict per prompt of `batch` (token ids, multi_modal_data, processor kwargs)."""
    geometry = (patch_size, temporal_patch_size, merge_size)
    videos = _split(batch.pixel_values_videos, batch.video_grid_thw)
    images = _split(batch.pixel_values, batch.image_grid_thw)
    seconds = batch.second_per_grid_ts.tolist() if batch.second_per_grid_ts is not None else None
    v = i = 0
    requests = []
    for n in range(batch.num_prompts):
        ids = batch.input_ids[n][batch.attention_mask[n].bool()].tolist()
        data: dict = {}
        if batch.videos_per_prompt[n]:
            grid = tuple(int(x) for x in batch.video_grid_thw[v])
            frames = unpatchify(videos[v], grid, *geometry)
            # without second_per_grid_ts (Qwen2-VL, Qwen3-VL) the family numbers patches 1 apart
            data["video"] = _video_item(frames, seconds[v] if seconds else 1.0, temporal_patch_size)
            v += 1
        if batch.images_per_prompt[n]:
            grid = tuple(int(x) for x in batch.image_grid_thw[i])
            data["image"] = unpatchify(images[i], grid, *geometry)[0].numpy()  # tps copies of one image
            i += 1
        request = {"prompt_token_ids": collapse_placeholders(ids, {image_token_id, video_token_id})}
        if data:
            request["multi_modal_data"] = data
            request["mm_processor_kwargs"] = {"do_resize": False}
        requests.append(request)
    return requests
