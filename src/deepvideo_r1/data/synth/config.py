"""Configuration of the synthetic video reasoning dataset: sizes, knobs, difficulty presets."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from deepvideo_r1.data.synth.knobs import DIFFICULTY_PRESETS, Knobs
from deepvideo_r1.data.synth.render import COLOURS, SHAPES
from deepvideo_r1.data.synth.tasks import TASKS

DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard", "mixed")
# Bumped whenever generation changes, so a cached dataset from older code is not reused.
GENERATOR_VERSION = 3  # 3: held-out scenes also avoid seed 0's training scenes


class SynthConfigError(ValueError):
    """A synthetic-dataset option is invalid; the message says which and how to fix it."""


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a synthetic dataset; equal configs give identical bytes."""

    n: int = 400
    """Total number of samples (train + eval)."""
    n_eval: int | None = None
    """Held-out samples; None means round(n * eval_fraction)."""
    eval_fraction: float = 0.2
    """Share of `n` held out for evaluation when `n_eval` is None."""
    seed: int = 0
    """Seed of every random choice (scenes, noise, option order)."""
    tasks: tuple[str, ...] = ("direction", "count", "first_colour", "appear_when", "which_moves")
    """Task families, assigned round-robin (see `deepvideo_r1.data.synth.tasks.TASKS`)."""
    difficulty: str = "easy"
    """Knob preset: easy | medium | hard, or mixed (presets cycle per sample)."""
    size: int = 56
    """Frame width = height in pixels; a multiple of 28 (Qwen-VL patch merge size)."""
    num_frames: int = 8
    """Frames per clip."""
    fps: float = 4.0
    """Frame rate; frame i is shown at i / fps seconds."""
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")
    """Palette (names from COLOURS); colour options are drawn from it."""
    shapes: tuple[str, ...] = SHAPES
    """Shapes objects are drawn as."""
    object_size: float | None = None
    """Override of the preset's object size (fraction of the frame side)."""
    num_distractors: int | None = None
    """Override of the preset's number of distractor objects."""
    speed: float | None = None
    """Override of the preset's speed (fraction of the free range crossed over the clip)."""
    noise_std: float | None = None
    """Override of the preset's pixel noise std (on [0, 1] frames)."""
    crf: int = 10
    """x264 constant rate factor (0 = lossless, 51 = worst); low keeps colours crisp."""
    shuffle_options: bool = True
    """Seeded option order (answer letters balanced); False keeps one canonical order per task
    (up/down/left/right, 1..4, palette order), so the letter is a fixed function of the answer —
    easier for a tiny model, which then need not match option texts to letters."""

    @property
    def eval_count(self) -> int:
        """Number of held-out samples."""
        return self.n_eval if self.n_eval is not None else round(self.n * self.eval_fraction)

    @property
    def train_count(self) -> int:
        """Number of training samples."""
        return self.n - self.eval_count

    def knobs(self, difficulty: str) -> Knobs:
        """The preset `difficulty` with this config's explicit overrides applied."""
        base = DIFFICULTY_PRESETS[difficulty]
        return Knobs(
            object_size=base.object_size if self.object_size is None else self.object_size,
            num_distractors=base.num_distractors if self.num_distractors is None else self.num_distractors,
            speed=base.speed if self.speed is None else self.speed,
            noise_std=base.noise_std if self.noise_std is None else self.noise_std,
        )

    def difficulty_of(self, index: int) -> str:
        """Preset of the index-th sample of a task: fixed, or cycling easy → medium → hard for mixed."""
        if self.difficulty != "mixed":
            return self.difficulty
        return ("easy", "medium", "hard")[index % 3]

    def to_json(self) -> dict[str, Any]:
        """JSON form (tuples become lists); `from_json` inverts it."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SynthConfig:
        """Rebuild a config from `to_json` output."""
        fields = dict(data)
        for key in ("tasks", "colours", "shapes"):
            if key in fields:
                fields[key] = tuple(fields[key])
        return cls(**fields)

    def config_hash(self) -> str:
        """sha256 of the canonical config JSON + generator and PyAV versions (the cache key)."""
        import av

        payload = {"config": self.to_json(), "generator": GENERATOR_VERSION, "av": av.__version__}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def validate(self) -> None:
        """Raise SynthConfigError naming the bad option and a valid range."""
        _check(self.n >= 1, f"n={self.n}: need at least one sample")
        _check(0.0 <= self.eval_fraction < 1.0, f"eval_fraction={self.eval_fraction}: use a value in [0, 1)")
        _check(
            0 <= self.eval_count <= self.n,
            f"n_eval={self.n_eval}: must be between 0 and n={self.n}",
        )
        _check(self.size >= 28 and self.size % 28 == 0, f"size={self.size}: use a multiple of 28 (56, 84)")
        _check(self.num_frames >= 4, f"num_frames={self.num_frames}: need at least 4 frames")
        _check(self.fps > 0, f"fps={self.fps}: must be positive")
        _check(0 <= self.crf <= 51, f"crf={self.crf}: x264 accepts 0..51")
        _check(self.difficulty in DIFFICULTIES, f"difficulty={self.difficulty!r}: use one of {DIFFICULTIES}")
        _check(len(self.tasks) > 0, "tasks is empty: name at least one task")
        unknown = [t for t in self.tasks if t not in TASKS]
        _check(not unknown, f"unknown tasks {unknown}: known tasks are {sorted(TASKS)}")
        bad = [c for c in self.colours if c not in COLOURS]
        _check(
            not bad and len(set(self.colours)) >= 3, f"colours={self.colours}: need >= 3 of {list(COLOURS)}"
        )
        _check(len(set(self.colours)) == len(self.colours), f"colours={self.colours}: repeated colour")
        bad = [s for s in self.shapes if s not in SHAPES]
        _check(not bad and len(self.shapes) > 0, f"shapes={self.shapes}: use some of {SHAPES}")
        for name in ("easy", "medium", "hard"):
            self._validate_knobs(self.knobs(name))

    def _validate_knobs(self, k: Knobs) -> None:
        _check(0.05 <= k.object_size <= 0.5, f"object_size={k.object_size}: use a fraction in [0.05, 0.5]")
        _check(0 <= k.num_distractors <= 4, f"num_distractors={k.num_distractors}: use 0..4")
        _check(0.1 <= k.speed <= 1.0, f"speed={k.speed}: use a fraction in [0.1, 1.0]")
        _check(0.0 <= k.noise_std <= 0.5, f"noise_std={k.noise_std}: use a value in [0, 0.5]")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SynthConfigError(message)
