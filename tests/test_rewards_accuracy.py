"""Accuracy reward per problem type: a table of tricky completions with hand-computed scores."""

from __future__ import annotations

import pytest

from deepvideo_r1.data.sample import PROBLEM_TYPES
from deepvideo_r1.rewards import ANSWER_FORMATS, RewardError, accuracy_reward, known_problem_types


def ans(text: str) -> str:
    return f"<think>reasoning</think><answer>{text}</answer>"


OPTIONS = ["a red cat", "a blue dog", "a green bird", "a fish"]


@pytest.mark.parametrize(
    ("completion", "with_options", "no_options"),
    [
        (ans("B"), 1.0, 1.0),
        (ans("b"), 1.0, 1.0),
        (ans("B."), 1.0, 1.0),
        (ans("(B)"), 1.0, 1.0),
        (ans("[B]"), 1.0, 1.0),
        (ans("B)"), 1.0, 1.0),
        (ans("B: a blue dog"), 1.0, 1.0),
        (ans("B. a blue dog"), 1.0, 1.0),
        (ans("(B) because the dog is blue"), 1.0, 1.0),
        (ans("Option B"), 1.0, 1.0),
        (ans("  \n B \n"), 1.0, 1.0),  # whitespace
        (ans("A Blue   DOG."), 1.0, 0.0),  # exact option text, case/space-insensitive
        (ans("B a blue dog"), 1.0, 0.0),  # bare letter + its own option text
        (ans("B. a red cat"), 0.0, 1.0),  # letter B with option A's text: contradiction
        (ans("A, B"), 0.0, 0.0),  # two different letters
        (ans("A or B"), 0.0, 0.0),
        (ans("(A) (B)"), 0.0, 0.0),
        (ans("A/B"), 0.0, 0.0),
        (ans("B. I think so"), 1.0, 1.0),  # "I" followed by prose is not a second letter
        (ans("A"), 0.0, 0.0),  # wrong letter
        (ans("E"), 0.0, 0.0),  # out of range with 4 options; wrong without
        (ans("A cat"), 0.0, 0.0),  # prose starting with an article, not a letter
        (ans("The answer is B"), 0.0, 0.0),  # garbage
        (ans(""), 0.0, 0.0),  # empty answer
        ("B", 0.0, 0.0),  # no tags
        ("<answer>B", 0.0, 0.0),  # unclosed
        ("<answer>A</answer> no wait <answer>B</answer>", 1.0, 1.0),  # last block wins
        ("<answer>B</answer> no wait <answer>A</answer>", 0.0, 0.0),
    ],
)
def test_multiple_choice(completion: str, with_options: float, no_options: float) -> None:
    assert accuracy_reward(completion, "B", "multiple_choice", OPTIONS) == with_options
    assert accuracy_reward(completion, "B", "multiple_choice") == no_options


def test_letter_out_of_range_of_options() -> None:
    # Gold E with only 4 options: the prediction "E" is not a valid option letter.
    assert accuracy_reward(ans("E"), "E", "multiple_choice", OPTIONS) == 0.0
    assert accuracy_reward(ans("E"), "(E)", "multiple_choice", [*OPTIONS, "x"]) == 1.0


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("3", "3", 1.0),
        ("3.0", 3, 1.0),
        ("1,234", "1234", 1.0),
        ("-2.5", "-2.50", 1.0),
        ("2.004", "2.0", 1.0),  # 2.004 → 2.00
        ("2.006", "2.0", 0.0),  # 2.006 → 2.01
        ("2.005", 2.0, 0.0),  # half up in decimal: 2.005 → 2.01 (binary float would give 2.00)
        ("2.675", 2.68, 1.0),  # 2.675 → 2.68 in decimal
        ("-0.001", "0", 1.0),  # -0.00 == 0.00
        ("3.0.1", "3", 0.0),
        ("NaN", "0", 0.0),
        ("inf", "1", 0.0),
        ("3 apples", "3", 0.0),
        ("1e300", "1e300", 1.0),  # far beyond the default 28-digit context
        ("", "3", 0.0),
    ],
)
def test_numerical(pred: str, gold: object, expected: float) -> None:
    assert accuracy_reward(ans(pred), gold, "numerical") == expected


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("8", "10", 0.8),  # 1 - |8 - 10| / 10
        ("12.5", "10", 0.75),  # 1 - 2.5 / 10
        ("25", "10", 0.0),  # 1 - 1.5 → floored at 0
        ("-3", "-4", 0.75),  # 1 - 1 / 4
        ("0.25", "0", 0.75),  # gold 0: absolute error, 1 - 0.25
        ("0", "0", 1.0),
        ("3", "0", 0.0),  # 1 - 3 → 0
        ("ten", "10", 0.0),
    ],
)
def test_regression(pred: str, gold: str, expected: float) -> None:
    assert accuracy_reward(ans(pred), gold, "regression") == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        # 5 gold words; 1 substitution (fox→box) + 1 insertion (over): WER 2/5 → 0.6
        ("the quick brown box jumps over", "the quick brown fox jumps", 0.6),
        ("STOP  ahead", "STOP ahead", 1.0),  # whitespace collapsed
        ("EXIT\nONLY", "EXIT ONLY", 1.0),  # a single newline separates words too
        ("EXIT\tONLY", "EXIT ONLY", 1.0),
        ("EXIT\u00a0ONLY", "EXIT ONLY", 1.0),  # no-break space
        ("EXIT ONLY", "EXIT\n\tONLY", 1.0),  # in the gold as well
        ("EXIT\nNOW", "EXIT ONLY", 0.5),  # 2 words, 1 substitution
        ("stop ahead", "STOP ahead", 0.5),  # case-sensitive: 1 substitution of 2 words
        ("a b c d e f g", "x y", 0.0),  # WER (2 sub + 5 ins) / 2 = 3.5 → floored at 0
    ],
)
def test_ocr(pred: str, gold: str, expected: float) -> None:
    assert accuracy_reward(ans(pred), gold, "ocr") == pytest.approx(expected)


