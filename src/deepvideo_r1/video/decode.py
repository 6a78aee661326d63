"""Decode the frames a sample needs (SPEC §4): uniform by count or by fps, seeking per keyframe.

Strategy: for each target time (ascending) a second "probe" container seeks to the target and reads
one packet, which names the keyframe K the decoder would have to start from. If K is at or before
the decoder's current position, decoding simply continues forward (same GOP, no re-seek); otherwise
the decoder seeks to K. So only frames in [K, target] of each needed GOP are decoded. Streams that
cannot seek (or whose seek lands after the target) are decoded sequentially from the start.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import av
import numpy as np

from deepvideo_r1.video import _pyav
from deepvideo_r1.video.errors import VideoDecodeError
from deepvideo_r1.video.sampling import resolve_frame_count, sample_fps, target_times

_EPS = 1e-6


@dataclass
class VideoInfo:
    """What `load_video` returned and how.

    `timestamps[i]` is the time (s, from the start of the source, also for clips) of frame i;
    `sample_fps` = T / (clip_end - clip_start) as qwen-vl-utils defines it; `fps` is the source's
    average frame rate; `decoded_frames` / `seeks` measure the decoding cost.
    """

    path: str
    timestamps: list[float]
    sample_fps: float
    duration: float
    fps: float
    width: int
    height: int
    clip_start: float
    clip_end: float
    decoded_frames: int = 0
    seeks: int = 0

    @property
    def num_frames(self) -> int:
        """T, the number of returned frames."""
        return len(self.timestamps)

    def second_per_grid_ts(self, temporal_patch_size: int = 2) -> float:
        """Seconds per temporal grid step = temporal_patch_size / sample_fps (Qwen2.5-VL mRoPE)."""
        return temporal_patch_size / self.sample_fps

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the frame cache stores this)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoInfo:
        """Inverse of `to_dict`."""
        return cls(**data)


class _NearestPicker:
    """Takes frames in presentation order; gives each target time the nearest frame in [start, end).

    A frame before the clip is ignored; the first frame at or after `end` closes the clip. Ties go
    to the earlier frame. Unresolved targets at the end take the last frame seen.
    """

    def __init__(self, targets: np.ndarray, start: float, end: float) -> None:
        self.targets = [float(t) for t in targets]
        self.start, self.end = start, end
        self.index = 0
        self.prev: tuple[float, av.VideoFrame] | None = None
        self.picks: list[tuple[float, av.VideoFrame]] = []

    @property
    def done(self) -> bool:
        return self.index >= len(self.targets)

    @property
    def next_target(self) -> float:
        return self.targets[self.index]

    def forget_prev(self) -> None:
        """After a seek the last frame seen is no longer the stream neighbour of the next one."""
        self.prev = None

    def feed(self, t: float, frame: av.VideoFrame) -> None:
        if t < self.start - _EPS:
            return
        if t >= self.end - _EPS:
            self.finish()
            return
        while not self.done and t >= self.next_target - _EPS:
            target = self.next_target
            use_prev = self.prev is not None and target - self.prev[0] <= t - target
            self.picks.append(self.prev if use_prev else (t, frame))
            self.index += 1
        self.prev = (t, frame)

    def finish(self) -> None:
        while not self.done and self.prev is not None:
            self.picks.append(self.prev)
            self.index += 1
        self.index = len(self.targets)


def _frame_time(frame: av.VideoFrame, meta: _pyav.StreamMeta, last: float) -> float:
    """Seconds of a frame; frames without pts follow the previous one by 1/fps."""
    pts = frame.pts if frame.pts is not None else frame.dts
    if pts is None:
        return last + 1.0 / (meta.fps or 25.0)
    return meta.to_seconds(pts)


def _decode_sequential(container, stream, meta, picker: _NearestPicker, path: str) -> int:
    """Decode forward from the current position until every target is resolved; returns frames decoded."""
    decoded, t = 0, -math.inf
    for frame in _pyav.decoded_frames(container, stream, path):
        decoded += 1
        t = _frame_time(frame, meta, t)
        picker.feed(t, frame)
        if picker.done:
            break
    return decoded


def _seek(container, stream, pts: int) -> bool:
    try:
        container.seek(pts, stream=stream, backward=True, any_frame=False)
    except av.FFmpegError:
        return False
    return True


def _decode_seeking(container, stream, meta, picker: _NearestPicker, path: str) -> tuple[int, int]:
    """Per target: seek to its keyframe unless it lies in the GOP being decoded. Returns (decoded, seeks)."""
    decoded, seeks, pos = 0, 0, -math.inf
    frames = None
    with _pyav.open_input(path) as probe:
        pstream = probe.streams.video[meta.index]
        while not picker.done:
            target, index = picker.next_target, picker.index
            key = _pyav.keyframe_before(probe, pstream, meta.to_pts(target))
            fresh = False
            if frames is None or key is None or meta.to_seconds(key) > pos:
                if not _seek(container, stream, meta.to_pts(target)):
                    if frames is None:  # unseekable: one forward pass from the start
                        decoded += _decode_sequential(container, stream, meta, picker, path)
                    break
                frames, fresh, seeks = _pyav.decoded_frames(container, stream, path), True, seeks + 1
                picker.forget_prev()
            for frame in frames:
                decoded += 1
                t = _frame_time(frame, meta, pos)
                if fresh and t > target + _EPS and t > picker.start + _EPS:
                    # the seek landed after the target (no usable index): decode from the start instead
                    if not _seek(container, stream, meta.start_pts):
                        raise VideoDecodeError(f"seeking failed in {path}; cannot reach t={target:.3f} s")
                    decoded += _decode_sequential(container, stream, meta, picker, path)
                    return decoded, seeks + 1
                fresh = False
                picker.feed(t, frame)
                pos = t
                if picker.done or picker.index != index:
                    break
            else:
                break  # end of stream
    return decoded, seeks


def _complete_meta(meta: _pyav.StreamMeta, path: str) -> _pyav.StreamMeta:
    """Fill a missing duration/fps from packet timestamps (one demux-only pass, no decoding)."""
    if meta.duration and meta.fps:
        return meta
    with _pyav.open_input(path) as container:
        times = _pyav.packet_times(container, container.streams.video[meta.index], meta)
    if not times:
        raise VideoDecodeError(f"no video frames in {path}")
    fps = meta.fps or ((len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else 1.0)
    duration = meta.duration or times[-1] + 1.0 / fps
    return dataclasses.replace(meta, duration=duration, fps=fps)


def _clip_bounds(start: float | None, end: float | None, duration: float, path: str) -> tuple[float, float]:
    """[start, end) in seconds, clamped to [0, duration]; raises if the clip is empty."""
    lo = 0.0 if start is None else max(0.0, float(start))
    hi = duration if end is None else min(duration, float(end))
    if hi <= lo:
        raise VideoDecodeError(f"clip [{start}, {end}] s is empty for {path} (duration {duration:.3f} s)")
    return lo, hi


def _check_coverage(picker: _NearestPicker, meta: _pyav.StreamMeta, path: str, end: float | None) -> None:
    """Raise when the frames end long before the header says they do (a truncated file).

    The header's end is max(duration, frame count / fps): a cut AVI keeps its frame count (75)
    while its duration shrinks to the data left.
    """
    if not picker.picks:
        raise VideoDecodeError(f"no decodable video frames in {path}")
    fps = meta.fps or 25.0
    header_end = max(meta.duration or 0.0, meta.header_frames / fps)
    last_time = max(t for t, _ in picker.picks)
    clip_end = header_end if end is None else min(header_end, end)
    expected = max(picker.targets[-1], clip_end - 1.0 / fps)
    tolerance = max(1.0, 0.1 * (picker.end - picker.start), 2.0 / fps)
    if expected - last_time > tolerance:
        raise VideoDecodeError(
            f"video frames in {path} stop at {last_time:.3f} s but the header says {header_end:.3f} s: "
            "the file is truncated or damaged"
        )


def _stack_rgb(picked: list[av.VideoFrame]) -> np.ndarray:
    """[T, H, W, 3] uint8; a frame picked for several targets is converted once."""
    rgb: dict[int, np.ndarray] = {}
    for frame in picked:
        if id(frame) not in rgb:
            rgb[id(frame)] = _pyav.to_rgb(frame)
    return np.stack([rgb[id(f)] for f in picked])


def load_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    min_frames: int = 4,
    max_frames: int = 768,
    *,
    seek: bool = True,
) -> tuple[np.ndarray, VideoInfo]:
    """Sample T frames of a video (or of its clip [start, end) in seconds) at the original size.

    T = round2(num_frames), or floor2(clamp(D · fps, min_frames, max_frames)) with `fps`
    (see `sampling.resolve_frame_count`); num_frames = 16 when neither is given. Target times are
    linspace(start, end - 1/source_fps, T); each gets the nearest frame of the clip.
    Returns frames uint8 [T, H, W, 3] RGB and a VideoInfo. `seek=False` decodes every frame instead.
    Raises VideoNotFoundError / VideoDecodeError (both name the path).
    """
    full = _pyav.check_file(os.fspath(path))
    with _pyav.open_input(full) as container:
        stream = _pyav.video_stream(container, full)
        meta = _complete_meta(_pyav.stream_meta(container, stream), full)
        clip_start, clip_end = _clip_bounds(start, end, meta.duration, full)
        n = resolve_frame_count(clip_end - clip_start, meta.fps, num_frames, fps, min_frames, max_frames)
        picker = _NearestPicker(target_times(clip_start, clip_end, n, meta.fps), clip_start, clip_end)
        if seek:
            decoded, seeks = _decode_seeking(container, stream, meta, picker, full)
        else:
            decoded, seeks = _decode_sequential(container, stream, meta, picker, full), 0
        picker.finish()
        _check_coverage(picker, meta, full, end)
        frames = _stack_rgb([f for _, f in picker.picks])
    info = VideoInfo(
        path=full,
        timestamps=[t for t, _ in picker.picks],
        sample_fps=sample_fps(n, clip_end - clip_start),
        duration=meta.duration,
        fps=meta.fps,
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
        clip_start=clip_start,
        clip_end=clip_end,
        decoded_frames=decoded,
        seeks=seeks,
    )
    return frames, info


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file (png, jpg, bmp, webp, … — PyAV's image demuxers) to uint8 [H, W, 3] RGB.

    Alpha is dropped (not composited); EXIF orientation is not applied.
    """
    full = _pyav.check_file(os.fspath(path))
    with _pyav.open_input(full) as container:
        stream = _pyav.video_stream(container, full)
        for frame in _pyav.decoded_frames(container, stream, full):
            return _pyav.to_rgb(frame)
    raise VideoDecodeError(f"no image data in {full}")
