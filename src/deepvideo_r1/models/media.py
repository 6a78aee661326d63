"""Sample media for rollout and training: decoded (cached) frames and images, then PromptInputs.

Frames are decoded once per (file, sampling, size) and kept resized on disk by the FrameCache, so
later epochs read uint8 arrays instead of decoding. A sample whose media cannot be read raises an
error naming the sample and the file; under on_error="skip", `readable` says False instead and
records the sample in `skipped` (its callers leave it out; nothing is replaced).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from deepvideo_r1.data.sample import Sample
from deepvideo_r1.models.adapter import ModelAdapter, PixelBudget
from deepvideo_r1.models.batch import PromptInputs
from deepvideo_r1.video import VideoDecodeError, load_image
from deepvideo_r1.video.cache import FrameCache
from deepvideo_r1.video.options import VideoConfig
from deepvideo_r1.video.qwen import smart_resize

logger = logging.getLogger(__name__)


class SampleMediaError(RuntimeError):
    """A sample's video or image could not be read; names the sample and the file."""


@dataclass
class SampleMedia:
    """frames uint8 [F, H, W, 3] (or None), their times (s) and sampling rate; image uint8 [H, W, 3]."""

    frames: np.ndarray | None
    frame_times: list[float] | None
    sample_fps: float | None
    image: np.ndarray | None


def pixel_budget(video: VideoConfig) -> PixelBudget:
    """The adapter's per-frame pixel range from the video config (images share the video range)."""
    return PixelBudget(
        video_min_pixels=video.min_pixels,
        video_max_pixels=video.max_pixels,
        video_total_pixels=video.total_pixels,
        image_min_pixels=video.min_pixels,
        image_max_pixels=video.max_pixels,
    )


class MediaLoader:
    """`loader(sample) -> SampleMedia` with an on-disk frame cache; `factor` = patch·merge size.

    `on_error`: "raise" or "skip" (data.on_error); see `readable`. `skipped`: sample id -> reason.
    """

    def __init__(
        self,
        video: VideoConfig,
        cache_dir: str | Path,
        factor: int = 28,
        on_error: Literal["raise", "skip"] = "raise",
    ) -> None:
        self.video = video
        self.cache = FrameCache(cache_dir)
        self.factor = factor
        self.on_error = on_error
        self.skipped: dict[str, str] = {}
        self._readable: set[str] = set()

    def readable(self, sample: Sample) -> bool:
        """Whether to use `sample`: always True under "raise" (loading it raises later); under
        "skip" its media are loaded once (filling the frame cache), and a failure is logged,
        recorded in `skipped` and answered False from then on."""
        if self.on_error == "raise" or sample.id in self._readable:
            return True
        if sample.id in self.skipped:
            return False
        try:
            self(sample)
        except SampleMediaError as e:
            self.skipped[sample.id] = str(e)
            logger.warning("skipped sample with unreadable media (data.on_error=skip): %s", e)
            return False
        self._readable.add(sample.id)
        return True

    def __call__(self, sample: Sample) -> SampleMedia:
        if len(sample.videos) > 1 or len(sample.images) > 1:
            raise SampleMediaError(
                f"sample {sample.id}: {len(sample.videos)} videos and {len(sample.images)} images; "
                "one video and one image per sample are supported"
            )
        frames = times = fps = image = None
        try:
            if sample.videos:
                frames, times, fps = self._video(sample)
            if sample.images:
                image = self._image(sample.images[0])
        except (VideoDecodeError, FileNotFoundError, OSError) as e:
            raise SampleMediaError(f"sample {sample.id}: {e}") from e
        return SampleMedia(frames=frames, frame_times=times, sample_fps=fps, image=image)

    def _image(self, path: str) -> np.ndarray:
        """The image, refused here (naming the file) if its shape is one smart_resize cannot take."""
        image, v = load_image(path), self.video
        try:
            smart_resize(image.shape[0], image.shape[1], self.factor, v.min_pixels, v.max_pixels)
        except ValueError as e:
            raise VideoDecodeError(f"{path}: {e}") from e
        return image

    def _video(self, sample: Sample) -> tuple[np.ndarray, list[float], float]:
        ref, v = sample.videos[0], self.video
        frames, info = self.cache.load_video(
            ref.path, v.sampling(), ref.start, ref.end, v.resize(self.factor)
        )
        return frames, list(info.timestamps), float(info.sample_fps)


MediaSource = MediaLoader | Callable[[Sample], SampleMedia]
"""A MediaLoader, or any `sample -> SampleMedia` callable (no skip policy: everything is used)."""


def is_readable(media: MediaSource, sample: Sample) -> bool:
    """`media.readable(sample)` for a MediaLoader; True for a plain callable."""
    return media.readable(sample) if isinstance(media, MediaLoader) else True


def skips_media(media: MediaSource) -> bool:
    """Whether `media` leaves unreadable samples out (a MediaLoader with on_error="skip")."""
    return isinstance(media, MediaLoader) and media.on_error == "skip"


def encode_sample(
    adapter: ModelAdapter,
    sample: Sample,
    media: SampleMedia,
    *,
    hint: str | None = None,
    frame_transform: Callable | None = None,
) -> PromptInputs:
    """One sample (+ optional hint text and frame transform) -> PromptInputs for the policy."""
    return adapter.encode_prompt(
        sample,
        media.frames,
        media.image,
        hint=hint,
        sample_fps=media.sample_fps,
        frame_times=media.frame_times,
        frame_transform=frame_transform if media.frames is not None else None,
    )
