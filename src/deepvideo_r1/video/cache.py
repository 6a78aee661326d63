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
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from deepvideo_r1.video import _pyav
from deepvideo_r1.video.decode import VideoInfo, load_video
from deepvideo_r1.video.errors import VideoDecodeError
from deepvideo_r1.video.qwen import resize_frames, smart_resize, video_max_pixels

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1
VideoLoader = Callable[..., tuple[np.ndarray, VideoInfo]]


def _atomic_write(target: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through a same-directory temp file, then os.replace (atomic on POSIX and Windows)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FrameCache:
    """`FrameCache(dir).load_video(path, ...)` = `load_video(path, ...)`, decoded once per key.

    With `min_pixels` and `max_pixels` the frames are stored smart-resized (uint8, factor
    `factor`, per-frame cap `video_max_pixels(T, min, max, total_pixels)`), so `qwen_video_inputs`
    with the same limits resizes nothing. `hits` / `misses` count lookups; `loader` (default
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
        _atomic_write(npy, lambda f: np.save(f, frames, allow_pickle=False))
        _atomic_write(meta, lambda f: f.write(json.dumps(info.to_dict()).encode()))

    def load_video(
        self,
        path: str | os.PathLike,
        num_frames: int | None = None,
        fps: float | None = None,
        start: float | None = None,
        end: float | None = None,
        min_frames: int = 4,
        max_frames: int = 768,
        *,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        total_pixels: int | None = None,
        factor: int = 28,
        max_decode_pixels: int | None = None,
    ) -> tuple[np.ndarray, VideoInfo]:
        """Frames uint8 [T, H, W, 3] (resized when min/max_pixels are given) and their VideoInfo.

        `max_decode_pixels` goes to the loader (frames above it are scaled while decoding). A frame
        shape smart_resize refuses (aspect ratio over 200) is a VideoDecodeError naming the file.
        """
        sampling = dict(num_frames=num_frames, fps=fps, start=start, end=end)
        sampling |= dict(min_frames=min_frames, max_frames=max_frames)
        if max_decode_pixels is not None:
            sampling["max_decode_pixels"] = max_decode_pixels
        resize = dict(min_pixels=min_pixels, max_pixels=max_pixels, total_pixels=total_pixels, factor=factor)
        if (min_pixels is None) != (max_pixels is None):
            raise ValueError("give both min_pixels and max_pixels to cache resized frames, or neither")
        key = self.key(path, **sampling, **(resize if min_pixels is not None else {}))
        cached = self._read(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        frames, info = self.loader(path, **sampling)
        if min_pixels is not None:
            cap = video_max_pixels(len(frames), min_pixels, max_pixels, total_pixels)
            try:
                h, w = smart_resize(frames.shape[1], frames.shape[2], factor, min_pixels, cap)
            except ValueError as e:
                raise VideoDecodeError(f"{info.path}: {e}") from e
            frames = resize_frames(frames, h, w).permute(0, 2, 3, 1).contiguous().numpy()
        self._write(key, frames, info)
        return frames, info
