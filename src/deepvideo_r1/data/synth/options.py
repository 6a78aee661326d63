"""The data.synth section of the run configuration; owned here, next to the generator it configures.

The section exposes the sizes and knobs a run varies; `generator_config` is the one place it becomes
the generator's complete `SynthConfig` (palette, shapes, fps and crf keep the generator's defaults).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from deepvideo_r1.data.synth.config import SynthConfig, SynthConfigError
from deepvideo_r1.options import Section


class SynthOptions(Section):
    """The embedded synthetic video dataset (used when data.train_file is None)."""

    n_train: int = Field(2000, ge=1, description="Number of synthetic training samples.")
    n_eval: int = Field(200, ge=1, description="Number of held-out synthetic samples.")
    seed: int = Field(0, description="Seed of the generator; the same seed gives the same files.")
    difficulty: Literal["easy", "medium", "hard", "mixed"] = Field(
        "easy", description="Knob preset (object size, distractors, speed, noise); mixed cycles them."
    )
    tasks: list[str] | None = Field(None, description="Task families to generate; None = all of them.")
    size: int = Field(56, ge=28, description="Frame side in pixels of the generated clips (multiple of 28).")
    num_frames: int = Field(8, ge=2, description="Frames written per generated clip.")
    shuffle_options: bool = Field(
        True, description="Seeded option order; false: one canonical order per task (easier for tiny models)."
    )
    dir: str | None = Field(None, description="Where videos are written. None = <train.output_dir>/synth.")

    @model_validator(mode="after")
    def _check(self) -> SynthOptions:
        try:  # the generator's own checks (task names, frame size), at load time rather than at generation
            self.generator_config().validate()
        except SynthConfigError as e:
            raise ValueError(str(e)) from e
        return self

    def generator_config(self) -> SynthConfig:
        """The generator's configuration for these options."""
        return SynthConfig(
            n=self.n_train + self.n_eval,
            n_eval=self.n_eval,
            seed=self.seed,
            difficulty=self.difficulty,
            size=self.size,
            num_frames=self.num_frames,
            shuffle_options=self.shuffle_options,
            **({"tasks": tuple(self.tasks)} if self.tasks else {}),
        )
