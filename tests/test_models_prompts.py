"""Prompt construction and placeholder expansion for each family, checked by the models' own forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepvideo_r1.data.sample import Sample
from deepvideo_r1.models.adapter import patch_times, sft_inputs
from deepvideo_r1.models.families import FAMILIES, UnknownFamilyError, get_family
from helpers import random_image, random_video, tiny_policy

FAMILY_NAMES = list(FAMILIES)


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def policy(request, tmp_path_factory):
    return tiny_policy(tmp_path_factory.mktemp(request.param), request.param)


def test_placeholder_count_is_grid_over_merge_squared(policy):
    model, ad = policy
    video = random_video(ad.family, t=3, h=4, w=6)
    image = random_image(ad.family, h=2, w=4)
    prompt = ad.build_prompt("Which colour is the square?", video, image)
    # video: 3·4·6 / 2² = 18 tokens; image: 1·2·4 / 2² = 2 tokens
    assert int((prompt.input_ids == ad.video_token_id).sum()) == 18
    assert int((prompt.input_ids == ad.image_token_id).sum()) == 2
    batch = ad.collate([prompt])
    with torch.no_grad():
        out = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            **batch.pixel_kwargs(),
            **batch.vision_kwargs(),
        )
    assert out.logits.shape[:2] == batch.input_ids.shape


def test_count_mismatch_raises_inside_model(policy):
    model, ad = policy
    prompt = ad.build_prompt("How many shapes?", random_video(ad.family, t=2, h=4, w=4))
    ids = prompt.input_ids
    first_pad = int((ids == ad.video_token_id).nonzero()[0])
    short = torch.cat([ids[:first_pad], ids[first_pad + 1 :]])  # one placeholder fewer: 7 ≠ 8 features
    prompt.input_ids = short
    batch = ad.collate([prompt])
    pattern = r"(?i)video features and video tokens do not match"
    with pytest.raises((ValueError, RuntimeError), match=pattern), torch.no_grad():
        model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            **batch.pixel_kwargs(),
            **batch.vision_kwargs(),
        )


def test_chat_format_per_family(policy):
    _, ad = policy
    prompt = ad.build_prompt("Q?", random_video(ad.family, t=2, h=2, w=2, fps=2.0))
    text = prompt.text
    assert text.endswith("Q?<|im_end|>\n<|im_start|>assistant\n")
    has_system = ad.family.default_system is not None
    assert text.startswith("<|im_start|>system\n") == has_system
    if ad.family.name == "qwen3-vl":
        # 2 temporal patches of 1 s each (2 frames at 2 fps): times 0.25 and 1.25 from random_video
        assert "<0.2 seconds><|vision_start|><|video_pad|><|vision_end|><1.2 seconds>" in text
    else:
        assert "<|vision_start|>" + "<|video_pad|>" * 2 + "<|vision_end|>Q?" in text


def test_collate_left_pads_and_types(policy):
    _, ad = policy
    long_p = ad.build_prompt("A longer question about the red square moving left?", random_video(ad.family))
    short_p = ad.build_prompt("Q?")
    batch = ad.collate([long_p, short_p])
    n_long, n_short = long_p.input_ids.numel(), short_p.input_ids.numel()
    assert batch.input_ids.shape == (2, n_long)
    assert batch.attention_mask[1].tolist() == [0] * (n_long - n_short) + [1] * n_short
    assert torch.equal(batch.input_ids[1, n_long - n_short :], short_p.input_ids)
    assert int((batch.mm_token_type_ids[0] == 2).sum()) == 8  # 2·4·4/4 video tokens
    assert int(batch.mm_token_type_ids[1].sum()) == 0
    assert batch.videos_per_prompt == [1, 0]
    assert batch.video_grid_thw.tolist() == [[2, 4, 4]]
    assert (batch.second_per_grid_ts is not None) == ad.family.uses_second_per_grid_ts


def test_sft_batch_masks_prompt_labels(policy):
    model, ad = policy
    prompts = [ad.build_prompt("Q1?", random_video(ad.family)), ad.build_prompt("Second question?")]
    targets = [ad.encode_completion("<think>red</think><answer>A</answer>"), ad.encode_completion("B")]
    batch = ad.sft_batch(prompts, targets)
    n_labels = (batch.labels != -100).sum(1).tolist()
    assert n_labels == [t.numel() for t in targets]
    assert batch.completion_ids[0, -1].item() == ad.tokenizer.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        loss = model(**sft_inputs(batch), labels=batch.labels).loss
    # random init over V ≈ 1k tokens: cross-entropy near ln(V) ≈ 6.9
    assert 5.0 < loss.item() < 9.0


def test_patch_times_average_pairs():
    # frames at 0, 0.5, 1.0 → pad to 4 frames [0, .5, 1, 1] → patch means [0.25, 1.0]
    assert patch_times([0.0, 0.5, 1.0], 2) == [0.25, 1.0]


def test_unknown_family_lists_known():
    with pytest.raises(UnknownFamilyError, match=r"qwen2\.5-vl"):
        get_family("llava")


def test_encode_prompt_from_sample_and_frames(tmp_path):
    video_mod = pytest.importorskip("deepvideo_r1.video")
    if not hasattr(video_mod, "qwen_video_inputs"):
        pytest.skip("deepvideo_r1.video.qwen_video_inputs not available yet")
    model, ad = tiny_policy(tmp_path, "qwen2.5-vl")
    ad.budget = type(ad.budget)(video_min_pixels=56 * 56, video_max_pixels=56 * 56)
    sample = Sample(
        id="s1",
        question="Which colour is the square?",
        problem_type="multiple_choice",
        answer="A",
        options=["red", "green", "blue", "yellow"],
    )
    frames = np.random.default_rng(0).integers(0, 255, size=(4, 56, 56, 3), dtype=np.uint8)
    prompt = ad.encode_prompt(sample, frames, None, hint="Look at the first frame.", sample_fps=2.0)
    # 4 frames of 56×56 → grid (2, 4, 4) → 2·4·4/4 = 8 placeholders; 2 / 2 fps = 1 s per patch
    assert prompt.video.video_grid_thw.tolist() == [[2, 4, 4]]
    assert int((prompt.input_ids == ad.video_token_id).sum()) == 8
    assert prompt.video.second_per_grid_ts.tolist() == [1.0]
    assert "A. red" in prompt.text and "Look at the first frame." in prompt.text
    batch = ad.collate([prompt])
    with torch.no_grad():
        model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            **batch.pixel_kwargs(),
            **batch.vision_kwargs(),
        )
