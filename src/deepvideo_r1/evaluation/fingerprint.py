"""What a prediction depends on, as short hashes: the sample, the prompt, the model, the settings.

A resumed evaluation reuses a record only when all of them are equal, so a predictions file left
by another model, another `max_new_tokens`, other video settings or other data is never reported
as this evaluation's result.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from deepvideo_r1.artifacts import differing_keys
from deepvideo_r1.data.prompts import build_question_text
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.models.adapter import ModelAdapter
from deepvideo_r1.models.media import MediaLoader

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


def _bit_words(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes as the widest integers that tile them (int64 when the size allows):
    integer sums are exact and order-independent, and an int64 sum runs at memory speed
    (0.05 s for 200 MB on one CPU core, against 2.9 s for int16 widened to int64)."""
    raw = tensor.detach().contiguous().view(-1).view(torch.uint8)
    for size, dtype in ((8, torch.int64), (4, torch.int32), (2, torch.int16)):
        if raw.numel() % size == 0:
            return raw.view(dtype)
    return raw


@torch.no_grad()
def weights_fingerprint(model: nn.Module) -> str:
    """Hash of every parameter and buffer: name, dtype, shape, the sum (mod 2^64) of its bytes read
    as integers, and 16 evenly spaced words.

    Why not sha256 of all bytes: that copies every weight to the host and hashes at ~0.3-1.5 GB/s
    (10-50 s for a 7B model) each time an evaluation starts; the integer sum is one reduction on
    the device (8x faster than sha256 on one CPU core: benchmarks/eval_fingerprint.py), exact, so
    the same on CPU and GPU for any thread count. Changing any single word changes the sum; an
    update would have to move words by amounts that cancel exactly to go unseen, and SFT or RL
    steps move every trainable weight.
    """
    from torch.distributed.tensor import DTensor

    h = hashlib.sha256()
    # Parameters and buffers, not state_dict(): FSDP2's state-dict hooks would swap the sharded
    # parameters back in while the policy is gathered for generation.
    for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
        if isinstance(tensor, DTensor):
            # Sharded and not gathered: this rank's shard (no collective; ranks may evaluate
            # unequal shares).
            tensor = tensor.to_local()
        words = _bit_words(tensor)
        total = int(words.sum()) if words.dtype == torch.int64 else int(words.sum(dtype=torch.int64))
        idx = torch.linspace(0, max(words.numel() - 1, 0), min(words.numel(), _SAMPLED_VALUES))
        picked = words[idx.long().to(words.device)].tolist()
        h.update(json.dumps([name, str(tensor.dtype), list(tensor.shape), total, picked]).encode())
    return h.hexdigest()[:16]


def prediction_key_settings(
    model: nn.Module, adapter: ModelAdapter, media: MediaLoader, max_new_tokens: int, generation: dict
) -> dict:
    """The settings every prediction of one evaluation shares (the per-sample prompt is separate);
    `generation`: the greedy decoding options that apply (HFRolloutEngine.generation_options)."""
    return {
        "model_weights": weights_fingerprint(model),
        "model_family": adapter.family.name,
        "max_new_tokens": max_new_tokens,
        "generation": generation,
        "pixel_budget": asdict(adapter.budget),
        "video": media.video.model_dump(mode="json", exclude={"cache_dir"}),
        "patch_factor": media.factor,
    }


def record_key(settings: dict, prompt: str) -> str:
    """The key a prediction record carries: shared settings + this sample's prompt fingerprint."""
    return short_hash([settings, prompt])


def settings_differences(saved: dict, current: dict) -> list[str]:
    """Settings whose values differ, as sorted dotted keys, e.g. ["max_new_tokens", "video.num_frames"]."""
    return list(differing_keys(saved, current))
