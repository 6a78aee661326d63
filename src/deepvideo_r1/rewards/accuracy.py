"""Accuracy reward by problem type, read from the last `<answer>…</answer>` block after the
reasoning (an answer block inside `<think>…</think>` is not the answer; see `answer_region`).

An empty or missing answer block scores 0; so does anything that does not parse. Per type
(`answer` is the gold value; `pred` the stripped answer-block text):

- multiple_choice: `answer` is the gold letter ("B"; "(B)" and "B." are accepted too). `pred` may
  be "B", "b", "B.", "(B)", "[B]", "B)", "B:", "B. text", "(B) text", "Option B", or the exact
  text of one option (case- and whitespace-insensitive, trailing "." ignored) when `options` is
  given. A bare letter followed by a space and text ("A cat…") counts only if the text is that
  option's text. Two different letters ("A, B", "A or B", "(A) (B)", "A) or maybe B)" — another
  option named anywhere after the first) or a letter whose text is
  another option's text score 0. Letters run A–Z, or A up to the number of options when given.
- numerical: the whole `pred` must be one number ("3", "3.0", "-2.5", "1,234", "1.5e3"); 1 if it
  equals the gold after rounding both to 2 decimals (half up, in decimal: 2.004 → 2.00, 2.005 →
  2.01), else 0. "3.0.1", "NaN", "inf" and "3 apples" score 0.
- ocr: 1 − word error rate (jiwer; case-sensitive), floored at 0. Words are split on any run of
  whitespace (spaces, newlines, tabs, no-break spaces), so "EXIT\nONLY" is the two words EXIT ONLY.
- free_form: mean of ROUGE-1, ROUGE-2 and ROUGE-L F1 (rouge-score, Porter stemmer; its tokenizer
  keeps only ASCII letters and digits, so non-Latin text scores 0). When the gold has a single
  token it has no bigrams, so the mean is over ROUGE-1 and ROUGE-L only.
- regression: 1 − |pred − gold| / |gold|, floored at 0. For gold = 0 the relative error is
  undefined and the absolute error is used instead: 1 − |pred|, floored at 0.
- temporal_grounding: `answer` is the gold span — (start, end), a list of [start, end] segments,
  or text "12.5-17.0" / "[12.5, 17.0]" — or empty, with the spans in `segments`. The prediction is
  the first two numbers in `pred` ("12.5 to 17.0", "[12.5, 17.0]", "12.5-17.0", "from 12.5s to
  17s"). Reward = temporal IoU (see `temporal.py`; a reversed predicted span scores 0).
- grounded_qa (NExT-GQA): the answer block holds the option letter, then the span:
  `<answer>C; 12.0-15.5</answer>` (also "(C) [12.0, 15.5]", "C. 12.0 to 15.5", "C, 12-15.5").
  `answer` is the gold letter, `segments` the gold span(s). Reward = 0.5 · [letter correct] +
  0.5 · IoU(first two numbers after the letter, segments). A block with only a span still earns
  its IoU half; only a letter, its choice half.

A malformed gold answer or span raises `RewardError`; `check_gold` runs that check when a dataset
is loaded, so a bad label fails (or is skipped) there instead of at some step mid-run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

import jiwer
from rouge_score import rouge_scorer, tokenizers

from deepvideo_r1.rewards.errors import RewardError
from deepvideo_r1.rewards.parsing import (
    extract_answer,
    leading_choice,
    named_choices,
    normalize_text,
    parse_number,
    second_choice,
    to_decimal,
)
from deepvideo_r1.rewards.temporal import gold_spans, parse_predicted_span, temporal_iou

ANSWER_FORMATS: dict[str, str] = {
    "multiple_choice": "the option letter only, e.g. <answer>B</answer>",
    "numerical": "the number only, e.g. <answer>3.5</answer>",
    "ocr": "the text exactly as written, e.g. <answer>STOP</answer>",
    "free_form": "a short free-text answer, e.g. <answer>a man opens the door</answer>",
    "regression": "the number only, e.g. <answer>42.7</answer>",
    "temporal_grounding": "start and end in seconds, e.g. <answer>12.5-17.0</answer>",
    "grounded_qa": "the option letter, a semicolon, then start and end in seconds, "
    "e.g. <answer>C; 12.0-15.5</answer>",
}
"""What the answer block should hold, per problem type: the text a prompt builder shows the model
so that its answers parse (every example above scores 1 against itself)."""

Scorer = Callable[[str, Any, Sequence[str] | None, Any], float]
_SCORERS: dict[str, Scorer] = {}


def _scorer(problem_type: str) -> Callable[[Scorer], Scorer]:
    """Register `fn(pred, answer, options, segments) -> float` for a problem type."""

    def decorate(fn: Scorer) -> Scorer:
        _SCORERS[problem_type] = fn
        return fn

    return decorate


def normalize_problem_type(name: str) -> str:
    """ "Multiple choice", "free-form", "OCR" → multiple_choice, free_form, ocr."""
    return "_".join(name.strip().lower().replace("-", " ").split())


def accuracy_reward(
    completion: str,
    answer: Any,
    problem_type: str,
    options: Sequence[str] | None = None,
    *,
    segments: Sequence[Sequence[float]] | None = None,
) -> float:
    """Accuracy in [0, 1] of the last answer block against the gold `answer` (module docstring)."""
    key = normalize_problem_type(problem_type)
    scorer = _SCORERS.get(key)
    if scorer is None:
        raise RewardError(f"unknown problem type {problem_type!r}; known: {', '.join(sorted(_SCORERS))}")
    pred = extract_answer(completion)
    if not pred:
        return 0.0
    return scorer(pred, answer, options or None, segments)


# --- multiple choice -------------------------------------------------------------------------


def gold_letter(answer: Any) -> str:
    """The gold option letter from "B", "(B)", "B." or " b "."""
    text = str(answer).strip().strip("()[]. ").upper()
    if len(text) != 1 or not "A" <= text <= "Z":
        raise RewardError(f"gold answer {answer!r} is not an option letter A-Z")
    return text


def _in_range(letter: str, options: Sequence[str] | None) -> bool:
    return options is None or ord(letter) - ord("A") < len(options)


def _option_letters_with_text(text: str, options: Sequence[str] | None) -> list[str]:
    """Letters of the options whose normalised text equals `text`'s."""
    if not options or not normalize_text(text):
        return []
    norm = normalize_text(text)
    return [chr(ord("A") + i) for i, opt in enumerate(options) if normalize_text(opt) == norm]


