"""Drawing synthetic clips (filled shapes on black) and writing them as deterministic h264 mp4 files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

# Saturated RGB colours on a black background; names double as answer options.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "white": (255, 255, 255),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
}
SHAPES: tuple[str, ...] = ("square", "circle")


# b-frames + macroblock-tree lookahead make x264 output vary from run to run even with one thread
# (measured: 5-20 % of encodes of the same frames differed); without them it is byte-stable.
X264_PARAMS = "bframes=0:mbtree=0"


@dataclass(frozen=True)
class ObjectTrack:
    """One object over the clip: top-left corner per frame, visible on frames [first, last]."""

    colour: str
    shape: str
    size: int
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    first: int
    last: int

    def visible(self, frame: int) -> bool:
        """Whether the object is drawn on `frame`."""
        return self.first <= frame <= self.last

    def pos(self, frame: int) -> tuple[int, int]:
        """Integer top-left (x, y) on `frame`."""
        return round(self.xs[frame]), round(self.ys[frame])

    def describe(self) -> dict[str, object]:
        """Compact JSON description for sample metadata."""
        return {
            "colour": self.colour,
            "shape": self.shape,
            "size": self.size,
            "first_frame": self.first,
            "last_frame": self.last,
            "start": list(self.pos(0)),
            "end": list(self.pos(len(self.xs) - 1)),
        }


def static_track(
    colour: str, shape: str, size: int, xy: tuple[int, int], num_frames: int, first: int = 0, last: int = -1
) -> ObjectTrack:
    """A non-moving object at `xy`, visible on frames [first, last] (last=-1: to the end)."""
    last = num_frames - 1 if last < 0 else last
    return ObjectTrack(colour, shape, size, (xy[0],) * num_frames, (xy[1],) * num_frames, first, last)


def linear_track(
    colour: str, shape: str, size: int, start: tuple[float, float], end: tuple[float, float], num_frames: int
) -> ObjectTrack:
    """An object moving at constant velocity: p_i = start + (end - start) * i / (F - 1)."""
    t = np.linspace(0.0, 1.0, num_frames)
    xs = tuple(float(v) for v in start[0] + (end[0] - start[0]) * t)
    ys = tuple(float(v) for v in start[1] + (end[1] - start[1]) * t)
    return ObjectTrack(colour, shape, size, xs, ys, 0, num_frames - 1)


def grid_slots(
    rng: np.random.Generator, count: int, frame: int, size: int
) -> tuple[int, list[tuple[int, int]]]:
    """Non-touching top-left corners for `count` objects: one random cell each of a k×k grid.

    k = ceil(sqrt(count)); the object side shrinks to cell - 4 so neighbours keep a >= 2 px gap.
    Returns (object side, corners).
    """
    k = max(1, math.ceil(math.sqrt(count)))
    cell = frame // k
    side = max(4, min(size, cell - 4))
    cells = rng.permutation(k * k)[:count]
    corners = []
    for c in cells:
        row, col = divmod(int(c), k)
        jx, jy = rng.integers(1, cell - side - 1, size=2, endpoint=True)
        corners.append((col * cell + int(jx), row * cell + int(jy)))
    return side, corners


def _shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean [size, size] mask: a filled square, or the inscribed disc."""
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    return (xx - c) ** 2 + (yy - c) ** 2 <= (size / 2.0) ** 2


def render_clip(tracks: list[ObjectTrack], frame: int, num_frames: int) -> np.ndarray:
    """Frames uint8 [F, H, W, 3]: black, tracks drawn in list order (later ones on top)."""
    video = np.zeros((num_frames, frame, frame, 3), dtype=np.uint8)
    for tr in tracks:
        mask = _shape_mask(tr.shape, tr.size)
        colour = np.array(COLOURS[tr.colour], dtype=np.uint8)
        for i in range(tr.first, tr.last + 1):
            x, y = tr.pos(i)
            # Clip the stamp to the frame (objects are placed inside, rounding can touch the edge).
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + tr.size, frame), min(y + tr.size, frame)
            sub = mask[y0 - y : y1 - y, x0 - x : x1 - x]
            video[i, y0:y1, x0:x1][sub] = colour
    return video


def add_noise(video: np.ndarray, noise_std: float, rng: np.random.Generator) -> np.ndarray:
    """x <- clip(round(x + 255 * noise_std * N(0, 1)), 0, 255), independent per frame, pixel, channel."""
    if noise_std <= 0:
        return video
    noisy = video.astype(np.float32) + rng.normal(0.0, 255.0 * noise_std, video.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def rgb_to_yuv420(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited-range RGB [H, W, 3] → Y [H, W], U and V [H/2, W/2] (2×2 mean), uint8.

    Y = 16 + 0.257 R + 0.504 G + 0.098 B;  U = 128 - 0.148 R - 0.291 G + 0.439 B;
    V = 128 + 0.439 R - 0.368 G - 0.071 B. Done in numpy (not swscale) so every byte is defined.
    """
    x = frame.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16.0 + 0.256788 * r + 0.504129 * g + 0.097906 * b
    u = 128.0 - 0.148223 * r - 0.290993 * g + 0.439216 * b
    v = 128.0 + 0.439216 * r - 0.367788 * g - 0.071427 * b
    h, w = y.shape
    u = u.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))  # [H/2, W/2]
    v = v.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return tuple(np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, u, v))  # type: ignore[return-value]


def _yuv_frame(frame: np.ndarray):
    """An av.VideoFrame (yuv420p) whose planes, padding included, are fully written."""
    import av

    vf = av.VideoFrame(frame.shape[1], frame.shape[0], "yuv420p")
    for plane, arr in zip(vf.planes, rgb_to_yuv420(frame), strict=True):
        # Edge-replicate into the row padding: uninitialised padding would leak into the encoder.
        padded = np.pad(arr, ((0, 0), (0, plane.line_size - arr.shape[1])), mode="edge")
        plane.update(np.ascontiguousarray(padded).tobytes())
    return vf


def write_mp4(path: Path, frames: np.ndarray, fps: float, crf: int) -> None:
    """Encode uint8 [F, H, W, 3] RGB frames as h264 yuv420p mp4, one thread, no audio, byte-stable."""
    import av

    rate = Fraction(fps).limit_denominator(1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"crf": str(crf), "preset": "medium", "threads": "1", "x264-params": X264_PARAMS}
    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=rate, options=options)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        for i, frame in enumerate(frames):
            vf = _yuv_frame(frame)
            vf.pts, vf.time_base = i, 1 / rate
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))
