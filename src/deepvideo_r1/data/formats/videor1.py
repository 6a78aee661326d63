"""Video-R1 [`videor1`]: a JSON list (Video-R1-260k, Video-R1-COT-165k).

problem_id, problem, data_type ("video" | "image"), problem_type ("multiple choice", "numerical",
"free-form", "OCR", "regression"), options "A. text" (empty unless multiple choice), solution
"<answer>X</answer>", path "./..." relative to the root; the CoT variant adds process
"<think>…</think>", split into reasoning steps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from deepvideo_r1.data.fields import (
    answer_letter,
    optional,
    require,
    split_reasoning_steps,
    string_list,
    strip_option_prefix,
)
from deepvideo_r1.data.registry import RecordContext, register_format
from deepvideo_r1.data.sample import Sample, VideoRef

PROBLEM_TYPES = {
    "multiple choice": "multiple_choice",
    "numerical": "numerical",
    "free-form": "free_form",
    "ocr": "ocr",
    "regression": "regression",
}
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def _detect(record: Mapping[str, Any]) -> bool:
    return "problem_id" in record and "problem" in record and "solution" in record


def _problem_type(record: Mapping[str, Any], ctx: RecordContext) -> str:
    raw = require(record, "problem_type", ctx, str)
    try:
        return PROBLEM_TYPES[raw.strip().lower()]
    except KeyError:
        known = ", ".join(repr(k) for k in PROBLEM_TYPES)
        raise ctx.error(f"unknown problem_type {raw!r}; known: {known}", field="problem_type") from None


def _answer(record: Mapping[str, Any], ctx: RecordContext) -> str:
    """The text inside the last <answer>…</answer> of `solution` (the whole text if untagged)."""
    solution = require(record, "solution", ctx, str)
    found = _ANSWER.findall(solution)
    answer = (found[-1] if found else solution).strip()
    if not answer:
        raise ctx.error("solution holds an empty answer", field="solution")
    return answer


@register_format("videor1", container="json_list", detect=_detect, description="Video-R1 (260k / COT-165k)")
def convert(record: Mapping[str, Any], ctx: RecordContext) -> Sample:
    """One Video-R1 record → `Sample` (image records get `images`, video records `videos`)."""
    problem_type = _problem_type(record, ctx)
    options = [strip_option_prefix(o, i) for i, o in enumerate(string_list(record, "options", ctx, False))]
    answer = _answer(record, ctx)
    if problem_type == "multiple_choice":
        answer = answer_letter(answer, len(options), ctx, "solution") if options else answer
    data_type = require(record, "data_type", ctx, str)
    if data_type not in ("video", "image"):
        raise ctx.error(f"data_type must be 'video' or 'image', got {data_type!r}", field="data_type")
    media = ctx.media(require(record, "path", ctx, str))
    process = optional(record, "process", ctx, str)
    metadata: dict[str, Any] = {"dataset": "videor1", "data_type": data_type}
    if record.get("data_source") is not None:
        metadata["data_source"] = record["data_source"]
    return Sample(
        id=str(require(record, "problem_id", ctx, (str, int))),
        question=require(record, "problem", ctx, str).strip(),
        problem_type=problem_type,
        answer=answer,
        options=options,
        videos=[VideoRef(media)] if data_type == "video" else [],
        images=[media] if data_type == "image" else [],
        reasoning=split_reasoning_steps(process) if process and process.strip() else None,
        metadata=metadata,
    )