def parse_choice(pred: str, options: Sequence[str] | None) -> str | None:
    """The single option letter `pred` names, or None (garbage, ambiguous or out of range)."""
    by_text = _option_letters_with_text(pred, options)
    if by_text:
        return by_text[0] if len(by_text) == 1 else None
    lead = leading_choice(pred)
    if lead is None or not _in_range(lead[0], options):
        return None
    letter, rest, delimited = lead
    second = second_choice(rest)
    if second is not None and second != letter and _in_range(second, options):
        return None
    rest_letters = _option_letters_with_text(rest, options)
    if rest_letters:
        return letter if letter in rest_letters else None
    if _names_another(letter, rest, options):
        return None
    return letter if delimited or second == letter else None


def _names_another(letter: str, rest: str, options: Sequence[str] | None) -> bool:
    """Whether the text after the chosen letter names a different option ("A) or maybe B)")."""
    return any(other != letter and _in_range(other, options) for other in named_choices(rest))


@_scorer("multiple_choice")
def _score_multiple_choice(pred: str, answer: Any, options: Sequence[str] | None, segments: Any) -> float:
    return float(parse_choice(pred, options) == gold_letter(answer))


# --- numbers ---------------------------------------------------------------------------------


def _gold_number(answer: Any) -> Decimal:
    gold = to_decimal(answer)
    if gold is None:
        raise RewardError(f"gold answer {answer!r} is not a finite number")
    return gold


def round2_equal(a: Decimal, b: Decimal) -> bool:
    """a and b equal after rounding both to 2 decimals, half up (exact decimal arithmetic)."""
    with localcontext() as ctx:
        # Enough digits that quantize never overflows the context, however large the number.
        ctx.prec = max(28, a.adjusted() + 4, b.adjusted() + 4)
        step = Decimal("0.01")
        return a.quantize(step, rounding=ROUND_HALF_UP) == b.quantize(step, rounding=ROUND_HALF_UP)


@_scorer("numerical")
def _score_numerical(pred: str, answer: Any, options: Sequence[str] | None, segments: Any) -> float:
    gold = _gold_number(answer)
    value = parse_number(pred)
    return float(value is not None and round2_equal(value, gold))


