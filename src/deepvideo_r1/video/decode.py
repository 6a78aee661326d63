"""Decode the frames a sample needs: uniform by count or by fps, seeking per keyframe.

Strategy: one demux pass (no decoding) lists every packet's pts, dts and keyframe flag; the
nearest-frame picker runs on those times, so the frame each target gets is known before anything
is decoded. Picks are grouped by the keyframe they must be decoded from; per group the decoder
seeks to that keyframe, decodes up to the last pick with non-reference frames skipped, and is
drained. Streams without usable timestamps or index are decoded sequentially from the start.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Callable, Iterator
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

    def __init__(
        self, targets: np.ndarray, start: float, end: float, convert: Callable[[Any], Any] | None = None
    ) -> None:
        self.targets = [float(t) for t in targets]
        self.start, self.end = start, end
        self.index = 0
        self.prev: tuple[float, av.VideoFrame] | None = None
        self.picks: list[tuple[float, Any]] = []
        # a pick is converted (to small RGB) when it is taken, so no full-size frame is kept for it
        self.convert = convert or (lambda frame: frame)
        self._memo: tuple[Any, Any] | None = None  # (frame, converted): a frame picked twice in a row

    def _take(self, t: float, frame: Any) -> None:
        if self._memo is None or self._memo[0] is not frame:
            self._memo = (frame, self.convert(frame))
        self.picks.append((t, self._memo[1]))

    @property
    def done(self) -> bool:
        return self.index >= len(self.targets)

    @property
    def next_target(self) -> float:
        return self.targets[self.index]

    def feed(self, t: float, frame: av.VideoFrame) -> None:
        if t < self.start - _EPS:
            return
        if t >= self.end - _EPS:
            self.finish()
            return
        while not self.done and t >= self.next_target - _EPS:
            target = self.next_target
            use_prev = self.prev is not None and target - self.prev[0] <= t - target
            self._take(*(self.prev if use_prev else (t, frame)))
            self.index += 1
        self.prev = (t, frame)

    def finish(self) -> None:
        while not self.done and self.prev is not None:
            self._take(*self.prev)
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


class _NoPlan(Exception):
    """Packet timestamps cannot drive the seek plan (missing/duplicate pts, seek or decoder mismatch)."""


def _plan_picks(packets: list[_pyav.PacketInfo], meta, picker: _NearestPicker) -> list[tuple[float, Any]]:
    """Run the picker on packet times in presentation order: (time, pts) of the frame each target gets.

    The picker sees exactly the times it would see from decoded frames, so the choice is the same.
    """
    pts_all = [p.pts for p in packets]
    if None in pts_all or len(set(pts_all)) != len(pts_all):
        raise _NoPlan
    for pts in sorted(pts_all):
        picker.feed(meta.to_seconds(pts), pts)
        if picker.done:
            break
    picker.finish()
    return picker.picks


def _start_key(packets: list[_pyav.PacketInfo], i: int) -> int:
    """Index of the keyframe decoding must start from for packet i: the latest keyframe at or before it
    in decode order that is not shown after it (an open-GOP leading picture needs the previous one)."""
    for j in range(i, -1, -1):
        if packets[j].key and packets[j].pts <= packets[i].pts:
            return j
    raise _NoPlan  # the stream does not start with a keyframe


def _runs(packets, index: dict[int, int], wanted: set[int]) -> list[tuple[int, int, set[int]]]:
    """Decoding runs (start keyframe index, last needed packet index, wanted pts), ascending."""
    runs: dict[int, tuple[int, set[int]]] = {}
    for pts in wanted:
        i = index[pts]
        k = _start_key(packets, i)
        last, pts_set = runs.get(k, (i, set()))
        runs[k] = (max(last, i), pts_set | {pts})
    return [(k, last, pts_set) for k, (last, pts_set) in sorted(runs.items())]


def _keep(frames: list[av.VideoFrame], wanted: set[int], got: dict[int, Any], convert) -> int:
    """Store the wanted frames by pts, converted; returns how many frames the decoder produced."""
    for frame in frames:
        if frame.pts in wanted:
            got[frame.pts] = convert(frame)
    return len(frames)


def _demux_from_key(container, stream, packets, index, start: int) -> Iterator[av.Packet]:
    """Non-empty packets from keyframe `start` (or an earlier keyframe) on; raises _NoPlan otherwise.

    Seeks by the keyframe's pts (exact for mp4 and webm), then by its dts.
    """
    key = packets[start]
    for ts in dict.fromkeys((key.pts, key.pts if key.dts is None else key.dts)):
        if not _pyav.seek(container, stream, ts):
            continue
        demux = (p for p in container.demux(stream) if p.size)
        first = next(demux, None)
        i = None if first is None else index.get(first.pts)
        if i is not None and i <= start and packets[i].key:
            return itertools.chain([first], demux)
    raise _NoPlan


def _decode_run(container, stream, packets, index, run, path: str, convert) -> tuple[dict[int, Any], int]:
    """Seek to the run's keyframe and decode to its last needed packet; returns ({pts: frame}, decoded).

    Packets that are not wanted are sent with skip_frame=NONREF: a frame no other frame references
    is not decoded at all (x264's non-reference B-frames, ~1/3 of the frames); the decoder is
    drained after the last needed packet instead of decoding further packets to push it out.
    """
    start, last, wanted = run
    cc = stream.codec_context
    got: dict[int, av.VideoFrame] = {}
    decoded = 0
    try:
        for packet in _demux_from_key(container, stream, packets, index, start):
            i = index.get(packet.pts)
            cc.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
            decoded += _keep(packet.decode(), wanted, got, convert)
            if i is not None and i >= last:
                break
        cc.skip_frame = "DEFAULT"
        decoded += _keep(cc.decode(None), wanted, got, convert)
    except av.FFmpegError as e:
        raise VideoDecodeError(f"decoding failed in {path}: {e}") from e
    finally:
        cc.skip_frame = "DEFAULT"
    return got, decoded


def _decode_seeking(container, stream, meta, picker: _NearestPicker, path: str) -> tuple[int, int]:
    """Pick frames from packet timestamps, then decode only keyframe..pick runs. Returns (decoded, seeks).

    One demux pass (no decoding) lists every packet's pts, dts and keyframe flag; the picker runs on
    those times, so the frame for each target is known before anything is decoded. Picks sharing a
    keyframe form one run. Raises _NoPlan when the timestamps or the seeks cannot be trusted.
    """
    packets = _pyav.packet_index(container, stream, path)
    plan = _plan_picks(packets, meta, _NearestPicker(np.asarray(picker.targets), picker.start, picker.end))
    index = {p.pts: i for i, p in enumerate(packets)}
    runs = _runs(packets, index, {pts for _, pts in plan})
    frames: dict[int, Any] = {}
    decoded = 0
    for run in runs:
        got, n = _decode_run(container, stream, packets, index, run, path, picker.convert)
        frames.update(got)
        decoded += n
    if any(pts not in frames for _, pts in plan):
        raise _NoPlan
    picker.picks = [(t, frames[pts]) for t, pts in plan]
    picker.index = len(picker.targets)
    return decoded, len(runs)


def _decode_fresh(path: str, meta, picker: _NearestPicker, threads: int) -> int:
    """Sequential decoding from the start of a newly opened container; returns frames decoded."""
    with _pyav.open_input(path) as container:
        stream = _pyav.video_stream(container, path, threads)
        return _decode_sequential(container, stream, meta, picker, path)


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
    """[start, end) in seconds, clamped to [0, duration]; raises if the clip is empty or a bound is
    NaN or infinite (max/min would silently turn a NaN bound into the whole video)."""
    if any(b is not None and not math.isfinite(b) for b in (start, end)):
        raise VideoDecodeError(f"clip [{start}, {end}] s of {path} needs finite bounds (or null)")
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


def load_video(
    path: str | os.PathLike,
    num_frames: int | None = None,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    min_frames: int = 4,
    max_frames: int = 768,
    *,
    max_decode_pixels: int | None = None,
    seek: bool = True,
    threads: int = 0,
) -> tuple[np.ndarray, VideoInfo]:
    """Sample T frames of a video (or of its clip [start, end) in seconds) at the original size.

    T = round2(num_frames), or floor2(clamp(D · fps, min_frames, max_frames)) with `fps`
    (see `sampling.resolve_frame_count`); num_frames = 16 when neither is given. Target times are
    linspace(start, end - 1/source_fps, T); each gets the nearest frame of the clip.
    Returns frames uint8 [T, H, W, 3] RGB and a VideoInfo. `max_decode_pixels`: frames with more
    pixels are scaled down while they are converted (see `_pyav.to_rgb`). A `num_frames` above
    `max_frames` is a ValueError: T frames cost T·H·W·3 bytes. `seek=False` decodes every frame instead.
    `threads`: decoder threads, 0 = FFmpeg's automatic frame + slice threading, 1 = single-threaded.
    Raises VideoNotFoundError / VideoDecodeError (both name the path).
    """
    if num_frames is not None and num_frames > max_frames:
        raise ValueError(f"num_frames={num_frames} exceeds max_frames={max_frames}, the per-video frame cap")
    full = _pyav.check_file(os.fspath(path))
    with _pyav.open_input(full) as container:
        stream = _pyav.video_stream(container, full, threads)
        meta = _complete_meta(_pyav.stream_meta(container, stream), full)
        clip_start, clip_end = _clip_bounds(start, end, meta.duration, full)
        n = resolve_frame_count(clip_end - clip_start, meta.fps, num_frames, fps, min_frames, max_frames)
        times = target_times(clip_start, clip_end, n, meta.fps)
        picker = _NearestPicker(times, clip_start, clip_end, lambda f: _pyav.to_rgb(f, max_decode_pixels))
        if seek:
            try:
                decoded, seeks = _decode_seeking(container, stream, meta, picker, full)
            except _NoPlan:  # no trustworthy timestamps or index: one forward pass on a fresh container
                decoded, seeks = _decode_fresh(full, meta, picker, threads), 0
        else:
            decoded, seeks = _decode_sequential(container, stream, meta, picker, full), 0
        picker.finish()
        _check_coverage(picker, meta, full, end)
        frames = np.stack([rgb for _, rgb in picker.picks])  # [T, H, W, 3] uint8
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
