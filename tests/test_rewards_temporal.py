"""Temporal IoU: hand-computed spans, segment merging, reversed spans, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepvideo_r1.rewards import RewardError, merge_spans, parse_predicted_span, temporal_iou
from deepvideo_r1.rewards.temporal import gold_spans


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ((10, 20), (15, 25), 5 / 15),  # ∩ [15, 20] = 5, ∪ [10, 25] = 15
        ((12, 14), (10, 20), 2 / 10),  # contained: 2 / 10
        ((10, 20), (10, 20), 1.0),
        ((0, 1), (2, 3), 0.0),  # disjoint
        ((0, 1), (1, 2), 0.0),  # touching: ∩ has length 0
        # pred merges to (0, 6), (10, 12) = 8 s; gt 6 s; ∩ = [5, 6] + [10, 11] = 2; ∪ = 8 + 6 - 2 = 12
        ([(0, 4), (2, 6), (10, 12)], [(5, 11)], 2 / 12),
        # gt merges to (0, 10); pred (5, 15): ∩ 5, ∪ 15
        ((5, 15), [(0, 6), (4, 10)], 5 / 15),
        ((20, 10), (10, 20), 0.0),  # reversed prediction scores 0
        ([(0, 5), (9, 8)], (0, 5), 0.0),  # any reversed predicted segment scores 0
        ((5, 5), (5, 5), 0.0),  # zero-length union
        ((float("nan"), 3), (0, 3), 0.0),
        ([], (0, 3), 0.0),  # no predicted span
    ],
)
def test_temporal_iou_hand_computed(pred: object, gt: object, expected: float) -> None:
    assert temporal_iou(pred, gt) == pytest.approx(expected)


@pytest.mark.parametrize("gt", [(20, 10), [(0, 1), (3, 2)], [], (0, float("inf")), "0-1"])
def test_bad_gold_span_raises(gt: object) -> None:
    with pytest.raises(RewardError):
        temporal_iou((0, 1), gt)


def test_merge_spans() -> None:
    assert merge_spans([(5, 6), (1, 3), (0, 2), (3, 4)]) == [(0, 4), (5, 6)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.5 to 17.0", (12.5, 17.0)),
        ("[12.5, 17.0]", (12.5, 17.0)),
        ("12.5-17.0", (12.5, 17.0)),  # dash is a range, not a minus sign
        ("from 12.5s to 17s", (12.5, 17.0)),
        ("between 3 and 7 seconds, maybe 9", (3.0, 7.0)),  # first two numbers
        ("12.5", None),
        ("soon", None),
    ],
)
def test_parse_predicted_span(text: str, expected: tuple[float, float] | None) -> None:
    assert parse_predicted_span(text) == expected


def test_gold_spans_forms() -> None:
    assert gold_spans("12.5-17.0") == [(12.5, 17.0)]
    assert gold_spans("[[1, 2], [5, 6.5]]") == [(1.0, 2.0), (5.0, 6.5)]
    assert gold_spans((1, 2)) == [(1.0, 2.0)]
    assert gold_spans([[1, 2], [3, 4]]) == [(1.0, 2.0), (3.0, 4.0)]
    with pytest.raises(RewardError):
        gold_spans("1, 2, 3")  # odd count of numbers


_span = st.tuples(st.floats(0, 100), st.floats(0, 100)).map(sorted).map(tuple)


@settings(max_examples=150, deadline=None)
@given(_span, _span)
def test_iou_properties(a: tuple[float, float], b: tuple[float, float]) -> None:
    iou = temporal_iou(a, b)
    assert 0.0 <= iou <= 1.0
    assert iou == pytest.approx(temporal_iou(b, a))
    if a[1] > a[0]:
        assert temporal_iou(a, a) == 1.0
