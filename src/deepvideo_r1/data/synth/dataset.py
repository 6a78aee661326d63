"""Synthetic video reasoning dataset: real h264 clips of coloured shapes + verifiable questions.

`generate_synthetic_dataset(out_dir, config)` writes

    out_dir/train.jsonl, out_dir/eval.jsonl      one `Sample.to_json()` object per line
    out_dir/videos/{train,eval}/<id>.mp4         paths in the jsonl are relative to out_dir
    out_dir/synth_config.json                    the config, its hash and the counts (cache marker)

and reuses an existing dataset generated from an identical config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepvideo_r1.artifacts import write_text_atomic
from deepvideo_r1.data.sample import Sample, VideoRef
from deepvideo_r1.data.synth.config import SynthConfig
from deepvideo_r1.data.synth.render import add_noise, render_clip, write_mp4
from deepvideo_r1.data.synth.tasks import TASKS, TaskContext, TaskOutput

logger = logging.getLogger(__name__)

CONFIG_FILE = "synth_config.json"
SPLITS: dict[str, int] = {"train": 0, "eval": 1}
MAX_ATTEMPTS = 200


class SynthError(RuntimeError):
    """The dataset cannot be generated in the requested directory or with the requested size."""


@dataclass(frozen=True)
class SynthResult:
    """Where a synthetic dataset lies and what it holds."""

    out_dir: Path
    train_path: Path
    eval_path: Path
    config_path: Path
    counts: dict[str, dict[str, int]]
    """split → task → number of samples."""
    reused: bool
    """True when an existing dataset with the identical config hash was kept."""
    seconds: float


@dataclass
class _Split:
    samples: list[Sample]
    scene_hashes: set[str]


def generate_synthetic_dataset(
    out_dir: str | Path, config: SynthConfig | None = None, *, force: bool = False
) -> SynthResult:
    """Generate (or reuse) the dataset for `config` in `out_dir`; same config → same bytes."""
    t0 = time.perf_counter()
    config = config if config is not None else SynthConfig()
    config.validate()
    out = Path(out_dir)
    if not force:
        cached = _load_cached(out, config)
        if cached is not None:
            logger.info("reusing synthetic dataset in %s (config hash matches)", out)
            return cached
    _clear_previous(out)
    train = _generate_split(out, config, "train", config.train_count, forbidden=set())
    # Held-out scenes must differ from every training scene (compared before noise is added),
    # and from seed 0's: a warm start trained at seed 0 (the shipped one) serves every seed.
    forbidden = train.scene_hashes | seed0_train_scenes(config)
    evals = _generate_split(out, config, "eval", config.eval_count, forbidden=forbidden)
    counts = {name: _task_counts(s.samples) for name, s in (("train", train), ("eval", evals))}
    _write_jsonl(out / "train.jsonl", train.samples)
    _write_jsonl(out / "eval.jsonl", evals.samples)
    marker = {"config": config.to_json(), "hash": config.config_hash(), "counts": counts}
    write_text_atomic(out / CONFIG_FILE, json.dumps(marker, indent=2, ensure_ascii=True) + "\n")
    seconds = time.perf_counter() - t0
    logger.info("generated %d synthetic samples in %s (%.1f s)", config.n, out, seconds)
    return _result(out, counts, reused=False, seconds=seconds)


def _result(out: Path, counts: dict[str, dict[str, int]], reused: bool, seconds: float) -> SynthResult:
    return SynthResult(
        out, out / "train.jsonl", out / "eval.jsonl", out / CONFIG_FILE, counts, reused, seconds
    )


def _load_cached(out: Path, config: SynthConfig) -> SynthResult | None:
    """The existing dataset when its marker's hash equals config's and every file it lists exists."""
    marker_path = out / CONFIG_FILE
    if not marker_path.is_file():
        return None
    try:
        marker = json.loads(marker_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if marker.get("hash") != config.config_hash():
        return None
    for split in SPLITS:
        path = out / f"{split}.jsonl"
        if not path.is_file():
            return None
        for line in path.read_text().splitlines():
            if not all((out / v["path"]).is_file() for v in json.loads(line)["videos"]):
                return None
    return _result(out, marker["counts"], reused=True, seconds=0.0)


def _clear_previous(out: Path) -> None:
    """Remove a previous synthetic dataset (only one we wrote: it has our marker file)."""
    ours = (out / CONFIG_FILE).is_file()
    theirs = [p for p in ("train.jsonl", "eval.jsonl", "videos") if (out / p).exists()]
    if theirs and not ours:
        raise SynthError(
            f"{out} already holds {theirs} but no {CONFIG_FILE}: not a synthetic dataset written by "
            "deepvideo-r1; choose an empty or new directory"
        )
    # Marker first, so an interrupted regeneration is never mistaken for a complete dataset.
    (out / CONFIG_FILE).unlink(missing_ok=True)
    for name in ("train.jsonl", "eval.jsonl"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "videos", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def seed0_train_scenes(config: SynthConfig) -> set[str]:
    """Clean-frame hashes of the training scenes `config` would draw at seed 0 (the same count),
    rendered but not encoded; empty at seed 0 (its own training split is excluded anyway)."""
    if config.seed == 0:
        return set()
    seed0 = dataclasses.replace(config, seed=0)
    n_tasks = len(seed0.tasks)
    scenes = set()
    for i in range(seed0.train_count):
        task, index = seed0.tasks[i % n_tasks], i // n_tasks
        scenes.add(_draw_scene(seed0, "train", task, index, avoid=())[1])
    return scenes


def _generate_split(out: Path, config: SynthConfig, split: str, count: int, forbidden: set[str]) -> _Split:
    """`count` samples, tasks round-robin; sample i is task tasks[i % T], its index i // T in that task."""
    result = _Split([], set())
    n_tasks = len(config.tasks)
    for i in range(count):
        task, index = config.tasks[i % n_tasks], i // n_tasks
        sample_id = f"synth-{split}-{i:05d}-{task}"
        avoid = (forbidden, result.scene_hashes) if split == "eval" else (forbidden,)
        sample, scene_hash = _make_sample(out, config, split, task, index, sample_id, avoid)
        result.samples.append(sample)
        result.scene_hashes.add(scene_hash)
    return result


