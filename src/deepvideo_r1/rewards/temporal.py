"""Temporal IoU of [start, end] spans in seconds, and span parsing.

A side is one span `(start, end)` or a list of spans. Each side's spans are merged where they
overlap, then

    IoU = |union(pred) ∩ union(gt)| / |union(pred) ∪ union(gt)|

Reversed spans: a *predicted* span with start > end (or a non-finite bound) scores 0 — the model
wrote an invalid span and is not rewarded for it. A reversed or non-finite *gold* span is a data
error and raises `RewardError`. A union of zero length (e.g. both sides are points) scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from deepvideo_r1.rewards.errors import RewardError
from deepvideo_r1.rewards.parsing import all_unsigned_numbers, find_unsigned_numbers

Span = tuple[float, float]


def _as_spans(side: object) -> list[Span]:
    """One (start, end) pair or a sequence of pairs → list of float pairs (validity not checked)."""
    if isinstance(side, (str, bytes)) or not isinstance(side, Sequence):
        raise RewardError(f"a span must be (start, end) or a list of them, got {side!r}")
    if len(side) == 2 and all(isinstance(x, (int, float)) for x in side):
        return [(float(side[0]), float(side[1]))]
    spans = []
    for seg in side:
        if isinstance(seg, (str, bytes)) or not isinstance(seg, Sequence) or len(seg) != 2:
            raise RewardError(f"a span must be (start, end) or a list of them, got {side!r}")
        spans.append((float(seg[0]), float(seg[1])))
    return spans


def _is_valid(span: Span) -> bool:
    return math.isfinite(span[0]) and math.isfinite(span[1]) and span[0] <= span[1]


def merge_spans(spans: list[Span]) -> list[Span]:
    """Sorted, overlap-free spans covering the same time: [(0, 2), (1, 3), (5, 6)] → [(0, 3), (5, 6)]."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _intersection(a: list[Span], b: list[Span]) -> float:
    """Total overlap of two merged span lists (two-pointer sweep, O(len a + len b))."""
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def temporal_iou(pred: object, gt: object) -> float:
    """Temporal IoU of `pred` and `gt`, each (start, end) seconds or a list of such spans.

    Example: pred (10, 20), gt (15, 25): intersection 5, union 15, IoU 1/3.
    """
    pred_spans, gt_spans = _as_spans(pred), _as_spans(gt)
    if not gt_spans:
        raise RewardError("gold span list is empty")
    bad_gt = [s for s in gt_spans if not _is_valid(s)]
    if bad_gt:
        raise RewardError(f"gold span {bad_gt[0]} is reversed or not finite (need start <= end)")
    if not pred_spans or not all(_is_valid(s) for s in pred_spans):
        return 0.0
    p, g = merge_spans(pred_spans), merge_spans(gt_spans)
    inter = _intersection(p, g)
    union = sum(e - s for s, e in p) + sum(e - s for s, e in g) - inter
    return inter / union if union > 0 else 0.0


def parse_predicted_span(text: str) -> Span | None:
    """The first two numbers of `text` as (start, end), or None if there are fewer than two.

    Reads "12.5 to 17.0", "[12.5, 17.0]", "12.5-17.0", "from 12.5s to 17s". Numbers are unsigned,
    so the dash of "12.5-17.0" is a range dash, not a minus sign. A number that overflows to
    infinity ("1e999 1e999") makes the span None: it names no time.
    """
    numbers = find_unsigned_numbers(text, limit=2)
    if len(numbers) != 2 or not all(math.isfinite(x) for x in numbers):
        return None
    return numbers[0], numbers[1]


def gold_spans(answer: object) -> list[Span]:
    """A gold span given as (start, end), a list of spans, or text such as "12.5-17.0",
    "[12.5, 17.0]" or "[[1, 2], [5, 6]]" (numbers read in pairs) → list of spans."""
    if isinstance(answer, str):
        numbers = all_unsigned_numbers(answer)
        if not numbers or len(numbers) % 2:
            raise RewardError(f"gold span text {answer!r} must hold pairs of numbers, e.g. '12.5-17.0'")
        return [(numbers[k], numbers[k + 1]) for k in range(0, len(numbers), 2)]
    return _as_spans(answer)
