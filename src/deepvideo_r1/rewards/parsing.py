"""Parsing of untrusted completions: tags, numbers and option letters.

Everything here is linear time: tag search uses `str.find`/`str.rfind`/`str.count`, and the few
regular expressions have no nested quantifiers. Only the last `TAIL_CHARS` characters of a
completion are searched for the answer block. Nothing is ever evaluated as code.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

TAIL_CHARS = 20_000
"""Only the last this-many characters of a completion are searched for `<answer>…</answer>`."""

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# A signed decimal with optional thousands commas and exponent; commas are validated in code
# (`_valid_commas`) so the pattern stays free of nested quantifiers.
_NUMBER_RE = re.compile(r"[+-]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d{1,3})?")
# Unsigned decimals anywhere in a text (time spans: the "-" in "12.5-17.0" is a range dash), with
# an optional exponent so that "1e999" reads as one (infinite) number, never as 1 and 999.
_UNSIGNED_RE = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
# A leading option letter: "(B)", "[B]" or a bare "B" not followed by a letter or digit,
# optionally after the word "option".
_CHOICE_RE = re.compile(r"\s*(?:option\s*)?(?:\(([a-z])\)|\[([a-z])\]|([a-z])(?![a-z0-9]))", re.IGNORECASE)
# What may follow a bare letter for it to count as a letter ("B.", "B)", "B:", "B;", "B,").
_DELIMITER_RE = re.compile(r"[.):;,]")
# A second letter right after the first ("A, B", "A or B", "(A) (B)", "A/B", "A. B."): the letter
# must be followed by a delimiter or the end, so prose such as "B. I think…" is not one.
_SECOND_CHOICE_RE = re.compile(
    r"\s*(?:(?:[,/&]|or\b|and\b)\s*)?(?:\(([a-z])\)|\[([a-z])\]|([a-z])(?:[.):;,/&]|\s*$|\s+(?:or|and)\b))",
    re.IGNORECASE,
)


def answer_region(completion: str) -> str:
    """The part of the completion's tail where the answer block may be: after the reasoning.

    Text up to the last `</think>` is reasoning, and so is everything after a `<think>` that is
    never closed: an `<answer>` written while thinking is not the answer. A completion without
    think tags is all answer region.
    """
    tail = completion[-TAIL_CHARS:]
    close = tail.rfind(THINK_CLOSE)
    region = tail[close + len(THINK_CLOSE) :] if close >= 0 else tail
    unclosed = region.find(THINK_OPEN)
    return region if unclosed < 0 else region[:unclosed]


def extract_answer(completion: str) -> str | None:
    """Content of the last `<answer>…</answer>` block outside the reasoning, stripped; None if none.

    The block is the last opening tag that has a closing tag after it, up to the first closing
    tag after that: "<answer>A <answer>B</answer>" gives "B", "<answer>B</answer></answer>" gives
    "B". Only the last `TAIL_CHARS` characters are searched, and only after the reasoning
    (`answer_region`): "<think>…<answer>B</answer>…</think>" has no answer.
    """
    tail = answer_region(completion)
    last_close = tail.rfind(ANSWER_CLOSE)
    if last_close < 0:
        return None
    start = tail.rfind(ANSWER_OPEN, 0, last_close)
    if start < 0:
        return None
    start += len(ANSWER_OPEN)
    return tail[start : tail.find(ANSWER_CLOSE, start)].strip()


def format_reward(completion: str) -> float:
    """1.0 iff the completion is `<think>…</think>` then `<answer>…</answer>`, else 0.0.

    Exactly one of each of the four tags, in that order; only whitespace before, between and
    after the two blocks. The block contents are free (may be empty).
    """
    tags = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)
    if any(completion.count(tag) != 1 for tag in tags):
        return 0.0
    pos = [completion.find(tag) for tag in tags]
    if pos != sorted(pos):
        return 0.0
    outside = (
        completion[: pos[0]],
        completion[pos[1] + len(THINK_CLOSE) : pos[2]],
        completion[pos[3] + len(ANSWER_CLOSE) :],
    )
    return 1.0 if all(not part.strip() for part in outside) else 0.0


def _valid_commas(integer_part: str) -> bool:
    """Thousands separators: first group 1–3 digits, every later group exactly 3 ("1,234,567")."""
    groups = integer_part.split(",")
    if len(groups) == 1:
        return True
    return 1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])


def parse_number(text: str) -> Decimal | None:
    """The text as a finite number if the whole (stripped) text is one number, else None.

    Accepts "3", "3.0", "-2.5", "+4", ".5", "1,234", "1.5e3". Rejects "3.0.1", "NaN", "inf",
    "1,23", "3 apples" (the answer block must hold just the number).
    """
    text = text.strip()
    if not _NUMBER_RE.fullmatch(text):
        return None
    mantissa = re.split(r"[eE]", text, maxsplit=1)[0].lstrip("+-")
    if not _valid_commas(mantissa.split(".")[0]):
        return None
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def to_decimal(value: object) -> Decimal | None:
    """A gold value (number or numeric text) as a finite Decimal, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str):
        return parse_number(value)
    return None


