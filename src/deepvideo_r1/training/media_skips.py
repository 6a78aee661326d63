"""data.on_error: skip for media during training: drawn samples whose video or image cannot be
read are left out of the step (never replaced by others) and counted in the metrics."""

from __future__ import annotations

from collections.abc import Callable

from accelerate import Accelerator
from accelerate.utils import gather_object

from deepvideo_r1.data.sample import Sample
from deepvideo_r1.models.media import MediaSource, is_readable, skips_media


def keep_readable(
    indices: list[int],
    sample_of: Callable[[int], Sample],
    media: MediaSource,
    accelerator: Accelerator,
) -> list[int]:
    """The drawn `indices` whose media load (all of them under on_error="raise").

    With several processes every rank keeps the smallest count kept on any rank: each forward,
    backward and generate call is a collective, so the ranks must run the same number of prompts.
    """
    if not skips_media(media):
        return list(indices)
    kept = [i for i in indices if is_readable(media, sample_of(i))]
    if accelerator.num_processes > 1:
        kept = kept[: min(gather_object([len(kept)]))]
    return kept


def media_skip_metrics(media: MediaSource, accelerator: Accelerator) -> dict[str, float]:
    """{"data/media_skipped": distinct samples skipped so far on any rank}; {} under "raise"."""
    if not skips_media(media):
        return {}
    ids = list(media.skipped)
    if accelerator.num_processes > 1:  # a sample drawn by two ranks is one skipped sample
        ids = [i for part in gather_object([ids]) for i in part]
    return {"data/media_skipped": float(len(set(ids)))}
