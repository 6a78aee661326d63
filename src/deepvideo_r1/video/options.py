"""The video section of the run configuration: frame sampling and Qwen-VL resizing.

Owned here, next to the decoder and the frame cache that read it; `config.py` composes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import Field

from deepvideo_r1.options import Section

PAPER_PIXELS = 252 * 252  # 16 frames at 252x252 per frame (paper, Implementation details)


@dataclass(frozen=True)
class FrameSampling:
    """Which frames to decode: `num_frames` uniformly, else `fps` clamped to [min_frames, max_frames];
    frames above `max_decode_pixels` are scaled down while decoding (see `decode.load_video`)."""

    num_frames: int | None = 16
    fps: float | None = None
    min_frames: int = 4
    max_frames: int = 768
    max_decode_pixels: int | None = None

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `decode.load_video` (max_decode_pixels only when set)."""
        kwargs = asdict(self)
        if self.max_decode_pixels is None:
            del kwargs["max_decode_pixels"]
        return kwargs


@dataclass(frozen=True)
class FrameResize:
    """Qwen-VL's smart_resize limits for stored frames: per-frame pixel range, total budget, factor."""

    min_pixels: int
    max_pixels: int
    total_pixels: int | None = None
    factor: int = 28


class VideoConfig(Section):
    """Frame sampling and Qwen-VL resizing."""

    num_frames: int | None = Field(16, ge=1, description="Frames sampled uniformly per clip. Paper: 16.")
    fps: float | None = Field(None, gt=0, description="Sample at this rate instead (set num_frames: null).")
    min_frames: int = Field(4, ge=1, description="Lower bound on the frame count when sampling by fps.")
    max_frames: int = Field(
        768, ge=1, description="Frames per video at most: caps fps sampling; a larger num_frames is an error."
    )
    max_decode_pixels: int = Field(
        1920 * 1080,
        ge=784,
        description="Larger frames are scaled down in the decoder to this many pixels (aspect kept), "
        "so a huge stream never materialises at full size; smaller ones decode at their own size.",
    )
    min_pixels: int = Field(PAPER_PIXELS, ge=784, description="Min pixels per frame after smart_resize.")
    max_pixels: int = Field(PAPER_PIXELS, ge=784, description="Max pixels per frame. Paper: 252*252.")
    total_pixels: int | None = Field(None, ge=784, description="Budget over all frames; None = no budget.")
    cache_dir: str | None = Field(None, description="Decoded-frame cache. None = <train.output_dir>/cache.")

    def sampling(self) -> FrameSampling:
        """The decoder's frame sampling (fps only applies when num_frames is unset)."""
        return FrameSampling(
            num_frames=self.num_frames,
            fps=self.fps if self.num_frames is None else None,
            min_frames=self.min_frames,
            max_frames=self.max_frames,
            max_decode_pixels=self.max_decode_pixels,
        )

    def resize(self, factor: int) -> FrameResize:
        """The resize limits of frames fed to a model whose patch·merge size is `factor`."""
        return FrameResize(self.min_pixels, self.max_pixels, self.total_pixels, factor)
