"""3-D rope positions follow Qwen's rule (text resumes past every axis of a vision item)."""

from __future__ import annotations

import copy

import torch

from deepvideo_r1.models.rope import rope_index, use_reference_rope

# text(2) image(merged 1x2x2) text(1) video(merged 3x2x1, 2 s per grid, 2 tokens/s -> interval 2) text(2)
TYPES = [0, 0, 1, 1, 1, 1, 0, 2, 2, 2, 2, 2, 2, 0, 0]
EXPECTED = torch.tensor(
    [
        [0, 1, 2, 2, 2, 2, 4, 5, 5, 7, 7, 9, 9, 10, 11],
        [0, 1, 2, 2, 3, 3, 4, 5, 6, 5, 6, 5, 6, 10, 11],
        [0, 1, 2, 3, 2, 3, 4, 5, 5, 5, 5, 5, 5, 10, 11],
    ]
)


def _table(pad: int = 0):
    types = torch.tensor([[0] * pad + TYPES], dtype=torch.int32)
    ids = torch.where(types == 0, 5, 9).long()
    mask = torch.tensor([[0] * pad + [1] * len(TYPES)])
    return rope_index(
        ids,
        types,
        spatial_merge_size=2,
        tokens_per_second=2,
        image_grid_thw=torch.tensor([[1, 4, 4]]),
        video_grid_thw=torch.tensor([[3, 4, 2]]),
        second_per_grid_ts=torch.tensor([1.0]),
        attention_mask=mask,
    )


def test_hand_computed_table_image_video_text():
    positions, deltas = _table()
    assert torch.equal(positions[:, 0], EXPECTED)
    assert deltas.tolist() == [[11 + 1 - 15]]


def test_left_padding_is_zero_and_delta_counts_real_tokens():
    positions, deltas = _table(pad=3)
    assert torch.equal(positions[:, 0, 3:], EXPECTED)
    assert positions[:, 0, :3].eq(0).all()
    assert deltas.tolist() == [[-3]]


def test_model_uses_the_rule_and_keeps_it_through_deepcopy(tmp_path):
    from deepvideo_r1.models import load_policy, make_tiny_model

    model, _ = load_policy(make_tiny_model(tmp_path / "m", text_layers=1, vision_depth=1))
    clone = copy.deepcopy(model)
    for m in (model, clone):
        vc = m.model.config.vision_config
        vc.spatial_merge_size, vc.tokens_per_second = 2, 2
        types = torch.tensor([TYPES], dtype=torch.int32)
        pos, _ = m.model.get_rope_index(
            torch.where(types == 0, 5, 9).long(),
            types,
            image_grid_thw=torch.tensor([[1, 4, 4]]),
            video_grid_thw=torch.tensor([[3, 4, 2]]),
            second_per_grid_ts=torch.tensor([1.0]),
        )
        assert torch.equal(pos[:, 0], EXPECTED)
        assert m.model.get_rope_index.__self__ is m.model


def test_other_families_untouched():
    module = torch.nn.Linear(2, 2)
    assert use_reference_rope(module) is module
    assert "get_rope_index" not in vars(module)