def find_unsigned_numbers(text: str, limit: int) -> list[float]:
    """The first `limit` unsigned decimals in `text`, in order ("12.5-17.0" → [12.5, 17.0])."""
    found: list[float] = []
    for match in _UNSIGNED_RE.finditer(text):
        found.append(float(match.group()))
        if len(found) == limit:
            break
    return found


def all_unsigned_numbers(text: str) -> list[float]:
    """Every unsigned decimal in `text`, in order."""
    return [float(m.group()) for m in _UNSIGNED_RE.finditer(text)]


def leading_choice(text: str) -> tuple[str, str, bool] | None:
    """The option letter a text starts with, as (LETTER, rest, delimited), or None.

    `delimited` is True for "(B)", "[B]", "B.", "B)", "B:", "B;", "B," and a letter that is the
    whole text; False for a bare letter followed by a space ("A cat"), which may be prose.
    """
    match = _CHOICE_RE.match(text)
    if match is None:
        return None
    letter = (match.group(1) or match.group(2) or match.group(3)).upper()
    rest = text[match.end() :]
    wrapped = match.group(3) is None
    if not wrapped and _DELIMITER_RE.match(rest):
        return letter, rest[1:], True
    return letter, rest, wrapped or not rest.strip()


def second_choice(rest: str) -> str | None:
    """The letter of a second option right after the first ("A, B" → "B"), else None."""
    match = _SECOND_CHOICE_RE.match(rest)
    if match is None:
        return None
    return (match.group(1) or match.group(2) or match.group(3)).upper()


# Another option named anywhere in the text: "(B)", "[B]", "option B", or a capital letter followed
# by ")", "." or ":" (then no word character) or ending the text ("A) or maybe B)", "A, or else B").
# A capital followed by a space ("B. I think") is prose, not a choice.
_NAMED_CHOICE_RE = re.compile(
    r"\(([a-z])\)|\[([a-z])\]|\boption\s+([a-z])\b|(?<![A-Za-z0-9'])([A-Z])(?:[.):](?!\w)|\s*$)",
    re.IGNORECASE,
)


def named_choices(text: str) -> set[str]:
    """Every option letter `text` names anywhere ("because A) fits, or maybe B)" → {"A", "B"})."""
    letters = set()
    for match in _NAMED_CHOICE_RE.finditer(text):
        letter = next(g for g in match.groups() if g)
        if match.group(4) is None or letter.isupper():
            letters.add(letter.upper())
    return letters


def normalize_text(text: str) -> str:
    """Case-folded, whitespace-collapsed, trailing-period-stripped text for option matching."""
    return " ".join(text.casefold().split()).rstrip(".").strip()
