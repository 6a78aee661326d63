"""Write uint8 RGB frames to a video file with PyAV (synthetic data, test fixtures, benchmarks)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from fractions import Fraction

import av
import numpy as np

# pixel formats the encoders accept; mjpeg wants full-range ("j") yuv
_PIX_FMT = {"mjpeg": "yuvj420p", "png": "rgb24"}


def _default_pix_fmt(codec: str, height: int, width: int) -> str:
    """yuv420p (the widely playable one) unless the size is odd, where 4:2:0 is impossible."""
    if codec in _PIX_FMT:
        return _PIX_FMT[codec]
    return "yuv444p" if height % 2 or width % 2 else "yuv420p"


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    *,
    codec: str = "libx264",
    gop: int | None = None,
    pts_seconds: Sequence[float] | None = None,
    pix_fmt: str | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """Encode frames (each uint8 [H, W, 3] RGB) into `path` (yuv444p when H or W is odd).

    The container follows the file extension (.mp4, .webm, .avi, .mkv). `gop` sets the keyframe
    interval in frames. `pts_seconds` gives each frame its own time (variable frame rate;
    millisecond resolution); otherwise frame i is at i / fps.
    """
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        if gop is not None:
            stream.codec_context.gop_size = gop
        if pts_seconds is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, image in enumerate(frames):
            if i == 0:
                stream.height, stream.width = image.shape[0], image.shape[1]
                stream.pix_fmt = pix_fmt or _default_pix_fmt(codec, image.shape[0], image.shape[1])
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if pts_seconds is not None:
                frame.pts, frame.time_base = round(pts_seconds[i] * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
