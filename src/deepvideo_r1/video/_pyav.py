"""PyAV plumbing: open a file with typed errors, read stream metadata, iterate decoded frames."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from deepvideo_r1.video.errors import VideoDecodeError, VideoNotFoundError


def check_file(path: str) -> str:
    """Absolute path of an existing regular file; raises VideoNotFoundError naming it otherwise."""
    full = os.path.abspath(path)
    if not os.path.exists(full):
        raise VideoNotFoundError(f"media file not found: {full}")
    if not os.path.isfile(full):
        raise VideoDecodeError(f"not a regular file: {full}")
    return full


@contextmanager
def open_input(path: str) -> Iterator[av.container.InputContainer]:
    """av.open(path) for reading; any FFmpeg error becomes VideoDecodeError naming the path."""
    try:
        container = av.open(path, mode="r")
    except av.FFmpegError as e:
        raise VideoDecodeError(f"cannot open {path} as media: {e}") from e
    try:
        yield container
    finally:
        container.close()


@dataclass(frozen=True)
class StreamMeta:
    """What the header says about the first video stream (times in seconds from the stream start)."""

    index: int
    time_base: Fraction
    start_pts: int
    duration: float | None
    fps: float | None
    width: int
    height: int
    header_frames: int = 0

    def to_seconds(self, pts: int) -> float:
        """Seconds from the stream start of a pts."""
        return float((pts - self.start_pts) * self.time_base)


def video_stream(container: av.container.InputContainer, path: str, threads: int = 0) -> av.VideoStream:
    """The first video stream; `threads` = 0: FFmpeg's automatic frame + slice threading, 1: one thread."""
    if not container.streams.video:
        raise VideoDecodeError(f"no video stream in {path}")
    stream = container.streams.video[0]
    if threads != 1:
        stream.thread_type = "AUTO"
        stream.thread_count = threads
    return stream


def stream_meta(container: av.container.InputContainer, stream: av.VideoStream) -> StreamMeta:
    """Duration, average fps and size from the headers; None where the container does not say."""
    tb = stream.time_base or Fraction(1, 1_000_000)
    start_pts = stream.start_time if stream.start_time is not None else 0
    if stream.duration:
        duration = float(stream.duration * tb)
    elif container.duration:
        # container.duration is in AV_TIME_BASE (microseconds); webm/mkv only set this one
        duration = container.duration / 1_000_000
    else:
        duration = None
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else None
    cc = stream.codec_context
    return StreamMeta(stream.index, tb, start_pts, duration, fps, cc.width, cc.height, stream.frames or 0)


def decoded_frames(
    container: av.container.InputContainer, stream: av.VideoStream, path: str
) -> Iterator[av.VideoFrame]:
    """Frames in presentation order from the current demux position to the end of the stream."""
    try:
        for packet in container.demux(stream):
            yield from packet.decode()
    except av.FFmpegError as e:
        raise VideoDecodeError(f"decoding failed in {path}: {e}") from e


def packet_times(
    container: av.container.InputContainer, stream: av.VideoStream, meta: StreamMeta
) -> list[float]:
    """Presentation times of every video packet (demux only, no decoding): a cheap pass over the file."""
    times = []
    for packet in container.demux(stream):
        if packet.size and packet.pts is not None:
            times.append(meta.to_seconds(packet.pts))
    return sorted(times)


@dataclass(frozen=True)
class PacketInfo:
    """One coded frame as the demuxer reports it (no decoding): pts / dts in stream time base."""

    pts: int | None
    dts: int | None
    key: bool


def packet_index(
    container: av.container.InputContainer, stream: av.VideoStream, path: str
) -> list[PacketInfo]:
    """Every non-empty video packet in decode order (one demux pass; ~17 ms for 60 s of 720p h264)."""
    try:
        return [PacketInfo(p.pts, p.dts, p.is_keyframe) for p in container.demux(stream) if p.size]
    except av.FFmpegError as e:
        raise VideoDecodeError(f"demuxing failed in {path}: {e}") from e


def seek(container: av.container.InputContainer, stream: av.VideoStream, pts: int) -> bool:
    """Seek to the keyframe at or before `pts` (decoder buffers are flushed); False if it fails."""
    try:
        container.seek(pts, stream=stream, backward=True, any_frame=False)
    except av.FFmpegError:
        return False
    return True


def decode_size(width: int, height: int, max_pixels: int | None) -> tuple[int, int] | None:
    """(w, h) to scale a width x height frame to so that w·h <= max_pixels, aspect kept; None = as is.

    s = sqrt(max_pixels / (W·H)); w = max(1, floor(W·s)), h = max(1, floor(H·s)).
    """
    if max_pixels is None or width * height <= max_pixels:
        return None
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def to_rgb(frame: av.VideoFrame, max_pixels: int | None = None) -> np.ndarray:
    """[H, W, 3] uint8 RGB of a decoded frame, scaled by swscale (area filter) when it has more than
    `max_pixels` pixels: the conversion and the scaling are one pass, no full-size RGB frame is made."""
    size = decode_size(frame.width, frame.height, max_pixels)
    if size is None:
        return frame.to_ndarray(format="rgb24")
    return frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA").to_ndarray()
