"""What `deepvideo-r1 inspect-data` shows: the normalised JSON form and a readable table."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from deepvideo_r1.data.loader import LoadResult
from deepvideo_r1.data.sample import Sample

INSPECT_KEYS = ("id", "problem_type", "question", "options", "answer", "videos", "images", "timestamps")


def inspect_record(sample: Sample) -> dict[str, Any]:
    """The `inspect-data --json` object: INSPECT_KEYS only, videos as a list of absolute path strings."""
    record = sample.to_json()
    record["videos"] = [v.path for v in sample.videos]
    return {key: record[key] for key in INSPECT_KEYS}


def _truncate(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _media(sample: Sample) -> str:
    names = [v.path.rsplit("/", 1)[-1] for v in sample.videos] + [p.rsplit("/", 1)[-1] for p in sample.images]
    return ", ".join(names)


def samples_table(samples: list[Sample], title: str = "") -> Table:
    """One row per sample: id, type, question (truncated), number of options, answer, media file names."""
    table = Table(title=title or None)
    for column in ("id", "type", "question", "options", "answer", "media"):
        table.add_column(column, overflow="fold")
    for s in samples:
        answer = s.answer or ("-".join(f"{t:g}" for t in s.timestamps[0]) if s.timestamps else "")
        row = (s.id, s.problem_type, _truncate(s.question, 60), str(len(s.options)), answer, _media(s))
        table.add_row(*row)
    return table


def summary_lines(result: LoadResult) -> list[str]:
    """Plain-text summary: the format, the sample count, counts per type, each skipped record."""
    lines = [f"format: {result.format}", f"samples: {len(result.samples)}"]
    lines += [f"  {ptype}: {count}" for ptype, count in sorted(result.counts.items())]
    lines.append(f"skipped: {len(result.skipped)}")
    lines += [f"  {s.reason}" for s in result.skipped]
    return lines
