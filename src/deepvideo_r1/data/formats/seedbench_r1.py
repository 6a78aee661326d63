"""SEED-Bench-R1 [`seedbench_r1`]: one JSON object per line.

Validation (validation_L1/L2/L3.jsonl): choice_a..choice_d, golden_choice_idx "A"–"D", sample_id.
Training (training_6k.jsonl): answer + negative_answers; the options are the answer plus 3
negatives, shuffled by an RNG seeded from the record's own content, so the same record always gets
the same options wherever it sits in the file. Video at
`<root>/videos/<video_source>/<video_basename>` only when task_progress_metadata is non-empty; image
at `<root>/images/<video_source>/<current_observation_basename>` always.
Frame numbers refer to the uncut source video and are not used.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping
from typing import Any

from deepvideo_r1.data.fields import LETTERS, answer_letter, optional, require, string_list
from deepvideo_r1.data.registry import RecordContext, register_format
from deepvideo_r1.data.sample import Sample, VideoRef

NUM_NEGATIVES = 3
_CHOICE_KEYS = ("choice_a", "choice_b", "choice_c", "choice_d")
# "validation_L2.jsonl" → L2 (the paper's in-distribution / cross-environment / cross-task levels).
_LEVEL = re.compile(r"(?:^|[^A-Za-z0-9])(L[123])(?:[^0-9]|$)")
_COPIED_METADATA = ("task_goal", "video_id", "domain", "scenario")


def _detect(record: Mapping[str, Any]) -> bool:
    return "task_progress_metadata" in record and (
        "golden_choice_idx" in record or "negative_answers" in record
    )


def shuffled_options(record: Mapping[str, Any], answer: str, negatives: list[str]) -> tuple[list[str], str]:
    """Answer + 3 negatives in a deterministic order; returns (options, answer letter).

    Seed = first 8 bytes of sha256 over the record's question, answer, negatives and media names, so
    the order depends on the record only (not on file order, process or PYTHONHASHSEED).
    """
    key = [record.get("question"), answer, negatives]
    key += [record.get(k) for k in ("video_source", "video_basename", "current_observation_basename")]
    digest = hashlib.sha256(json.dumps(key, ensure_ascii=False).encode("utf-8")).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    options = [*rng.sample(negatives, NUM_NEGATIVES), answer]
    rng.shuffle(options)
    return options, LETTERS[options.index(answer)]


def _options_and_answer(record: Mapping[str, Any], ctx: RecordContext) -> tuple[list[str], str, str]:
    """(options, answer letter, split name) for a validation or a training record."""
    if "golden_choice_idx" in record:
        options = [require(record, k, ctx, str).strip() for k in _CHOICE_KEYS]
        letter = answer_letter(require(record, "golden_choice_idx", ctx, str), 4, ctx, "golden_choice_idx")
        return options, letter, "validation"
    answer = require(record, "answer", ctx, str).strip()
    negatives = [n.strip() for n in string_list(record, "negative_answers", ctx) if n.strip() != answer]
    if len(negatives) < NUM_NEGATIVES:
        raise ctx.error(
            f"negative_answers needs at least {NUM_NEGATIVES} texts different from the answer",
            field="negative_answers",
        )
    options, letter = shuffled_options(record, answer, negatives)
    return options, letter, "training"


@register_format("seedbench_r1", container="jsonl", detect=_detect, description="SEED-Bench-R1 jsonl")
def convert(record: Mapping[str, Any], ctx: RecordContext) -> Sample:
    """One SEED-Bench-R1 record → a multiple_choice `Sample` with the video (if any) and the image."""
    options, letter, split = _options_and_answer(record, ctx)
    source = require(record, "video_source", ctx, str)
    progress = require(record, "task_progress_metadata", ctx, list)
    image = require(record, "current_observation_basename", ctx, str)
    videos = []
    if progress:
        videos.append(VideoRef(ctx.media("videos", source, require(record, "video_basename", ctx, str))))
    sample_id = optional(record, "sample_id", ctx, (int, str))
    metadata: dict[str, Any] = {"dataset": "seedbench_r1", "split": split, "video_source": source}
    level = _LEVEL.search(ctx.file.stem)
    if level:
        metadata["level"] = level.group(1)
    metadata.update({k: record[k] for k in _COPIED_METADATA if k in record})
    return Sample(
        id=str(sample_id) if sample_id is not None else f"{ctx.file.stem}-{ctx.position}",
        question=require(record, "question", ctx, str).strip(),
        problem_type="multiple_choice",
        answer=letter,
        options=options,
        videos=videos,
        images=[ctx.media("images", source, image)],
        metadata=metadata,
    )
