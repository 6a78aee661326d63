"""data.on_error: skip leaves samples with unreadable media out of SFT, RL and eval, never replaces
them, and counts them in the metrics and summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepvideo_r1.config import VideoConfig, load_config
from deepvideo_r1.data.sample import Sample, VideoRef
from deepvideo_r1.models.media import MediaLoader, SampleMediaError
from deepvideo_r1.pipeline import run_training
from deepvideo_r1.presets import TINY_CPU
from deepvideo_r1.video import write_video


def _clip(path: Path) -> str:
    frames = np.zeros((8, 56, 56, 3), dtype=np.uint8)
    frames[:, 10:30, 10:30] = (255, 0, 0)
    write_video(path, frames, fps=4)
    return path.name


def _dataset(root: Path) -> tuple[Path, Path]:
    """2 readable + 1 corrupt sample in each of train and eval."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "bad.mp4").write_bytes(b"\x00not a video" * 100)
    good = _clip(root / "good.mp4")
    rec = {"problem_type": "multiple_choice", "question": "Which colour?", "options": ["red", "blue"]}
    rec |= {"answer": "A", "reasoning": ["the square is red"]}
    lines = {
        split: [dict(rec, id=f"{split}-{k}", videos=[name]) for k, name in enumerate([good, "bad.mp4", good])]
        for split in ("train", "eval")
    }
    paths = []
    for split, records in lines.items():
        paths.append(root / f"{split}.jsonl")
        paths[-1].write_text("".join(json.dumps(r) + "\n" for r in records))
    return paths[0], paths[1]


def test_readable_records_a_failure_once(tmp_path):
    _dataset(tmp_path)
    bad = Sample(id="b", question="q", problem_type="free_form", videos=[VideoRef(str(tmp_path / "bad.mp4"))])
    good = Sample(
        id="g", question="q", problem_type="free_form", videos=[VideoRef(str(tmp_path / "good.mp4"))]
    )
    skip = MediaLoader(VideoConfig(num_frames=4), tmp_path / "cache", on_error="skip")
    assert [skip.readable(bad), skip.readable(good), skip.readable(bad)] == [False, True, False]
    assert list(skip.skipped) == ["b"] and "sample b" in skip.skipped["b"]
    strict = MediaLoader(VideoConfig(num_frames=4), tmp_path / "cache")
    assert strict.readable(bad)  # under raise the load itself raises, naming the sample
    with pytest.raises(SampleMediaError, match="sample b"):
        strict(bad)


@pytest.mark.slow
def test_skip_covers_sft_training_and_eval_and_is_counted(tmp_path):
    train, evals = _dataset(tmp_path / "data")
    sets = [
        f"data.train_file={train}", f"data.eval_file={evals}", "data.on_error=skip",
        "sft.steps=1", "sft.batch_size=3", "rollout.prompts_per_step=3", "rollout.group_size=2",
        "train.micro_batch_size=2", "train.max_steps=1", "rollout.max_new_tokens=6",
        "train.tensorboard=false", "train.eval_batch_size=3", "video.num_frames=4",
        "video.min_pixels=3136", "video.max_pixels=3136", "model.tiny_sizes.text_layers=1",
        "model.tiny_sizes.vision_depth=1", f"train.output_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    summary = run_training(load_config(TINY_CPU, sets))
    # each stage drew or evaluated the corrupt sample once and left it out
    assert summary["skipped"] == {
        "train_records": 0, "eval_records": 0, "sft_media": 1,
        "eval_before_media": 1, "train_media": 1, "eval_after_media": 1,
    }  # fmt: skip
    assert summary["eval_after"]["n"] == 2 and summary["eval_after"]["n_skipped"] == 1
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["skipped"] == summary["skipped"]
    predicted = [json.loads(line)["id"] for line in (tmp_path / "run/eval_after/predictions.jsonl").open()]
    assert predicted == ["eval-0", "eval-2"]  # not replaced by another sample
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert metrics[-1]["data/media_skipped"] == 1.0
