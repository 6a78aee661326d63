"""Tag parsing, format reward and number parsing on untrusted completions."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from deepvideo_r1.rewards import TAIL_CHARS, extract_answer, format_reward, parse_number


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>t</think><answer>B</answer>", "B"),
        ("<answer>  B \n</answer>", "B"),  # stripped
        ("<answer>A</answer> then <answer>C</answer>", "C"),  # last block wins
        ("<answer>A <answer>B</answer>", "B"),  # nested open: innermost last block
        ("<answer>A</answer><answer>B", "A"),  # trailing unclosed block is not a block
        ("<answer>B", None),  # unclosed
        ("<answer>B</answer></answer>", "B"),  # stray closing tag
        ("B", None),  # no tags
        ("</answer>B<answer>", None),  # tags in the wrong order
        ("<answer></answer>", ""),  # empty block
        ("<ANSWER>B</ANSWER>", None),  # tags are lowercase only
    ],
)
def test_extract_answer(completion: str, expected: str | None) -> None:
    assert extract_answer(completion) == expected


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>reason</think><answer>B</answer>", 1.0),
        ("  \n<think>reason</think>\n\n<answer>B</answer>\n ", 1.0),  # whitespace around/between
        ("<think></think><answer></answer>", 1.0),  # empty contents are still the format
        ("<answer>B</answer><think>r</think>", 0.0),  # wrong order
        ("<think>r</think>text<answer>B</answer>", 0.0),  # text between the blocks
        ("Sure! <think>r</think><answer>B</answer>", 0.0),  # text before
        ("<think>r</think><answer>B</answer>.", 0.0),  # text after
        ("<think>r</think><answer>A</answer><answer>B</answer>", 0.0),  # two answer blocks
        ("<think><think>r</think><answer>B</answer>", 0.0),  # nested think
        ("<think>r<answer>B</answer></think>", 0.0),  # answer inside think
        ("<think>r</think><answer>B", 0.0),  # unclosed answer
        ("<answer>B</answer>", 0.0),  # no think
        ("", 0.0),
    ],
)
def test_format_reward(completion: str, expected: float) -> None:
    assert format_reward(completion) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", "3"),
        (" 3.0 ", "3.0"),
        ("-2.5", "-2.5"),
        ("+4", "4"),
        (".5", "0.5"),
        ("1,234", "1234"),
        ("1,234,567.25", "1234567.25"),
        ("1.5e3", "1500"),
        ("3.0.1", None),
        ("NaN", None),
        ("nan", None),
        ("inf", None),
        ("-Infinity", None),
        ("1,23", None),  # comma groups must be 3 digits
        ("12,3456", None),
        ("3 apples", None),
        ("", None),
        ("--3", None),
        ("0x1F", None),
        ("1e5000", None),  # exponent limited to 3 digits
    ],
)
def test_parse_number(text: str, expected: str | None) -> None:
    value = parse_number(text)
    assert (None if value is None else value) == (None if expected is None else Decimal(expected))


def test_long_inputs_are_fast_and_tail_bounded() -> None:
    # 2 MB of reasoning then the answer: found; an answer only at the very start is outside the tail.
    long_think = "<think>" + "step " * 400_000 + "</think><answer>B</answer>"
    many_tags = "<answer>" * 200_000 + "B" + "</answer>" * 1_000
    start = time.perf_counter()
    assert extract_answer(long_think) == "B"
    assert format_reward(long_think) == 1.0
    assert extract_answer(many_tags) == "B"
    assert format_reward(many_tags) == 0.0
    assert extract_answer("<answer>B</answer>" + "x" * TAIL_CHARS) is None
    assert time.perf_counter() - start < 0.5
