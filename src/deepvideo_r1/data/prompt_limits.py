"""The prompt-length check at load time: a sample whose question text is longer than
data.max_prompt_tokens is an error naming it, before any decoding (a 200k-character question
would otherwise reach evaluation and try to allocate gigabytes for one batch)."""

from __future__ import annotations

from collections.abc import Callable

from deepvideo_r1.data.errors import DataError
from deepvideo_r1.data.prompts import build_question_text
from deepvideo_r1.data.sample import Sample


class PromptTooLongError(DataError):
    """A sample's prompt text has more tokens than data.max_prompt_tokens."""


def check_prompt_lengths(
    samples: list[Sample], count_tokens: Callable[[str], int], max_tokens: int, source: str
) -> None:
    """Raise PromptTooLongError for the first sample whose user-turn text (question, options,
    instruction; the chat template and the video tokens come on top) has more than `max_tokens`
    tokens. Only texts longer than `max_tokens` UTF-8 bytes are tokenized: a byte-level BPE token
    holds at least one byte, so shorter texts cannot exceed the limit."""
    for sample in samples:
        text = build_question_text(sample)
        if len(text.encode("utf-8")) <= max_tokens:
            continue
        n = count_tokens(text)
        if n > max_tokens:
            raise PromptTooLongError(
                f"{source}: sample {sample.id!r} has a {n}-token prompt ({len(text)} characters), more "
                f"than data.max_prompt_tokens={max_tokens}; shorten it, leave it out, or raise the limit"
            )
