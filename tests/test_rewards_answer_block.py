"""Scoring reads only the answer block after the reasoning, refuses two named options and
non-finite spans, and `check_gold` refuses every gold label that would make scoring raise."""

from __future__ import annotations

import pytest

from deepvideo_r1.rewards import (
    RewardError,
    accuracy_reward,
    check_gold,
    extract_answer,
    parse_predicted_span,
)

OPTIONS = ["a red cat", "a blue dog", "a green bird", "a white fish"]


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>it is <answer>B</answer></think>", None),  # only inside the reasoning
        ("<think>r <answer>B</answer>", None),  # inside a think that never closes
        ("<think>r</think><answer>B</answer><think>more", "B"),  # a later unclosed think
        ("<think>maybe <answer>A</answer></think><answer>B</answer>", "B"),
        ("<answer>A</answer><think>r</think>", None),  # an answer before the reasoning
        ("<answer>B</answer>", "B"),  # no think tags: all answer region
    ],
)
def test_answer_only_outside_think(completion, expected):
    assert extract_answer(completion) == expected


def test_answer_inside_think_earns_no_accuracy():
    assert accuracy_reward("<think>so <answer>B</answer></think>", "B", "multiple_choice", OPTIONS) == 0.0
    assert accuracy_reward("<think>so</think><answer>B</answer>", "B", "multiple_choice", OPTIONS) == 1.0


@pytest.mark.parametrize(
    ("pred", "score"),
    [
        ("A) or maybe B)", 0.0),  # two options named: wrong even though A is the gold
        ("A. or perhaps (B)", 0.0),
        ("A, or else option B", 0.0),
        ("A) or maybe B", 0.0),
        ("A) because the cat is red", 1.0),  # prose after the letter names nothing else
        ("A. I think so", 1.0),  # "I" followed by prose is not a letter
        ("A) or maybe E)", 1.0),  # E is not an option of four
        ("A) yes, A.", 1.0),  # the same letter twice is one choice
    ],
)
def test_an_answer_naming_two_options_is_wrong(pred, score):
    completion = f"<think>r</think><answer>{pred}</answer>"
    assert accuracy_reward(completion, "A", "multiple_choice", OPTIONS) == score


def test_grounded_qa_naming_two_options_loses_the_choice_half():
    done = "<think>r</think><answer>{}</answer>"
    # gold C on [10, 20]; the span is exact, so IoU = 1: 0.5·choice + 0.5·1
    assert accuracy_reward(done.format("C; 10-20"), "C", "grounded_qa", OPTIONS, segments=[[10, 20]]) == 1.0
    both = done.format("C) or D); 10-20")
    assert accuracy_reward(both, "C", "grounded_qa", OPTIONS, segments=[[10, 20]]) == 0.5


@pytest.mark.parametrize("text", ["1e999 1e999", "1e999-2", "[5, 1e400]"])
def test_non_finite_span_numbers_give_no_span(text):
    assert parse_predicted_span(text) is None
    # before: "1e999 1e999" read as 1 to 999, which overlaps a gold [0, 999] almost fully
    assert accuracy_reward(f"<answer>{text}</answer>", "", "temporal_grounding", segments=[[0, 999]]) == 0.0


def test_exponents_read_as_one_number():
    assert parse_predicted_span("1e1 to 2e1") == (10.0, 20.0)
    assert parse_predicted_span("12.5-17.0") == (12.5, 17.0)


@pytest.mark.parametrize(
    ("problem_type", "answer", "options", "segments"),
    [
        ("numerical", "abc", None, None),
        ("numerical", "NaN", None, None),
        ("regression", "inf", None, None),
        ("multiple_choice", "", OPTIONS, None),
        ("multiple_choice", "AB", OPTIONS, None),
        ("grounded_qa", "B", OPTIONS, None),  # no timestamps
        ("temporal_grounding", "", None, [[float("inf"), 5.0]]),
        ("temporal_grounding", "1e309-1e309", None, None),
        ("temporal_grounding", "", None, [[5.0, 1.0]]),  # reversed
        ("ocr", "  ", None, None),
        ("free_form", "", None, None),
    ],
)
def test_check_gold_refuses_labels_that_crash_scoring(problem_type, answer, options, segments):
    with pytest.raises(RewardError):
        check_gold(problem_type, answer, options, segments)
    # the same label crashes real scoring: that is what check_gold predicts
    with pytest.raises(RewardError):
        accuracy_reward("<answer>B; 1-2</answer>", answer, problem_type, options, segments=segments)


@pytest.mark.parametrize(
    ("problem_type", "answer", "options", "segments"),
    [
        ("numerical", "3.5", None, None),
        ("regression", "0", None, None),
        ("multiple_choice", "B", OPTIONS, None),
        ("grounded_qa", "B", OPTIONS, [[1.0, 2.0]]),
        ("temporal_grounding", "", None, [[1.0, 2.0]]),
        ("temporal_grounding", "12.5-17.0", None, None),
        ("ocr", "STOP", None, None),
        ("free_form", "a man opens the door", None, None),
    ],
)
def test_check_gold_accepts_good_labels(problem_type, answer, options, segments):
    check_gold(problem_type, answer, options, segments)