@_scorer("regression")
def _score_regression(pred: str, answer: Any, options: Sequence[str] | None, segments: Any) -> float:
    gold = _gold_number(answer)
    value = parse_number(pred)
    if value is None:
        return 0.0
    error = abs(value - gold) / abs(gold) if gold != 0 else abs(value)
    return float(max(Decimal(0), 1 - error))


# --- text ------------------------------------------------------------------------------------


def _gold_text(answer: Any) -> str:
    text = str(answer).strip() if answer is not None else ""
    if not text:
        raise RewardError("gold answer text is empty")
    return text


def _words(text: str) -> str:
    """Words joined by single spaces: str.split() breaks on every Unicode whitespace (\\n, \\t,
    no-break space), where jiwer's default transform would keep a single one inside a word."""
    return " ".join(text.split())


@_scorer("ocr")
def _score_ocr(pred: str, answer: Any, options: Sequence[str] | None, segments: Any) -> float:
    return max(0.0, 1.0 - float(jiwer.wer(_words(_gold_text(answer)), _words(pred))))


@functools.lru_cache(maxsize=1)
def _rouge() -> tuple[rouge_scorer.RougeScorer, tokenizers.DefaultTokenizer]:
    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=True)
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=tokenizer), tokenizer


@_scorer("free_form")
def _score_free_form(pred: str, answer: Any, options: Sequence[str] | None, segments: Any) -> float:
    scorer, tokenizer = _rouge()
    gold = _gold_text(answer)
    scores = scorer.score(gold, pred)
    # A one-token gold has no bigrams: ROUGE-2 would be 0 even for an exact answer, so leave it out.
    kinds = ("rouge1", "rouge2", "rougeL") if len(tokenizer.tokenize(gold)) > 1 else ("rouge1", "rougeL")
    return sum(scores[k].fmeasure for k in kinds) / len(kinds)


# --- time spans ------------------------------------------------------------------------------


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, tuple)) and len(value) == 0)


@_scorer("temporal_grounding")
def _score_temporal(pred: str, answer: Any, options: Sequence[str] | None, segments: Any) -> float:
    source = segments if _is_empty(answer) else answer
    if _is_empty(source):
        raise RewardError("temporal_grounding needs the gold span in `answer` or `segments`")
    gold = gold_spans(source)
    span = parse_predicted_span(pred)
    return temporal_iou(span, gold) if span is not None else 0.0


def _leading_letter_and_rest(pred: str, options: Sequence[str] | None) -> tuple[str | None, str]:
    """grounded_qa: the letter the block starts with (None if none) and the text after it."""
    lead = leading_choice(pred)
    if lead is None:
        return None, pred
    letter, rest, delimited = lead
    head = rest.lstrip()[:1]
    if not (delimited or head.isdigit() or head in ("[", "(")):
        return None, pred
    second = second_choice(rest)
    if not _in_range(letter, options) or (second not in (None, letter) and _in_range(second, options)):
        return None, rest
    return (None if _names_another(letter, rest, options) else letter), rest


@_scorer("grounded_qa")
def _score_grounded_qa(pred: str, answer: Any, options: Sequence[str] | None, segments: Any) -> float:
    if _is_empty(segments):
        raise RewardError("grounded_qa needs the gold span(s) in `segments`")
    gold, spans = gold_letter(answer), gold_spans(segments)
    letter, rest = _leading_letter_and_rest(pred, options)
    span = parse_predicted_span(rest)
    iou = temporal_iou(span, spans) if span is not None else 0.0
    return 0.5 * float(letter == gold) + 0.5 * iou


def known_problem_types() -> tuple[str, ...]:
    """The problem types `accuracy_reward` scores."""
    return tuple(sorted(_SCORERS))


# A probe completion that reaches every gold check of every scorer: a letter (choice types), then
# a span (grounding types read it and validate the gold spans against it); number and text scorers
# parse their gold before looking at the prediction.
_GOLD_PROBE = "<answer>A; 0-1</answer>"


def check_gold(
    problem_type: str,
    answer: Any,
    options: Sequence[str] | None = None,
    segments: Sequence[Sequence[float]] | None = None,
) -> None:
    """Raise `RewardError` if scoring any completion against this gold label would raise.

    Runs the scorer itself on a probe answer, so "what is a valid gold" has one home: the scorer.
    Used when a dataset is loaded, so that a bad label fails there instead of mid-run.
    """
    accuracy_reward(_GOLD_PROBE, answer, problem_type, options, segments=segments)
