"""What a prediction depends on, as short hashes: the sample, the prompt, the model, the settings.

A resumed evaluation reuses a record only when all of them are equal, so a predictions file left
by another model, another `max_new_tokens`, other video settings or other data is never reported
as this evaluation's result.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from deepvideo_r1.data.prompts import build_question_text
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.models.adapter import ModelAdapter
from deepvideo_r1.models.media import MediaLoader

# Integer views of each element size: sums of bit patterns are exact and order-independent.
_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_SAMPLED_VALUES = 16


def short_hash(obj: Any) -> str:
    """First 16 hex digits of sha256 over the JSON form of `obj`."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=list).encode()).hexdigest()[:16]


def sample_fingerprint(sample: Sample) -> str:
    """Short hash of what a prediction depends on: question, options, answer, spans, video files.

    Videos count by file name, size and clip bounds (not absolute path), so a moved run
    directory still resumes; re-generated data with the same ids does not.
    """
    videos = []
    for v in sample.videos:
        size = os.path.getsize(v.path) if os.path.exists(v.path) else None
        videos.append([os.path.basename(v.path), size, v.start, v.end])
    key = [sample.question, sample.problem_type, sample.answer, sample.options, sample.timestamps, videos]
    key.append([os.path.basename(i) for i in sample.images])
    return hashlib.sha256(json.dumps(key, default=list).encode()).hexdigest()[:16]


def prompt_fingerprint(adapter: ModelAdapter, sample: Sample) -> str:
    """Hash of the prompt's token ids before vision expansion: the per-type wording, the chat
    template and the tokenizer all show up in them (text only, no media decoded)."""
    text = adapter.render_chat(
        build_question_text(sample), has_video=bool(sample.videos), has_image=bool(sample.images)
    )
    return short_hash(adapter.tokenizer(text, add_special_tokens=False)["input_ids"])


@torch.no_grad()
def weights_fingerprint(model: nn.Module) -> str:
    """Hash of every state-dict tensor: name, dtype, shape, the exact int64 sum of its bit
    patterns and 16 evenly spaced elements.

    Why not sha256 of all bytes: that is ~10 s and a device-to-host copy of every weight for a 7B
    model, each time an evaluation starts. The bit-pattern sum is one exact integer reduction
    on the device (same value on CPU and GPU, for any thread count); an update that moves any
    element changes it unless the bit changes cancel exactly, and SFT or RL steps move every
    trainable weight.
    """
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().contiguous().view(-1)
        bits = flat.view(_INT_VIEW[flat.element_size()]) if flat.numel() else flat
        total = int(bits.sum(dtype=torch.int64)) if flat.numel() else 0
        idx = torch.linspace(0, max(flat.numel() - 1, 0), min(flat.numel(), _SAMPLED_VALUES))
        picked = bits[idx.long().to(bits.device)].tolist()
        h.update(json.dumps([name, str(tensor.dtype), list(tensor.shape), total, picked]).encode())
    return h.hexdigest()[:16]


def eval_settings(model: nn.Module, adapter: ModelAdapter, media: MediaLoader, max_new_tokens: int) -> dict:
    """The settings every prediction of one evaluation shares (the per-sample prompt is separate)."""
    return {
        "model_weights": weights_fingerprint(model),
        "model_family": adapter.family.name,
        "max_new_tokens": max_new_tokens,
        "pixel_budget": asdict(adapter.budget),
        "video": media.video.model_dump(mode="json", exclude={"cache_dir"}),
        "patch_factor": media.factor,
    }


def record_key(settings: dict, prompt: str) -> str:
    """The key a prediction record carries: shared settings + this sample's prompt fingerprint."""
    return short_hash([settings, prompt])


def settings_differences(saved: dict, current: dict) -> list[str]:
    """Top-level settings whose values differ (sorted), e.g. ["max_new_tokens", "model_weights"]."""
    return sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))
