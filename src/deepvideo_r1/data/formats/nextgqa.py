"""NExT-GQA [`nextgqa`], the grounded-QA JSON list VideoChat-R1 trains on.

id, video (path relative to the root), question, options "(A) text" … "(E) text", answer "(C)",
duration (s), glue = [[start, end], ...] absolute seconds (→ `timestamps`), type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deepvideo_r1.data.fields import answer_letter, parse_segments, require, string_list, strip_option_prefix
from deepvideo_r1.data.registry import RecordContext, register_format
from deepvideo_r1.data.sample import Sample, VideoRef


def _detect(record: Mapping[str, Any]) -> bool:
    return "glue" in record and "options" in record


@register_format("nextgqa", container="json_list", detect=_detect, description="NExT-GQA grounded QA")
def convert(record: Mapping[str, Any], ctx: RecordContext) -> Sample:
    """One NExT-GQA record → a grounded_qa `Sample` (answer letter + ground-truth segments)."""
    options = [strip_option_prefix(o, i) for i, o in enumerate(string_list(record, "options", ctx))]
    if not options:
        raise ctx.error("field 'options' is empty", field="options")
    answer = answer_letter(require(record, "answer", ctx, str), len(options), ctx, "answer")
    metadata: dict[str, Any] = {"dataset": "nextgqa"}
    metadata.update({k: record[k] for k in ("duration", "type") if record.get(k) is not None})
    return Sample(
        id=str(require(record, "id", ctx, (str, int))),
        question=require(record, "question", ctx, str).strip(),
        problem_type="grounded_qa",
        answer=answer,
        options=options,
        videos=[VideoRef(ctx.media(require(record, "video", ctx, str)))],
        timestamps=parse_segments(require(record, "glue", ctx, list), "glue", ctx),
        metadata=metadata,
    )
