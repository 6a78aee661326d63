"""One interface over the Qwen-VL families: prompt building, vision tensors, batching, loading.

Prompts are built without transformers' processors (they need torchvision): the tokenizer's chat
template (or the family's) renders the messages, then each `<|vision_start|><|video_pad|><|vision_end|>`
is expanded to grid_t·grid_h·grid_w / merge² placeholder tokens (Qwen3-VL: per temporal patch, with
its timestamp), and the pixels come from `deepvideo_r1.video`'s torchvision-free preprocessing.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from torch import nn
from transformers import AutoConfig, AutoTokenizer

from deepvideo_r1.data.sample import Sample
from deepvideo_r1.models.batch import (
    ImageTensors,
    PromptBatch,
    PromptInputs,
    SequenceBatch,
    VideoTensors,
    collate_prompts,
    join_completions,
)
from deepvideo_r1.models.families import (
    IM_END,
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    ModelFamily,
    get_family,
)
from deepvideo_r1.models.rope import use_reference_rope
from deepvideo_r1.models.vision_attention import use_varlen_vision_attention

logger = logging.getLogger(__name__)


class ModelLoadError(ValueError):
    """A model directory that cannot be loaded (missing, or not a known Qwen-VL family)."""


@dataclass(frozen=True)
class PixelBudget:
    """Per-frame pixel range for smart_resize (Qwen's defaults: video 128·28² … 768·28²) and an
    optional per-video budget (qwen-vl-utils' total_pixels)."""

    video_min_pixels: int = 128 * 28 * 28
    video_max_pixels: int = 768 * 28 * 28
    video_total_pixels: int | None = None
    image_min_pixels: int = 4 * 28 * 28
    image_max_pixels: int = 1280 * 28 * 28


def patch_times(frame_times: Sequence[float], temporal_patch_size: int) -> list[float]:
    """Mean time of each temporal patch's frames; the last patch repeats its final frame if short."""
    times = list(frame_times)
    while len(times) % temporal_patch_size:
        times.append(times[-1])
    return [
        float(np.mean(times[i : i + temporal_patch_size])) for i in range(0, len(times), temporal_patch_size)
    ]


class ModelAdapter:
    """Builds prompts and batches for one model family and tokenizer.

    Token ids (pad, EOS, vision placeholders) come from the tokenizer; `stop_token_ids` are the ids
    that end a completion (<|im_end|> and the tokenizer's eos).
    """

    def __init__(self, family: ModelFamily, tokenizer: Any, budget: PixelBudget | None = None) -> None:
        self.family = family
        self.tokenizer = tokenizer
        self.budget = budget or PixelBudget()
        self.video_token_id = int(tokenizer.convert_tokens_to_ids(VIDEO_PAD))
        self.image_token_id = int(tokenizer.convert_tokens_to_ids(IMAGE_PAD))
        self.vision_token_ids = [
            int(tokenizer.convert_tokens_to_ids(t)) for t in (VIDEO_PAD, IMAGE_PAD, VISION_START, VISION_END)
        ]
        self.pad_id = int(
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        )
        stops = {int(tokenizer.convert_tokens_to_ids(IM_END))}
        if tokenizer.eos_token_id is not None:
            stops.add(int(tokenizer.eos_token_id))
        self.stop_token_ids = sorted(stops)

    # ---- vision tensors -------------------------------------------------------------------------
    def prepare_video(
        self,
        frames: np.ndarray,
        *,
        sample_fps: float | None = None,
        frame_times: Sequence[float] | None = None,
        frame_transform: Callable | None = None,
    ) -> VideoTensors:
        """frames uint8 [F, H, W, 3] -> VideoTensors. second_per_grid_ts = temporal_patch / sample_fps
        (1.0 s per patch, transformers' default, when sample_fps is unknown)."""
        from deepvideo_r1.video import qwen_video_inputs

        fam = self.family
        out = qwen_video_inputs(
            frames,
            self.budget.video_min_pixels,
            self.budget.video_max_pixels,
            patch_size=fam.patch_size,
            temporal_patch_size=fam.temporal_patch_size,
            merge_size=fam.merge_size,
            transform=frame_transform,
            total_pixels=self.budget.video_total_pixels,
            sample_fps=sample_fps,
        )
        seconds = out["second_per_grid_ts"] if sample_fps else torch.tensor([1.0])
        if frame_times is None:
            step = 1.0 / sample_fps if sample_fps else 1.0
            frame_times = [i * step for i in range(len(frames))]
        return VideoTensors(
            pixel_values_videos=out["pixel_values_videos"],
            video_grid_thw=out["video_grid_thw"].reshape(1, 3).long(),
            second_per_grid_ts=seconds.to(torch.float32),
            patch_times=patch_times(frame_times, fam.temporal_patch_size),
        )

    def prepare_image(self, image: np.ndarray) -> ImageTensors:
        """image uint8 [H, W, 3] -> ImageTensors."""
        from deepvideo_r1.video import qwen_image_inputs

        fam = self.family
        out = qwen_image_inputs(
            image,
            self.budget.image_min_pixels,
            self.budget.image_max_pixels,
            patch_size=fam.patch_size,
            temporal_patch_size=fam.temporal_patch_size,
            merge_size=fam.merge_size,
        )
        return ImageTensors(
            pixel_values=out["pixel_values"], image_grid_thw=out["image_grid_thw"].reshape(1, 3).long()
        )

    # ---- prompts --------------------------------------------------------------------------------
    def render_chat(self, question_text: str, *, has_video: bool, has_image: bool) -> str:
        """The chat-template text with one unexpanded placeholder per visual input (video first)."""
        content: list[dict[str, str]] = []
        if has_video:
            content.append({"type": "video"})
        if has_image:
            content.append({"type": "image"})
        content.append({"type": "text", "text": question_text})
        messages = [{"role": "user", "content": content}]
        template = getattr(self.tokenizer, "chat_template", None) or self.family.chat_template()
        return self.tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=True
        )

    def expand_placeholders(self, text: str, video: VideoTensors | None, image: ImageTensors | None) -> str:
        """Replace each marker run by grid_t·grid_h·grid_w / merge² placeholder tokens."""
        merge2 = self.family.merge_size**2
        if video is not None:
            t, h, w = (int(x) for x in video.video_grid_thw[0])
            marker = VISION_START + VIDEO_PAD + VISION_END
            text = text.replace(
                marker, self.family.video_placeholder(h * w // merge2, t, video.patch_times), 1
            )
        if image is not None:
            n = int(image.image_grid_thw[0].prod()) // merge2
            text = text.replace(IMAGE_PAD, IMAGE_PAD * n, 1)
        return text

    def build_prompt(
        self, question_text: str, video: VideoTensors | None = None, image: ImageTensors | None = None
    ) -> PromptInputs:
        """Question text + prepared vision tensors -> PromptInputs (input_ids [L])."""
        text = self.render_chat(question_text, has_video=video is not None, has_image=image is not None)
        text = self.expand_placeholders(text, video, image)
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        return PromptInputs(input_ids=ids.long(), video=video, image=image, text=text)

    def encode_prompt(
        self,
        sample: Sample,
        frames: np.ndarray | None,
        image: np.ndarray | None,
        *,
        hint: str | None = None,
        sample_fps: float | None = None,
        frame_times: Sequence[float] | None = None,
        frame_transform: Callable | None = None,
    ) -> PromptInputs:
        """A sample (+ decoded frames [F, H, W, 3] uint8 and/or image [H, W, 3]) -> PromptInputs.

        The question text (question, options, instruction, optional hint) comes from
        `deepvideo_r1.data.prompts.build_question_text`; `frame_transform` (e.g. difficulty noise)
        is applied to frames scaled to [0, 1] before normalisation by the video preprocessing.
        """
        from deepvideo_r1.data.prompts import build_question_text

        video_t = (
            self.prepare_video(
                frames, sample_fps=sample_fps, frame_times=frame_times, frame_transform=frame_transform
            )
            if frames is not None
            else None
        )
        image_t = self.prepare_image(image) if image is not None else None
        return self.build_prompt(build_question_text(sample, hint=hint), video_t, image_t)

    def encode_completion(self, text: str) -> torch.Tensor:
        """A target completion's ids [T] ending with <|im_end|> (for SFT)."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return torch.tensor([*ids, self.tokenizer.convert_tokens_to_ids(IM_END)], dtype=torch.long)

    # ---- batches --------------------------------------------------------------------------------
    def collate(self, prompts: list[PromptInputs]) -> PromptBatch:
        """Left-padded PromptBatch of N prompts (second_per_grid_ts dropped for families without it)."""
        batch = collate_prompts(prompts, self.pad_id, self.image_token_id, self.video_token_id)
        if not self.family.uses_second_per_grid_ts:
            batch.second_per_grid_ts = None
        return batch

    def sft_batch(self, prompts: list[PromptInputs], completions: list[torch.Tensor]) -> SequenceBatch:
        """Prompt + target completion per row (G = 1), right-padded completions, labels -100 on the
        prompt and padding: `model(**sft_inputs(batch), labels=batch.labels)` gives the SFT loss."""
        width = max(int(c.numel()) for c in completions)
        ids = torch.full((len(completions), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, c in enumerate(completions):
            ids[row, : c.numel()] = c
            mask[row, : c.numel()] = 1
        return join_completions(self.collate(prompts), ids, mask, group_size=1)

    def decode(self, completion_ids: torch.Tensor, completion_mask: torch.Tensor) -> list[str]:
        """Completion text per row: tokens under the mask, special tokens dropped."""
        return [
            self.tokenizer.decode(row[m.bool()].tolist(), skip_special_tokens=True)
            for row, m in zip(completion_ids, completion_mask, strict=True)
        ]


def sft_inputs(batch: SequenceBatch) -> dict[str, torch.Tensor]:
    """Keyword arguments for `model(**...)` on an SFT SequenceBatch (G = 1, pixels from the prompts)."""
    return {
        "input_ids": batch.input_ids,
        "attention_mask": batch.attention_mask,
        **batch.prompts.pixel_kwargs(),
        **{k: v for k, v in batch.prompts.vision_kwargs().items() if k != "mm_token_type_ids"},
        "mm_token_type_ids": batch.mm_token_type_ids,
    }


def default_dtype_and_attention(device: str | torch.device) -> tuple[torch.dtype, str]:
    """fp32 + sdpa on CPU; bf16 + flash_attention_2 on CUDA when flash-attn is installed, else sdpa."""
    if torch.device(device).type == "cuda":
        has_flash = importlib.util.find_spec("flash_attn") is not None
        return torch.bfloat16, "flash_attention_2" if has_flash else "sdpa"
    return torch.float32, "sdpa"


def check_loading_info(path: Path, info: dict) -> None:
    """Raise ModelLoadError naming the weights `from_pretrained` could not match: missing ones would
    stay randomly initialised (a partly random model trains and scores silently), unexpected or
    mis-shaped ones are dropped."""
    problems = []
    kinds = (
        ("missing_keys", "missing"),
        ("unexpected_keys", "unexpected"),
        ("mismatched_keys", "of another shape"),
    )
    for key, what in kinds:
        names = sorted(k if isinstance(k, str) else k[0] for k in info.get(key) or ())
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            problems.append(f"{len(names)} weights {what} ({shown})")
    if problems:
        raise ModelLoadError(
            f"{path}: the weights do not match the model's architecture: {'; '.join(problems)}; "
            "the model directory is damaged or holds another model"
        )


def load_policy(
    model_dir: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
    budget: PixelBudget | None = None,
) -> tuple[nn.Module, ModelAdapter]:
    """Load a local Qwen-VL directory (tiny or real): (model on `device`, its ModelAdapter)."""
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path}: no config.json — not a model directory")
    try:
        family = get_family(AutoConfig.from_pretrained(path).model_type)
    except ValueError as e:
        raise ModelLoadError(f"{path}: {e}") from e
    auto_dtype, auto_attn = default_dtype_and_attention(device)
    try:
        model, info = family.model_cls().from_pretrained(
            path,
            dtype=dtype or auto_dtype,
            attn_implementation=attn_implementation or auto_attn,
            output_loading_info=True,
        )
    except (OSError, SafetensorError) as e:  # a damaged weights file: header too large, truncated, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"{path}: the weights cannot be read ({first})") from e
    check_loading_info(path, info)
    use_varlen_vision_attention(model)  # the windowed vision attention in one call per block
    use_reference_rope(model)  # Qwen's 3-D rope rule whatever transformers is installed (models.rope)
    tokenizer = AutoTokenizer.from_pretrained(path)
    logger.info("loaded %s (%s) from %s", family.name, model.dtype, path)
    return model.to(device), ModelAdapter(family, tokenizer, budget)
