"""The project's own schema [`jsonl`]: `Sample.to_json()`, one object per line.

    {"id": str, "problem_type": str, "question": str, "options": [str], "answer": str,
     "videos": [{"path": str, "start": float|null, "end": float|null}] or [str], "images": [str],
     "timestamps": [[s, e], ...] | null, "reasoning": [str] | null, "metadata": {}}

Required: id, problem_type, question. Media paths are relative to the root (default: the file's
directory) or absolute. Unknown keys are errors, so a typo cannot pass silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from deepvideo_r1.artifacts import atomic_write
from deepvideo_r1.data.fields import check_type, optional, parse_segments, require, string_list
from deepvideo_r1.data.registry import RecordContext, register_format
from deepvideo_r1.data.sample import Sample, VideoRef

KEYS = (
    "id",
    "problem_type",
    "question",
    "options",
    "answer",
    "videos",
    "images",
    "timestamps",
    "reasoning",
    "metadata",
)
_VIDEO_KEYS = ("path", "start", "end")


def _detect(record: Mapping[str, Any]) -> bool:
    return {"id", "problem_type", "question"} <= record.keys()


def _as_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _video(value: Any, i: int, ctx: RecordContext) -> VideoRef:
    key = f"videos[{i}]"
    if isinstance(value, str):
        return VideoRef(ctx.media(value))
    check_type(value, key, ctx, dict)
    for unknown in sorted(set(value) - set(_VIDEO_KEYS)):
        raise ctx.error(f"unknown key {unknown!r} in {key} (allowed: {', '.join(_VIDEO_KEYS)})", field=key)
    path = require(value, "path", ctx, str)
    start = optional(value, "start", ctx, (int, float))
    end = optional(value, "end", ctx, (int, float))
    if start is not None and end is not None and not 0 <= start <= end:
        raise ctx.error(f"{key} needs 0 <= start <= end, got {start}..{end}", field=key)
    return VideoRef(ctx.media(path), _as_float(start), _as_float(end))


@register_format("jsonl", container="jsonl", detect=_detect, description="the project's own schema")
def convert(record: Mapping[str, Any], ctx: RecordContext) -> Sample:
    """One project-schema record → `Sample` (media paths made absolute against the root)."""
    for unknown in sorted(set(record) - set(KEYS)):
        raise ctx.error(f"unknown key {unknown!r} (allowed: {', '.join(KEYS)})", field=unknown)
    sample_id = require(record, "id", ctx, (str, int))
    timestamps = record.get("timestamps")
    reasoning = record.get("reasoning")
    return Sample(
        id=str(sample_id),
        problem_type=require(record, "problem_type", ctx, str),
        question=require(record, "question", ctx, str),
        options=string_list(record, "options", ctx, required=False),
        answer=optional(record, "answer", ctx, str) or "",
        videos=[_video(v, i, ctx) for i, v in enumerate(optional(record, "videos", ctx, list) or [])],
        images=[ctx.media(p) for p in string_list(record, "images", ctx, required=False)],
        timestamps=None if timestamps is None else parse_segments(timestamps, "timestamps", ctx),
        reasoning=None if reasoning is None else string_list(record, "reasoning", ctx),
        metadata=dict(optional(record, "metadata", ctx, dict) or {}),
    )


def _relative(path: str, root: Path | None) -> str:
    return path if root is None else os.path.relpath(path, root)


def sample_record(sample: Sample, root: str | Path | None = None) -> dict[str, Any]:
    """`sample.to_json()` with media paths relative to `root` (unchanged when root is None)."""
    base = None if root is None else Path(root).absolute()
    record = sample.to_json()
    for video in record["videos"]:
        video["path"] = _relative(video["path"], base)
    record["images"] = [_relative(p, base) for p in record["images"]]
    return record


def write_samples_jsonl(samples: Iterable[Sample], path: str | Path, root: str | Path | None = None) -> int:
    """Write `samples` in the project schema, one JSON object per line; returns the count written.

    With `root`, media paths are written relative to it (load back with the same `root`, or put the
    file in `root` and rely on the default). Parent directories are created. UTF-8, no ASCII escaping.
    Atomic: the lines go to a temp file in the same directory, renamed over `path` only when all
    are written, so a failure (e.g. text that is not valid Unicode) leaves no partial file.
    """
    count = 0

    def write(f: IO[bytes]) -> None:
        nonlocal count
        for sample in samples:
            f.write((json.dumps(sample_record(sample, root), ensure_ascii=False) + "\n").encode("utf-8"))
            count += 1

    atomic_write(path, write)
    return count
