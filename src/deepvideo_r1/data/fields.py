"""Field helpers shared by the format adapters: typed lookups, option letters, reasoning steps."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from deepvideo_r1.data.reasoning import split_reasoning_steps as split_reasoning_steps
from deepvideo_r1.data.registry import RecordContext
from deepvideo_r1.data.sample import PROBLEM_TYPES, Sample
from deepvideo_r1.rewards.accuracy import check_gold
from deepvideo_r1.rewards.errors import RewardError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# "(A) text", "A. text", "A) text" — the letter prefixes public files put on options.
_OPTION_PREFIX = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.)])\s*")
# An answer given as "B", "B.", "(B)" or "B. text".
_ANSWER_LETTER = re.compile(r"^\s*\(?([A-Z])\)?(?:[.:)]|\s|$)")

_TYPE_NAMES: dict[type, str] = {str: "a string", list: "a list", int: "an integer", dict: "an object"}


def require(record: Mapping[str, Any], key: str, ctx: RecordContext, kind: type | tuple[type, ...]) -> Any:
    """`record[key]`, raising a located error when it is missing or not of `kind`."""
    if key not in record or record[key] is None:
        raise ctx.error(f"missing required field {key!r}", field=key)
    return check_type(record[key], key, ctx, kind)


def optional(record: Mapping[str, Any], key: str, ctx: RecordContext, kind: type | tuple[type, ...]) -> Any:
    """`record[key]` when present and not null (type-checked), else None."""
    value = record.get(key)
    return None if value is None else check_type(value, key, ctx, kind)


def check_type(value: Any, key: str, ctx: RecordContext, kind: type | tuple[type, ...]) -> Any:
    """`value` unchanged if it is a `kind` (bool is not a number), else a located error."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        wanted = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        raise ctx.error(f"field {key!r} must be {wanted}, got {type(value).__name__}", field=key)
    return value


def string_list(record: Mapping[str, Any], key: str, ctx: RecordContext, required: bool = True) -> list[str]:
    """A list of strings (missing and optional → [])."""
    values = require(record, key, ctx, list) if required else optional(record, key, ctx, list) or []
    for i, value in enumerate(values):
        check_type(value, f"{key}[{i}]", ctx, str)
    return list(values)


def strip_option_prefix(text: str, position: int) -> str:
    """Drop a leading "(A) " / "A. " / "A) " when its letter is the option's own (position 0 → A)."""
    match = _OPTION_PREFIX.match(text)
    if match and (match.group(1) or match.group(2)) == LETTERS[position]:
        return text[match.end() :].strip()
    return text.strip()


def answer_letter(answer: str, num_options: int, ctx: RecordContext, key: str) -> str:
    """The option letter of an answer written "B", "B.", "(B)" or "B. text", checked against the options."""
    match = _ANSWER_LETTER.match(answer.upper() if len(answer.strip()) == 1 else answer)
    if not match or LETTERS.index(match.group(1)) >= num_options:
        raise ctx.error(f"answer {answer!r} is not an option letter A–{LETTERS[num_options - 1]}", field=key)
    return match.group(1)


def parse_segments(value: Any, key: str, ctx: RecordContext) -> list[tuple[float, float]]:
    """[[s, e], ...] (or one flat [s, e]) seconds → list of (s, e) with 0 <= s <= e."""
    if isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ctx.error(f"field {key!r} must be a non-empty list of [start, end] seconds", field=key)
    segments = []
    for seg in value:
        if not (isinstance(seg, list) and len(seg) == 2 and all(_is_number(v) for v in seg)):
            raise ctx.error(f"field {key!r}: segment {seg!r} is not [start, end] in seconds", field=key)
        start, end = float(seg[0]), float(seg[1])
        if not (math.isfinite(start) and math.isfinite(end)):  # JSON Infinity, or 1e309 read as inf
            raise ctx.error(f"field {key!r}: segment {seg!r} is not finite", field=key)
        if not 0 <= start <= end:
            raise ctx.error(f"field {key!r}: segment {seg!r} needs 0 <= start <= end", field=key)
        segments.append((start, end))
    return segments


def check_sample(sample: Sample, ctx: RecordContext) -> Sample:
    """Invariants every adapter's output keeps: problem type, answer letter, timestamps, clip
    bounds, valid Unicode, and a gold label the scorer accepts (so scoring never fails mid-run)."""
    if sample.problem_type not in PROBLEM_TYPES:
        raise ctx.error(
            f"unknown problem_type {sample.problem_type!r}; known: {', '.join(PROBLEM_TYPES)}",
            field="problem_type",
        )
    lettered = sample.problem_type in ("multiple_choice", "grounded_qa")
    if lettered and len(sample.options) < 2:
        raise ctx.error(f"{sample.problem_type} needs at least 2 options", field="options")
    if len(sample.options) > len(LETTERS):
        raise ctx.error(f"at most {len(LETTERS)} options are supported", field="options")
    if lettered and sample.answer and sample.answer not in LETTERS[: len(sample.options)]:
        raise ctx.error(f"answer {sample.answer!r} is not one of the option letters", field="answer")
    needs_span = sample.problem_type == "temporal_grounding"
    if needs_span and not sample.timestamps:
        raise ctx.error("temporal_grounding needs ground-truth timestamps", field="timestamps")
    _check_clips(sample, ctx)
    _check_unicode(sample, ctx)
    if sample.labelled:
        try:
            check_gold(sample.problem_type, sample.answer, sample.options or None, sample.timestamps)
        except RewardError as e:
            raise ctx.error(f"gold label cannot be scored: {e}", field="answer") from e
    return sample


def check_labelled(sample: Sample, ctx: RecordContext) -> Sample:
    """`sample` if it has a gold label; RL training scores every completion against one."""
    if not sample.labelled:
        field = "timestamps" if sample.problem_type == "grounded_qa" and sample.answer else "answer"
        raise ctx.error(f"{sample.problem_type} sample has no gold label to score against", field=field)
    return sample


def _check_clips(sample: Sample, ctx: RecordContext) -> None:
    """Clip bounds are None or finite seconds >= 0 with start <= end (NaN would mean the whole video)."""
    for i, video in enumerate(sample.videos):
        bounds = [b for b in (video.start, video.end) if b is not None]
        ordered = video.start is None or video.end is None or video.start <= video.end
        if not all(math.isfinite(b) and b >= 0 for b in bounds) or not ordered:
            raise ctx.error(
                f"videos[{i}] clip [{video.start}, {video.end}] needs finite 0 <= start <= end seconds",
                field=f"videos[{i}]",
            )


def _check_unicode(sample: Sample, ctx: RecordContext) -> None:
    """Every text encodes as UTF-8: JSON may hold a lone surrogate ("\\ud800") that printing,
    tokenizing and writing the sample would fail on later."""
    for key, value in sample.to_json().items():
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            bad = e.object[e.start : e.end].encode("unicode_escape").decode("ascii")
            raise ctx.error(f"field {key!r} is not valid Unicode (lone surrogate {bad})", field=key) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
