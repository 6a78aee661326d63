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

    def to_pts(self, seconds: float) -> int:
        """Stream pts at or before `seconds` (pts = floor(s / time_base) + start_pts)."""
        return math.floor(seconds / self.time_base) + self.start_pts

    def to_seconds(self, pts: int) -> float:
        """Seconds from the stream start of a pts."""
        return float((pts - self.start_pts) * self.time_base)


def video_stream(container: av.container.InputContainer, path: str) -> av.VideoStream:
    """The first video stream, with automatic (frame + slice) decoder threading."""
    if not container.streams.video:
        raise VideoDecodeError(f"no video stream in {path}")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
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


def keyframe_before(probe: av.container.InputContainer, stream: av.VideoStream, pts: int) -> int | None:
    """Pts of the keyframe the demuxer seeks to for `pts` (seek backward, read one packet), or None."""
    try:
        probe.seek(pts, stream=stream, backward=True, any_frame=False)
        for packet in probe.demux(stream):
            return packet.pts if packet.pts is not None else packet.dts
    except av.FFmpegError:
        return None
    return None


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """[H, W, 3] uint8 RGB of a decoded frame."""
    return frame.to_ndarray(format="rgb24")
