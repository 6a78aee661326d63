"""Seek-per-GOP sampling vs decoding every frame, 16 frames from a 60 s 1280x720 h264 video.

    python benchmarks/video_decode.py [--repeats 3] [--data-dir DIR]

Generates the videos with PyAV (moving texture, 30 fps, libx264 preset veryfast, one file per
keyframe interval: 1 s, 2 s and x264's default keyint=250 with scene-cut detection on) in a temp
dir (or --data-dir, reused when present), times `load_video(num_frames=16)` with `seek=True` and
`seek=False`, each with FFmpeg's automatic threading (threads=0) and single-threaded (threads=1),
prints a table and writes benchmarks/results/video_decode.json. Targets are the plain uniform
16 (linspace(0, 60 - 1/30, 16)), nothing is tuned.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deepvideo_r1.video import load_video, write_video

SECONDS, FPS, HEIGHT, WIDTH, NUM_FRAMES = 60, 30, 720, 1280, 16
GOPS = {"1 s": 30, "2 s": 60, "x264 default (250)": None}
THREADS = {"auto": 0, "1": 1}
RESULTS = Path(__file__).parent / "results" / "video_decode.json"


def moving_frames(n: int):
    """A smooth random texture scrolled 7 px per frame plus a frame-dependent tint (cheap, compressible)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (HEIGHT // 8, WIDTH // 8 * 2, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(base, 8, axis=0), 8, axis=1)  # [720, 2560, 3]
    for i in range(n):
        x0 = (7 * i) % WIDTH
        frame = texture[:, x0 : x0 + WIDTH].copy()
        frame[..., 2] = (frame[..., 2].astype(np.int32) + i) % 256
        yield frame


def make_video(data_dir: Path, name: str, gop: int | None) -> Path:
    path = data_dir / f"bench_{SECONDS}s_{WIDTH}x{HEIGHT}_{name.split()[0]}.mp4"
    if not path.exists():
        tmp = path.with_suffix(".part.mp4")
        write_video(tmp, moving_frames(SECONDS * FPS), FPS, gop=gop, options={"preset": "veryfast"})
        os.replace(tmp, path)
    return path


def time_load(path: Path, seek: bool, threads: int, repeats: int) -> tuple[float, int, int, np.ndarray]:
    """Best wall time (s) over repeats, frames decoded, seeks, the frames."""
    best, info, frames = float("inf"), None, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        frames, info = load_video(path, num_frames=NUM_FRAMES, seek=seek, threads=threads)
        best = min(best, time.perf_counter() - t0)
    return best, info.decoded_frames, info.seeks, frames


def run(data_dir: Path, repeats: int) -> list[dict]:
    rows = []
    for name, gop in GOPS.items():
        path = make_video(data_dir, name, gop)
        for threads_name, threads in THREADS.items():
            seek_s, seek_dec, seeks, seek_frames = time_load(path, True, threads, repeats)
            full_s, full_dec, _, full_frames = time_load(path, False, threads, repeats)
            if not np.array_equal(seek_frames, full_frames):
                raise AssertionError(f"seek and full decoding returned different frames for {path}")
            rows.append(
                dict(gop=name, threads=threads_name, seek_s=seek_s, seek_decoded=seek_dec, seeks=seeks,
                     full_s=full_s, full_decoded=full_dec, speedup=full_s / seek_s)
            )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        rows = run(data_dir, args.repeats)
    video = f"{SECONDS} s {WIDTH}x{HEIGHT} {FPS} fps h264 video"
    print(f"{NUM_FRAMES} frames from a {video}, best of {args.repeats}")
    head = ("keyframe interval", "threads", "seek (s)", "decoded", "seeks", "all (s)", "decoded", "speed-up")
    widths = (-20, 7, 9, 8, 6, 8, 8, 9)  # negative: left-aligned
    print(" ".join(f"{h:<{-w}}" if w < 0 else f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    for r in rows:
        print(
            f"{r['gop']:<20} {r['threads']:>7} {r['seek_s']:>9.3f} {r['seek_decoded']:>8} {r['seeks']:>6} "
            f"{r['full_s']:>8.3f} {r['full_decoded']:>8} {r['speedup']:>8.1f}x"
        )
    machine = f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), no GPU"
    meta = dict(machine=machine, torch_threads=torch.get_num_threads(), repeats=args.repeats,
                video=f"{video}, libx264 preset veryfast, yuv420p", targets="uniform, 16")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"setup": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
