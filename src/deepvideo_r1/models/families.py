"""Model families (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): what differs between them, in one record each.

Everything family-specific lives here — the transformers classes, the patch size, the chat template,
the default system prompt, how a video placeholder expands (Qwen3-VL interleaves frame timestamps)
and whether the model takes `second_per_grid_ts`. Code elsewhere looks a family up by name or by
`config.model_type` and never branches on the name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import transformers

# Special tokens shared by the three families (the real Qwen tokenizers define all of them).
IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
VIDEO_PAD, IMAGE_PAD = "<|video_pad|>", "<|image_pad|>"
SPECIAL_TOKENS: tuple[str, ...] = (
    END_OF_TEXT,
    IM_START,
    IM_END,
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    VISION_START,
    VISION_END,
    "<|vision_pad|>",
    IMAGE_PAD,
    VIDEO_PAD,
)
# Reasoning tags: ordinary added tokens (kept when decoding), one id each so rewards see them intact.
TAG_TOKENS: tuple[str, ...] = ("<think>", "</think>", "<answer>", "</answer>")

_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' and default_system %}"
    "<|im_start|>system\n{{ default_system }}<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_template(default_system: str | None) -> str:
    """The family's chat template (Jinja), with its default system prompt baked in."""
    prefix = "{% set default_system = " + repr(default_system or "") + " %}"
    return prefix + _CHAT_TEMPLATE


def plain_video_placeholder(n_tokens_per_frame: int, grid_t: int, frame_times: Sequence[float]) -> str:
    """Qwen2/2.5-VL: <|vision_start|> + grid_t·(grid_h·grid_w/merge²) <|video_pad|> + <|vision_end|>."""
    del frame_times  # no timestamps in the text for these families
    return VISION_START + VIDEO_PAD * (n_tokens_per_frame * grid_t) + VISION_END


def timestamped_video_placeholder(n_tokens_per_frame: int, grid_t: int, frame_times: Sequence[float]) -> str:
    """Qwen3-VL: per temporal patch, "<t seconds>" + <|vision_start|> + pads + <|vision_end|>, where t
    is the mean time of the patch's frames (as the released Qwen3-VL processor writes it: the
    template's <|vision_start|><|video_pad|><|vision_end|> is replaced as a whole)."""
    parts = []
    for t in range(grid_t):
        parts.append(
            f"<{frame_times[t]:.1f} seconds>{VISION_START}{VIDEO_PAD * n_tokens_per_frame}{VISION_END}"
        )
    return "".join(parts)


@dataclass(frozen=True)
class ModelFamily:
    """What one model family needs: classes, vision geometry, prompt format.

    `video_placeholder(tokens_per_frame, grid_t, patch_times)` returns the text that replaces the chat
    template's `<|vision_start|><|video_pad|><|vision_end|>`; `patch_times` holds one time (s) per
    temporal patch.
    """

    name: str
    model_type: str
    model_class: str
    config_class: str
    patch_size: int
    temporal_patch_size: int
    merge_size: int
    default_system: str | None
    uses_second_per_grid_ts: bool
    video_placeholder: Callable[[int, int, Sequence[float]], str]

    def model_cls(self) -> type:
        """The transformers ForConditionalGeneration class."""
        return getattr(transformers, self.model_class)

    def config_cls(self) -> type:
        """The transformers config class."""
        return getattr(transformers, self.config_class)

    def chat_template(self) -> str:
        """Chat template used when a tokenizer brings none (and by the tiny preset)."""
        return chat_template(self.default_system)


FAMILIES: dict[str, ModelFamily] = {
    f.name: f
    for f in (
        ModelFamily(
            name="qwen2-vl",
            model_type="qwen2_vl",
            model_class="Qwen2VLForConditionalGeneration",
            config_class="Qwen2VLConfig",
            patch_size=14,
            temporal_patch_size=2,
            merge_size=2,
            default_system="You are a helpful assistant.",
            uses_second_per_grid_ts=False,
            video_placeholder=plain_video_placeholder,
        ),
        ModelFamily(
            name="qwen2.5-vl",
            model_type="qwen2_5_vl",
            model_class="Qwen2_5_VLForConditionalGeneration",
            config_class="Qwen2_5_VLConfig",
            patch_size=14,
            temporal_patch_size=2,
            merge_size=2,
            default_system="You are a helpful assistant.",
            uses_second_per_grid_ts=True,
            video_placeholder=plain_video_placeholder,
        ),
        ModelFamily(
            name="qwen3-vl",
            model_type="qwen3_vl",
            model_class="Qwen3VLForConditionalGeneration",
            config_class="Qwen3VLConfig",
            patch_size=16,
            temporal_patch_size=2,
            merge_size=2,
            default_system=None,
            uses_second_per_grid_ts=False,
            video_placeholder=timestamped_video_placeholder,
        ),
    )
}


class UnknownFamilyError(ValueError):
    """A family name or model_type that no registered family has."""


def get_family(name: str) -> ModelFamily:
    """Look a family up by name ("qwen2.5-vl") or by config.model_type ("qwen2_5_vl")."""
    for family in FAMILIES.values():
        if name in (family.name, family.model_type):
            return family
    known = ", ".join(f"{f.name} ({f.model_type})" for f in FAMILIES.values())
    raise UnknownFamilyError(f"unknown model family {name!r}; known: {known}")
