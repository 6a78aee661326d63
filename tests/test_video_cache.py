"""FrameCache: a hit never decodes, the key follows the file and the parameters, writes are atomic."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from deepvideo_r1.video import FrameCache, load_video, qwen_video_inputs, write_video
from deepvideo_r1.video.options import FrameResize, FrameSampling


class CountingLoader:
    """load_video that counts calls (a cache hit must not call it)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls, self.delay, self.lock = 0, delay, threading.Lock()

    def __call__(self, path, **kw):
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)
        return load_video(path, **kw)


@pytest.fixture
def video(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "clip.mp4"
    write_video(path, (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(20)), 10)
    return path


def entries(cache_dir):
    return sorted(p.suffix for p in cache_dir.iterdir())


def test_hit_does_not_decode_and_returns_the_same(tmp_path, video):
    loader = CountingLoader()
    cache = FrameCache(tmp_path / "cache", loader=loader)
    frames, info = cache.load_video(video, FrameSampling(num_frames=4))
    again, info2 = cache.load_video(video, FrameSampling(num_frames=4))
    assert loader.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(frames, again)
    assert again.dtype == np.uint8 and info2 == info
    assert entries(tmp_path / "cache") == [".json", ".npy"]  # no temp files left behind

    # a fresh cache object on the same dir also hits; a loader that fails proves nothing is decoded
    def boom(*a, **k):
        raise AssertionError("decoded on a cache hit")

    frames3, _ = FrameCache(tmp_path / "cache", loader=boom).load_video(video, FrameSampling(num_frames=4))
    np.testing.assert_array_equal(frames, frames3)


def test_key_follows_mtime_size_and_parameters(tmp_path, video):
    loader = CountingLoader()
    cache = FrameCache(tmp_path / "cache", loader=loader)
    cache.load_video(video, FrameSampling(num_frames=4))
    cache.load_video(video, FrameSampling(num_frames=6))  # other parameters → miss
    cache.load_video(video, FrameSampling(num_frames=4), start=0.5)  # other clip → miss
    st = os.stat(video)
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched file → miss
    cache.load_video(video, FrameSampling(num_frames=4))
    assert loader.calls == 4 and cache.hits == 0
    cache.load_video(video, FrameSampling(num_frames=6))  # unchanged key, file mtime moved → miss
    assert loader.calls == 5


def test_resized_entries_feed_qwen_inputs_unchanged(tmp_path, video):
    cache = FrameCache(tmp_path / "cache")
    small, _ = cache.load_video(video, FrameSampling(num_frames=4), resize=FrameResize(56 * 56, 28 * 28 * 4))
    # 48x64 → smart_resize(…, 3136, 3136): round → 56x56 = 3136, within → stored at 56x56
    assert small.shape == (4, 56, 56, 3) and small.dtype == np.uint8
    full, _ = load_video(video, num_frames=4)
    a = qwen_video_inputs(small, 56 * 56, 28 * 28 * 4)
    b = qwen_video_inputs(full, 56 * 56, 28 * 28 * 4)
    torch.testing.assert_close(a["pixel_values_videos"], b["pixel_values_videos"], rtol=0, atol=0)


def test_concurrent_writers_of_one_key_are_safe(tmp_path, video):
    loader = CountingLoader(delay=0.05)  # all writers miss, then race on os.replace
    caches = [FrameCache(tmp_path / "cache", loader=loader) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: c.load_video(video, FrameSampling(num_frames=4))[0], caches))
    for r in results[1:]:
        np.testing.assert_array_equal(results[0], r)
    assert entries(tmp_path / "cache") == [".json", ".npy"]
    frames = np.load(next((tmp_path / "cache").glob("*.npy")), allow_pickle=False)
    np.testing.assert_array_equal(frames, results[0])


def test_damaged_entry_is_decoded_again(tmp_path, video):
    loader = CountingLoader()
    cache = FrameCache(tmp_path / "cache", loader=loader)
    cache.load_video(video, FrameSampling(num_frames=4))
    next((tmp_path / "cache").glob("*.npy")).write_bytes(b"junk")
    frames, _ = cache.load_video(video, FrameSampling(num_frames=4))
    assert loader.calls == 2 and frames.shape == (4, 48, 64, 3)