def test_free_form_rouge_hand_checked() -> None:
    # gold: the cat sat on the mat / pred: the cat was on the mat (6 tokens each)
    # ROUGE-1: the×2, cat, on, mat = 5 of 6 → F1 5/6
    # ROUGE-2: the-cat, on-the, the-mat = 3 of 5 bigrams → F1 3/5
    # ROUGE-L: LCS "the cat on the mat" = 5 → F1 5/6
    # mean = (5/6 + 3/5 + 5/6) / 3 = 34/45
    score = accuracy_reward(ans("the cat was on the mat"), "the cat sat on the mat", "free_form")
    assert score == pytest.approx(34 / 45)
    assert accuracy_reward(ans("The cat sat on the mat."), "the cat sat on the mat", "free_form") == 1.0
    # One-token gold: no bigrams, so the mean is over ROUGE-1 and ROUGE-L only.
    # pred "cats run": R-1 P 1/2, R 1/1 → F1 2/3 (stemmed "cats" = "cat"); R-L the same → 2/3
    assert accuracy_reward(ans("cat"), "cat", "free_form") == 1.0
    assert accuracy_reward(ans("cats run"), "cat", "free_form") == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ("12.5 to 17.0", 1.0),
        ("[12.5, 17.0]", 1.0),
        ("12.5-17.0", 1.0),
        ("from 12.5s to 17s", 1.0),
        ("10 to 15", 2.5 / 7.0),  # ∩ [12.5, 15] = 2.5, ∪ [10, 17] = 7
        ("17 to 12.5", 0.0),  # reversed
        ("12.5", 0.0),  # one number
        ("", 0.0),
    ],
)
def test_temporal_grounding(pred: str, expected: float) -> None:
    for gold in ("12.5-17.0", "[12.5, 17.0]", (12.5, 17.0), [[12.5, 17.0]]):
        assert accuracy_reward(ans(pred), gold, "temporal_grounding") == pytest.approx(expected)
    # Sample form: answer "" and the span in `segments`.
    got = accuracy_reward(ans(pred), "", "temporal_grounding", segments=[(12.5, 17.0)])
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        # gold C, segments (10, 14); pred span (12, 15.5): ∩ 2, ∪ [10, 15.5] = 5.5
        ("C; 12.0-15.5", 0.5 + 0.5 * 2 / 5.5),
        ("(C) [12.0, 15.5]", 0.5 + 0.5 * 2 / 5.5),
        ("C. 10 to 14", 1.0),
        ("C 10-14", 1.0),
        ("A; 10-14", 0.5),  # wrong letter, perfect span
        ("C", 0.5),  # letter only
        ("10-14", 0.5),  # span only
        ("A, C; 10-14", 0.5),  # two letters: choice 0
        ("C; 14-10", 0.5),  # reversed span: IoU 0
        ("", 0.0),
    ],
)
def test_grounded_qa(pred: str, expected: float) -> None:
    got = accuracy_reward(ans(pred), "C", "grounded_qa", ["w", "x", "y", "z", "v"], segments=[(10, 14)])
    assert got == pytest.approx(expected)


def test_problem_type_names_and_errors() -> None:
    assert accuracy_reward(ans("B"), "B", "Multiple Choice") == 1.0
    assert accuracy_reward(ans("3"), "3", "numerical") == 1.0
    assert accuracy_reward(ans("hi"), "hi", "free-form") == 1.0
    assert accuracy_reward(ans("hi"), "hi", "OCR") == 1.0
    with pytest.raises(ValueError, match="unknown problem type 'essay'; known: free_form, grounded_qa"):
        accuracy_reward(ans("B"), "B", "essay")
    assert set(known_problem_types()) == set(PROBLEM_TYPES)  # every sample type has a scorer


@pytest.mark.parametrize(
    ("answer", "problem_type", "kwargs"),
    [
        ("not a letter", "multiple_choice", {}),
        ("three", "numerical", {}),
        ("", "ocr", {}),
        ("", "temporal_grounding", {}),
        ("C", "grounded_qa", {}),  # no segments
        ("C", "grounded_qa", {"segments": [(5, 1)]}),  # reversed gold
    ],
)
def test_bad_gold_raises(answer: str, problem_type: str, kwargs: dict) -> None:
    with pytest.raises(RewardError):
        accuracy_reward(ans("C; 1-2"), answer, problem_type, **kwargs)


@pytest.mark.parametrize("problem_type", sorted(ANSWER_FORMATS))
def test_answer_format_examples_score_one(problem_type: str) -> None:
    # The example a prompt builder shows the model must parse as a perfect answer of its own.
    example = ANSWER_FORMATS[problem_type].split("e.g. ")[1]
    gold = example.removeprefix("<answer>").removesuffix("</answer>")
    answer, segments = gold, None
    if problem_type == "grounded_qa":
        answer, segments = "C", [(12.0, 15.5)]
    assert accuracy_reward(example, answer, problem_type, segments=segments) == 1.0
    assert set(ANSWER_FORMATS) == set(known_problem_types())