def _seed_words(config: SynthConfig, split: str, task: str) -> list[int]:
    return [config.seed, SPLITS[split], zlib.crc32(task.encode())]


def _make_sample(
    out: Path,
    config: SynthConfig,
    split: str,
    task: str,
    index: int,
    sample_id: str,
    avoid: tuple[set[str], ...],
) -> tuple[Sample, str]:
    """Draw scenes (again while the clean frames' hash is in a set of `avoid`), encode, build the Sample."""
    difficulty = config.difficulty_of(index)
    knobs = config.knobs(difficulty)
    drawn = _draw_scene(config, split, task, index, avoid)
    if drawn is None:
        raise SynthError(
            f"{split} sample {sample_id}: no new scene after {MAX_ATTEMPTS} draws; the '{task}' scene space "
            f"at difficulty {difficulty!r} is exhausted: lower n or use a larger size / harder difficulty"
        )
    (ctx, task_out, clean, rng, attempt), scene_hash = drawn
    rel_path = f"videos/{split}/{sample_id}.mp4"
    write_mp4(out / rel_path, add_noise(clean, knobs.noise_std, rng), config.fps, config.crf)
    meta = _metadata(config, task, difficulty, ctx, task_out, split, attempt)
    sample = Sample(
        id=sample_id,
        question=task_out.question,
        problem_type=task_out.problem_type,
        answer=task_out.answer,
        options=list(task_out.options),
        videos=[VideoRef(rel_path)],
        timestamps=task_out.timestamps,
        reasoning=list(task_out.reasoning),
        metadata=meta,
    )
    return sample, scene_hash


def _draw_scene(config: SynthConfig, split: str, task: str, index: int, avoid: tuple[set[str], ...]):
    """((context, task output, clean frames, rng, attempt), clean-frame hash) of the first draw whose
    hash is in no set of `avoid`; None after MAX_ATTEMPTS draws."""
    knobs = config.knobs(config.difficulty_of(index))
    balance_seed = int(np.random.SeedSequence(_seed_words(config, split, task)).generate_state(1)[0])
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([*_seed_words(config, split, task), index, attempt])
        ctx = TaskContext(
            rng, config.size, config.num_frames, config.fps, config.colours, config.shapes, knobs, index,
            balance_seed, config.shuffle_options,
        )  # fmt: skip
        task_out = TASKS[task](ctx)
        clean = render_clip(task_out.tracks, config.size, config.num_frames)
        scene_hash = hashlib.sha256(clean.tobytes()).hexdigest()
        if not any(scene_hash in seen for seen in avoid):
            return (ctx, task_out, clean, rng, attempt), scene_hash
    return None


def _metadata(
    config: SynthConfig,
    task: str,
    difficulty: str,
    ctx: TaskContext,
    out: TaskOutput,
    split: str,
    attempt: int,
) -> dict[str, Any]:
    """Task, difficulty and every generating parameter of one sample (fixed key order)."""
    return {
        "source": "synth",
        "task": task,
        "difficulty": difficulty,
        "split": split,
        "seed": config.seed,
        "attempt": attempt,
        "size": config.size,
        "num_frames": config.num_frames,
        "fps": config.fps,
        "duration": round(config.num_frames / config.fps, 3),
        "knobs": {**asdict(ctx.knobs), "object_px": ctx.object_px},
        "params": out.params,
        "objects": [t.describe() for t in out.tracks],
    }


def _task_counts(samples: list[Sample]) -> dict[str, int]:
    return dict(Counter(s.metadata["task"] for s in samples))


def sample_line(sample: Sample) -> str:
    """One jsonl line: `Sample.to_json()` in its fixed key order, ASCII only (byte-stable)."""
    return json.dumps(sample.to_json(), ensure_ascii=True, sort_keys=False)


def _write_jsonl(path: Path, samples: list[Sample]) -> None:
    write_text_atomic(path, "".join(sample_line(s) + "\n" for s in samples), encoding="ascii")
