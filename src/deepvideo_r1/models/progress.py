"""transformers' own progress bars ("Loading weights", "Writing model shards") switched off while
our code loads and saves models: they would interleave with our progress and log lines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hf_progress_bars_off() -> Iterator[None]:
    """Disable transformers' progress bars inside the block; restore the previous state after."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
