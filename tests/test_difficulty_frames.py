"""Frame noise and frame masking (increase difficulty)."""

import pytest
import torch

from deepvideo_r1.difficulty import add_frame_noise, mask_frames


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_noise_is_seeded_and_reproducible():
    frames = torch.rand(4, 3, 8, 8, generator=_gen(0))
    a = add_frame_noise(frames, generator=_gen(1))
    b = add_frame_noise(frames, generator=_gen(1))
    c = add_frame_noise(frames, generator=_gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, frames)
    assert not torch.allclose(a[0] - frames[0], a[1] - frames[1])  # independent per frame


def test_noise_is_clamped_to_unit_range():
    frames = torch.cat([torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8)])
    out = add_frame_noise(frames, std=0.5, level=3.0, generator=_gen(0))
    assert out.min() >= 0 and out.max() <= 1
    assert (out[:2] == 0).any() and (out[2:] == 1).any()  # clamped values exist at both ends


@pytest.mark.parametrize("level", [1.0, 2.5])
def test_noise_std_scales_with_level(level):
    # frames at .5 with std .02 * level <= .05: clamping at 0/1 is 10 sigma away
    frames = torch.full((8, 3, 32, 32), 0.5)
    out = add_frame_noise(frames, std=0.02, level=level, generator=_gen(3))
    measured = (out - frames).std().item()
    assert measured == pytest.approx(0.02 * level, rel=0.03)  # 24,576 draws: sampling error ~0.5%
    assert abs((out - frames).mean().item()) < 0.02 * level * 0.03


def test_zero_std_is_identity_and_dtype_kept():
    frames = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    out = add_frame_noise(frames, std=0.0)
    assert torch.equal(out, frames) and out.dtype == torch.float64


def test_noise_rejects_bad_input():
    with pytest.raises(ValueError, match="float"):
        add_frame_noise(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        add_frame_noise(torch.full((2, 3, 4, 4), 255.0))
    with pytest.raises(ValueError, match=">= 0"):
        add_frame_noise(torch.zeros(1, 3, 2, 2), level=-1.0)


@pytest.mark.parametrize(
    ("num_frames", "fraction", "dropped"),
    [(8, 0.25, 2), (8, 0.0, 0), (8, 1.0, 7), (3, 0.5, 2), (4, 0.1, 0), (1, 0.9, 0)],
    # 3 * .5 = 1.5 rounds half up to 2 ; 4 * .1 = .4 -> 0 ; 1.0 keeps one frame
)
def test_mask_frames_counts(num_frames, fraction, dropped):
    frames = torch.rand(num_frames, 3, 4, 4, generator=_gen(0)) + 0.1  # no frame is all zero
    masked, kept = mask_frames(frames, fraction, generator=_gen(1))
    assert kept.dtype == torch.bool and kept.shape == (num_frames,)
    assert int((~kept).sum()) == dropped
    assert (masked[~kept] == 0).all()
    assert torch.equal(masked[kept], frames[kept])
    assert frames.min() > 0  # input untouched


def test_mask_frames_is_seeded_and_rejects_bad_fraction():
    frames = torch.rand(16, 3, 2, 2)
    k1 = mask_frames(frames, 0.5, generator=_gen(7))[1]
    k2 = mask_frames(frames, 0.5, generator=_gen(7))[1]
    k3 = mask_frames(frames, 0.5, generator=_gen(8))[1]
    assert torch.equal(k1, k2) and not torch.equal(k1, k3)
    with pytest.raises(ValueError, match="fraction"):
        mask_frames(frames, 1.5)
