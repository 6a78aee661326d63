"""Media limits: frames above max_decode_pixels are scaled while decoding, frame counts are capped,
NaN clip bounds are errors, and a shape smart_resize refuses names the sample and the file."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from deepvideo_r1.config import VideoConfig
from deepvideo_r1.data.sample import Sample, VideoRef
from deepvideo_r1.models.media import MediaLoader, SampleMediaError
from deepvideo_r1.video import FrameCache, VideoDecodeError, load_video, write_video
from deepvideo_r1.video._pyav import decode_size
from deepvideo_r1.video.options import FrameSampling


@pytest.fixture(scope="module")
def big_video(tmp_path_factory):
    """2 frames of 2048x2048 (mpeg4: ~0.5 s to write), a solid colour (200, 0, 40)."""
    frames = np.zeros((2, 2048, 2048, 3), np.uint8)
    frames[..., 0], frames[..., 2] = 200, 40
    path = tmp_path_factory.mktemp("big") / "big.mp4"
    write_video(path, frames, fps=2, codec="mpeg4")
    return path


def test_decode_size_keeps_the_aspect_under_the_cap():
    # 4096x4096 to 65536 pixels: s = sqrt(65536 / 4096²) = 1/16 → 256x256
    assert decode_size(4096, 4096, 256 * 256) == (256, 256)
    # 1920x1080 under a 100000 cap: s = sqrt(100000 / 2073600) = 0.21960 → floor(421.6), floor(237.2)
    assert decode_size(1920, 1080, 100_000) == (421, 237)
    assert decode_size(640, 480, 640 * 480) is None and decode_size(640, 480, None) is None


@pytest.mark.parametrize("seek", [True, False])
def test_big_frames_are_scaled_while_decoding(big_video, seek):
    tracemalloc.start()
    frames, info = load_video(big_video, num_frames=2, max_decode_pixels=128 * 128, seek=seek)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert frames.shape == (2, 128, 128, 3) and (info.width, info.height) == (128, 128)
    assert np.abs(frames[:, 64, 64].astype(int) - [200, 0, 40]).max() <= 6  # the colour survives
    # full size would be 2 x 2048² x 3 = 25 MB of RGB (plus a stacked copy); scaled: 2 x 49 KB
    assert peak < 2_000_000


def test_frames_under_the_cap_decode_at_their_own_size(big_video):
    frames, _ = load_video(big_video, num_frames=2, max_decode_pixels=2048 * 2048)
    assert frames.shape == (2, 2048, 2048, 3)


def test_the_cache_key_includes_the_decode_cap(big_video, tmp_path):
    cache = FrameCache(tmp_path / "cache")
    small, _ = cache.load_video(big_video, FrameSampling(num_frames=2, max_decode_pixels=64 * 64))
    other, _ = cache.load_video(big_video, FrameSampling(num_frames=2, max_decode_pixels=32 * 32))
    assert small.shape[1:3] == (64, 64) and other.shape[1:3] == (32, 32) and cache.misses == 2


def test_frame_count_above_the_cap_is_an_error_before_decoding(tmp_path):
    # before: num_frames=10**6 built a 10**6-frame array (9 GB at 56x56) from a 2-frame clip
    with pytest.raises(ValueError, match=r"num_frames=1000000 exceeds max_frames=768"):
        load_video(tmp_path / "never_opened.mp4", num_frames=10**6)


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "v.mp4"
    write_video(path, np.zeros((8, 56, 56, 3), np.uint8), fps=4)
    return path


@pytest.mark.parametrize(("start", "end"), [(math.nan, None), (None, math.nan), (0.0, math.inf)])
def test_non_finite_clip_bounds_are_errors(small_video, start, end):
    # before: max(0, nan) and min(duration, nan) silently gave the whole video
    with pytest.raises(VideoDecodeError, match="needs finite bounds"):
        load_video(small_video, num_frames=4, start=start, end=end)


def test_extreme_aspect_ratio_names_the_sample_and_the_file(tmp_path):
    path = tmp_path / "thin.mp4"
    write_video(path, np.zeros((4, 2, 600, 3), np.uint8), fps=4)
    loader = MediaLoader(VideoConfig(num_frames=4), tmp_path / "cache")
    sample = Sample(id="thin-1", question="q", problem_type="free_form", videos=[VideoRef(str(path))])
    with pytest.raises(SampleMediaError, match=rf"sample thin-1: {path}: aspect ratio must be at most 200"):
        loader(sample)
