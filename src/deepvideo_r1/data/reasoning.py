"""Reasoning traces as steps: the one splitter every adapter and the hint bank use."""

from __future__ import annotations

import re

_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.S | re.I)
_ANSWER = re.compile(r"<answer>.*?(?:</answer>|$)", re.S | re.I)
_TAG = re.compile(r"</?(?:think|answer)>", re.I)
_STEP_MARKER = re.compile(r"\bstep\s*\d+\s*[:.)]\s*", re.I)
_NUMBERED = re.compile(r"^\s*\(?\d+[.)]\s+")
_BULLET = re.compile(r"^\s*[-*•]\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def squash_whitespace(text: str) -> str:
    """Collapse runs of whitespace to one space and strip."""
    return " ".join(text.split())


def _reasoning_body(text: str) -> str:
    """The <think> body if present, else the text without <answer> blocks; tags removed."""
    match = _THINK.search(text)
    body = match.group(1) if match else _ANSWER.sub(" ", text)
    return _TAG.sub(" ", body)


def _split_numbered(lines: list[str]) -> list[str]:
    """Lines starting with '1.' / '2)' / '(3)' open a step; other lines continue the current one."""
    steps: list[str] = []
    for line in lines:
        if _NUMBERED.match(line) or not steps:
            steps.append(_NUMBERED.sub("", line))
        else:
            steps[-1] = f"{steps[-1]} {line}"
    return steps


def split_reasoning_steps(text: str) -> list[str]:
    """Split a reasoning trace into steps, in this order of preference.

    1. "Step k:" markers (any case; text before the first marker is its own step);
    2. numbered lines ("1.", "2)", "(3)"), at least two of them;
    3. non-empty lines (bullets "- " / "* " stripped), at least two of them;
    4. sentences (split after . ! ? followed by whitespace).
    Only the <think>…</think> body is used when present; <answer> blocks are dropped otherwise.
    Markers and numbering are removed; whitespace is collapsed; empty steps are dropped.
    """
    body = _reasoning_body(text)
    if _STEP_MARKER.search(body):
        parts = _STEP_MARKER.split(body)
    else:
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        if sum(bool(_NUMBERED.match(line)) for line in lines) >= 2:
            parts = _split_numbered(lines)
        elif len(lines) >= 2:
            parts = [_BULLET.sub("", line) for line in lines]
        else:
            parts = _SENTENCE_END.split(body)
    return [step for step in (squash_whitespace(part) for part in parts) if step]
