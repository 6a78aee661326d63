"""LongVideoBench [`longvideobench`]: a JSON list.

question, candidates (4–5 plain texts), correct_choice (0-based; absent in the test file → answer ""
and metadata["labeled"] = False), video_path relative to `<root>/videos/`, duration (s),
duration_group, optional subtitle_path (kept in metadata, relative to `<root>/subtitles/`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deepvideo_r1.data.fields import LETTERS, optional, require, string_list
from deepvideo_r1.data.registry import RecordContext, register_format
from deepvideo_r1.data.sample import Sample, VideoRef

_COPIED_METADATA = (
    "duration",
    "duration_group",
    "subtitle_path",
    "question_category",
    "topic_category",
    "level",
    "video_id",
)


def _detect(record: Mapping[str, Any]) -> bool:
    return "candidates" in record and "video_path" in record


@register_format("longvideobench", container="json_list", detect=_detect, description="LongVideoBench")
def convert(record: Mapping[str, Any], ctx: RecordContext) -> Sample:
    """One LongVideoBench record → a multiple_choice `Sample` (unlabeled when correct_choice is absent)."""
    options = [c.strip() for c in string_list(record, "candidates", ctx)]
    choice = optional(record, "correct_choice", ctx, int)
    if choice is not None and not 0 <= choice < len(options):
        raise ctx.error(
            f"correct_choice {choice} is outside 0..{len(options) - 1} ({len(options)} candidates)",
            field="correct_choice",
        )
    sample_id = optional(record, "id", ctx, (str, int))
    metadata: dict[str, Any] = {"dataset": "longvideobench", "labeled": choice is not None}
    metadata.update({k: record[k] for k in _COPIED_METADATA if record.get(k) is not None})
    return Sample(
        id=str(sample_id) if sample_id is not None else f"{ctx.file.stem}-{ctx.position}",
        question=require(record, "question", ctx, str).strip(),
        problem_type="multiple_choice",
        answer="" if choice is None else LETTERS[choice],
        options=options,
        videos=[VideoRef(ctx.media("videos", require(record, "video_path", ctx, str)))],
        metadata=metadata,
    )
