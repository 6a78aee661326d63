"""Complete Hugging Face model directories: weights, tokenizer and everything the base directory had.

`save_hf_model` writes what `AutoModelForImageTextToText`, `AutoTokenizer`, `AutoImageProcessor`
and (with torchvision) `AutoProcessor` load: config.json, model.safetensors (or, LoRA kept, a peft
adapter), tokenizer files, chat template, generation_config.json, and the processor configs
(preprocessor_config.json, video_preprocessor_config.json, processor_config.json) copied from the
base model directory. `export_checkpoint` does the same for an RL checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from torch import nn

from deepvideo_r1.models.families import ModelFamily
from deepvideo_r1.models.precision import saved_state
from deepvideo_r1.models.trainable import is_lora
from deepvideo_r1.video.qwen import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

SIDE_FILES = (
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "processor_config.json",
    "chat_template.json",
    "chat_template.jinja",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
)
"""Files of a base model directory a saved model keeps (when saving did not write them itself)."""

_PROCESSOR_CLASSES = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor"}
_VIDEO_PROCESSOR_CLASSES = {"qwen3_vl": "Qwen3VLVideoProcessor"}
# transformers' processor defaults for Qwen-VL: 56·56 to 28·28·1280 pixels per image
MIN_PIXELS, MAX_PIXELS = 56 * 56, 28 * 28 * 1280


class ExportError(ValueError):
    """A checkpoint or base model directory that cannot be exported."""


def processor_configs(family: ModelFamily) -> dict[str, dict]:
    """preprocessor_config.json and video_preprocessor_config.json for a Qwen-VL family, with its
    patch and merge sizes and the normalisation the project's media pipeline uses."""
    processor = _PROCESSOR_CLASSES.get(family.model_type, "Qwen3VLProcessor")
    common = {
        "patch_size": family.patch_size,
        "temporal_patch_size": family.temporal_patch_size,
        "merge_size": family.merge_size,
        "image_mean": list(OPENAI_CLIP_MEAN),
        "image_std": list(OPENAI_CLIP_STD),
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "do_convert_rgb": True,
        "processor_class": processor,
    }
    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    video_type = _VIDEO_PROCESSOR_CLASSES.get(family.model_type, "Qwen2VLVideoProcessor")
    return {
        "preprocessor_config.json": {
            "image_processor_type": "Qwen2VLImageProcessor", "size": size,
            "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, **common,
        },
        "video_preprocessor_config.json": {"video_processor_type": video_type, "size": size, **common},
    }  # fmt: skip


def write_processor_configs(out: str | Path, family: ModelFamily) -> list[Path]:
    """Write the family's processor configs into `out` (the tiny preset has no base to copy from)."""
    written = []
    for name, content in processor_configs(family).items():
        path = Path(out) / name
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def copy_side_files(base_dir: str | Path, out: str | Path) -> list[str]:
    """Copy the SIDE_FILES that `base_dir` has and `out` lacks; returns their names."""
    base_dir, out = Path(base_dir), Path(out)
    copied = []
    for name in SIDE_FILES:
        if (base_dir / name).is_file() and not (out / name).exists():
            shutil.copy2(base_dir / name, out / name)
            copied.append(name)
    return copied


def save_hf_model(
    model: nn.Module,
    tokenizer,
    out: str | Path,
    *,
    base_dir: str | Path | None = None,
    merge_lora: bool = True,
    state_dict: dict | None = None,
) -> Path:
    """save_pretrained of the model (LoRA merged, or kept as a peft adapter) and tokenizer into
    `out`, then the base directory's remaining files. Merging changes `model` in place.
    `state_dict`: the full weights to write instead of the model's own (gathered from shards).
    A model with fp32 master weights is written in its compute dtype (models.precision)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    to_save = model.merge_and_unload() if is_lora(model) and merge_lora else model
    # fp32 master weights are written in the dtype the model computes in (models.precision)
    state_dict = saved_state(to_save, state_dict) or state_dict
    to_save.save_pretrained(out, state_dict=state_dict)
    tokenizer.save_pretrained(out)
    if base_dir is not None:
        copy_side_files(base_dir, out)
    return out
