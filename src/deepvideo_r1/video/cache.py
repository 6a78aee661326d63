"""On-disk cache of sampled (optionally resized) uint8 frames, so later epochs do not decode again.

Key = sha256 of (absolute path, mtime_ns, size, sampling and resize parameters). Entry =
`<key>.npy` (uint8 [T, H, W, 3], np.save, allow_pickle=False) + `<key>.json` (VideoInfo). Both are
written to a temp file in the cache dir and renamed with os.replace, the .npy first: a reader that
sees the .json sees a complete .npy, and concurrent writers of one key (same content) are safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from deepvideo_r1.artifacts import atomic_write
from deepvideo_r1.video import _pyav
from deepvideo_r1.video.decode import VideoInfo, load_video
from deepvideo_r1.video.errors import VideoDecodeError
from deepvideo_r1.video.options import FrameResize, FrameSampling
from deepvideo_r1.video.qwen import resize_frames, smart_resize, video_max_pixels

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1
VideoLoader = Callable[..., tuple[np.ndarray, VideoInfo]]


class FrameCache:
    """`FrameCache(dir).load_video(path, sampling, ...)` = `load_video(path, **sampling)`, decoded
    once per key.

    With a FrameResize the frames are stored smart-resized (uint8, per-frame cap
    `video_max_pixels(T, min, max, total_pixels)`), so `qwen_video_inputs` with the same limits
    resizes nothing. `hits` / `misses` count lookups; `loader` (default
    `load_video`) is what a miss calls.
    """

    def __init__(self, cache_dir: str | os.PathLike, loader: VideoLoader = load_video) -> None:
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.loader = loader
        self.hits = 0
        self.misses = 0

    def key(self, path: str | os.PathLike, **params: Any) -> str:
        """sha256 hex of the file identity (absolute path, mtime_ns, size) and `params`."""
        full = _pyav.check_file(os.fspath(path))
        st = os.stat(full)
        ident = {"v": _FORMAT_VERSION, "path": full, "mtime_ns": st.st_mtime_ns, "size": st.st_size}
        blob = json.dumps({**ident, "params": params}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.cache_dir / f"{key}.npy", self.cache_dir / f"{key}.json"

    def _read(self, key: str) -> tuple[np.ndarray, VideoInfo] | None:
        npy, meta = self._paths(key)
        if not meta.exists():
            return None
        try:
            info = VideoInfo.from_dict(json.loads(meta.read_text()))
            frames = np.load(npy, allow_pickle=False)
        except (OSError, ValueError, TypeError) as e:
            logger.warning("unreadable cache entry %s (%s); decoding again", meta, e)
            return None
        return frames, info

    def _write(self, key: str, frames: np.ndarray, info: VideoInfo) -> None:
        npy, meta = self._paths(key)
        atomic_write(npy, lambda f: np.save(f, frames, allow_pickle=False))
        atomic_write(meta, lambda f: f.write(json.dumps(info.to_dict()).encode()))

    def load_video(
        self,
        path: str | os.PathLike,
        sampling: FrameSampling,
        start: float | None = None,
        end: float | None = None,
        resize: FrameResize | None = None,
    ) -> tuple[np.ndarray, VideoInfo]:
        """Frames uint8 [T, H, W, 3] of the clip [start, end) and their VideoInfo; stored smart-resized
        to `resize` when given. A frame shape smart_resize refuses (aspect ratio over 200) is a
        VideoDecodeError naming the file."""
        params = {**sampling.as_kwargs(), "start": start, "end": end}
        key = self.key(path, **params, **(asdict(resize) if resize is not None else {}))
        cached = self._read(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        frames, info = self.loader(path, **params)
        if resize is not None:
            cap = video_max_pixels(len(frames), resize.min_pixels, resize.max_pixels, resize.total_pixels)
            try:
                h, w = smart_resize(frames.shape[1], frames.shape[2], resize.factor, resize.min_pixels, cap)
            except ValueError as e:
                raise VideoDecodeError(f"{info.path}: {e}") from e
            frames = resize_frames(frames, h, w).permute(0, 2, 3, 1).contiguous().numpy()
        self._write(key, frames, info)
        return frames, info
