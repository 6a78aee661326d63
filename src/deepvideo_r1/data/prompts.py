"""Prompt and SFT-target text for each problem type (the Video-R1 / DeepVideo-R1 think-then-answer form).

The user turn is: the question, its options lettered "A. text" (choice types), the hint (if any),
then the instruction to reason in <think> </think> and answer in <answer> </answer>, ending with a
per-type answer instruction. Vision placeholders are not included: the model adapter adds them.
All per-type wording lives in `TEMPLATES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deepvideo_r1.data.fields import LETTERS
from deepvideo_r1.data.sample import Sample

THINK_INSTRUCTION = (
    "Think about the question step by step and write your reasoning between the <think> </think> tags, "
    "then give your final answer between the <answer> </answer> tags."
)


def _span(sample: Sample) -> str | None:
    """The first ground-truth segment as "s-e" in seconds: (12.5, 17.0) → "12.5-17.0"."""
    if not sample.timestamps:
        return None
    start, end = sample.timestamps[0]
    return f"{_seconds(start)}-{_seconds(end)}"


def _seconds(t: float) -> str:
    """Shortest exact-to-the-millisecond text: 12.5, 0.25, 17.0 (one decimal at least)."""
    text = f"{round(t, 3):.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _plain_answer(sample: Sample) -> str | None:
    return sample.answer or None


def _grounded_answer(sample: Sample) -> str | None:
    """ "C; 12.0-15.5" — the letter first, then the span (the grounded_qa reward reads it in that order)."""
    if not sample.answer:
        return None
    span = _span(sample)
    return f"{sample.answer}; {span}" if span else sample.answer


@dataclass(frozen=True)
class TypeTemplate:
    """How one problem type is asked and answered."""

    lettered_options: bool  # list the options as "A. text" under the question
    answer_instruction: str  # appended after THINK_INSTRUCTION
    answer: Callable[[Sample], str | None]  # the gold text that goes inside <answer> </answer>


TEMPLATES: dict[str, TypeTemplate] = {
    "multiple_choice": TypeTemplate(
        True, "Inside <answer> </answer> write only the option letter (e.g. A).", _plain_answer
    ),
    "numerical": TypeTemplate(
        False, "Inside <answer> </answer> write only the number (e.g. 42 or 3.14).", _plain_answer
    ),
    "ocr": TypeTemplate(False, "Inside <answer> </answer> write the text you read, as text.", _plain_answer),
    "free_form": TypeTemplate(False, "Inside <answer> </answer> write your answer as text.", _plain_answer),
    "regression": TypeTemplate(
        False, "Inside <answer> </answer> write only the number (e.g. 42 or 3.14).", _plain_answer
    ),
    "temporal_grounding": TypeTemplate(
        False,
        "Inside <answer> </answer> write the start and end time in seconds as 'start-end' (e.g. 12.5-17.0).",
        _span,
    ),
    "grounded_qa": TypeTemplate(
        True,
        "Inside <answer> </answer> write the option letter then the time span in seconds, "
        "e.g. 'C; 12.0-15.5'.",
        _grounded_answer,
    ),
}


def _template(problem_type: str) -> TypeTemplate:
    try:
        return TEMPLATES[problem_type]
    except KeyError:
        known = ", ".join(TEMPLATES)
        raise ValueError(f"no prompt template for problem type {problem_type!r}; known: {known}") from None


def format_options(options: list[str]) -> str:
    """ "A. first\\nB. second" — one lettered option per line."""
    return "\n".join(f"{LETTERS[i]}. {text}" for i, text in enumerate(options))


def build_question_text(sample: Sample, hint: str | None = None) -> str:
    """The user-turn text: question, lettered options, hint (verbatim), think/answer instruction."""
    template = _template(sample.problem_type)
    parts = [sample.question.strip()]
    if template.lettered_options and sample.options:
        parts.append("Options:\n" + format_options(sample.options))
    if hint and hint.strip():
        parts.append(hint.strip())
    parts.append(f"{THINK_INSTRUCTION} {template.answer_instruction}")
    return "\n".join(parts)


def format_answer(sample: Sample) -> str | None:
    """The gold text inside <answer> </answer> for `sample` (None when it has no answer)."""
    return _template(sample.problem_type).answer(sample)


def build_target_text(sample: Sample) -> str | None:
    """SFT target "<think>step1 step2 …</think><answer>X</answer>"; None when there is no gold answer.

    Steps are joined with single spaces; a sample without reasoning gets an empty think block.
    """
    answer = format_answer(sample)
    if answer is None:
        return None
    steps = " ".join(step.strip() for step in sample.reasoning or [] if step.strip())
    return f"<think>{steps}</think><answer>{answer}</answer>"
