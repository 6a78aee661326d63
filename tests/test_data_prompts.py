"""Prompt text per problem type and the SFT target text."""

from __future__ import annotations

import pytest

from deepvideo_r1.data import PROBLEM_TYPES, Sample, build_question_text, build_target_text
from deepvideo_r1.data.prompts import TEMPLATES, THINK_INSTRUCTION


def sample(problem_type: str, **kw) -> Sample:
    return Sample(id="s", question="What happens?", problem_type=problem_type, **kw)


def test_every_problem_type_has_a_template() -> None:
    assert set(TEMPLATES) == set(PROBLEM_TYPES)


def test_multiple_choice_layout_exact() -> None:
    text = build_question_text(sample("multiple_choice", options=["red", "green", "blue"], answer="B"))
    assert text == (
        "What happens?\nOptions:\nA. red\nB. green\nC. blue\n"
        + THINK_INSTRUCTION
        + " Inside <answer> </answer> write only the option letter (e.g. A)."
    )


def test_hint_goes_after_options_and_before_instruction() -> None:
    s = sample("multiple_choice", options=["red", "green"], answer="B")
    text = build_question_text(s, hint="Hint: the square never changes colour.")
    lines = text.split("\n")
    assert lines[:5] == [
        "What happens?",
        "Options:",
        "A. red",
        "B. green",
        "Hint: the square never changes colour.",
    ]
    assert lines[5].startswith("Think about the question") and len(lines) == 6
    assert build_question_text(s, hint="  ") == build_question_text(s)  # a blank hint adds nothing


@pytest.mark.parametrize(
    ("problem_type", "kwargs", "phrase"),
    [
        ("numerical", {"answer": "3"}, "only the number (e.g. 42 or 3.14)"),
        ("regression", {"answer": "2.5"}, "only the number"),
        ("ocr", {"answer": "STOP"}, "as text"),
        ("free_form", {"answer": "A dog runs."}, "as text"),
        ("temporal_grounding", {"timestamps": [(1.0, 2.0)]}, "'start-end' (e.g. 12.5-17.0)"),
        ("grounded_qa", {"options": ["x", "y"], "answer": "A"}, "e.g. 'C; 12.0-15.5'"),
    ],
)
def test_per_type_instruction(problem_type: str, kwargs: dict, phrase: str) -> None:
    text = build_question_text(sample(problem_type, **kwargs))
    assert text.startswith("What happens?\n")
    last = text.rsplit("\n", 1)[-1]
    assert last == f"{THINK_INSTRUCTION} {TEMPLATES[problem_type].answer_instruction}" and phrase in last
    has_options = "Options:\nA. x\nB. y" in text
    assert has_options == (problem_type == "grounded_qa")  # options are listed only for choice types


def test_unknown_type_raises_listing_known() -> None:
    with pytest.raises(ValueError, match="known: multiple_choice"):
        build_question_text(sample("counting"))


def test_target_texts() -> None:
    mc = sample("multiple_choice", options=["a", "b"], answer="B", reasoning=["Step one.", "Step two."])
    assert build_target_text(mc) == "<think>Step one. Step two.</think><answer>B</answer>"
    tg = sample(
        "temporal_grounding", timestamps=[(12.5, 17.0), (20.0, 21.0)], reasoning=["It starts at 12.5."]
    )
    assert build_target_text(tg) == "<think>It starts at 12.5.</think><answer>12.5-17.0</answer>"
    gqa = sample("grounded_qa", options=["x", "y", "z"], answer="C", timestamps=[(12.0, 15.5)])
    assert build_target_text(gqa) == "<think></think><answer>C; 12.0-15.5</answer>"
    assert (
        build_target_text(sample("numerical", answer="3.14159")) == "<think></think><answer>3.14159</answer>"
    )


def test_target_is_none_without_an_answer() -> None:
    assert build_target_text(sample("multiple_choice", options=["a", "b"])) is None  # unlabeled test record
    assert build_target_text(sample("temporal_grounding")) is None
    assert build_target_text(sample("grounded_qa", options=["a", "b"], timestamps=[(1.0, 2.0)])) is None
