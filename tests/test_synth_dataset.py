"""Synthetic dataset: determinism, held-out split, answer balance, caching, validation and the CLI."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from deepvideo_r1.cli import app
from deepvideo_r1.data.synth import CONFIG_FILE, SynthError, generate_synthetic_dataset
from deepvideo_r1.data.synth.config import SynthConfig, SynthConfigError
from deepvideo_r1.data.synth.tasks import TASKS

SMALL = SynthConfig(n=18, n_eval=6, seed=7, tasks=tuple(TASKS), difficulty="mixed")


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_same_bytes_and_frames(tmp_path) -> None:
    a = generate_synthetic_dataset(tmp_path / "a", SMALL)
    b = generate_synthetic_dataset(tmp_path / "b", SMALL)
    for name in ("train.jsonl", "eval.jsonl", CONFIG_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    videos = sorted((tmp_path / "a" / "videos").rglob("*.mp4"))
    assert len(videos) == 18
    for va in videos:
        vb = tmp_path / "b" / va.relative_to(tmp_path / "a")
        assert va.read_bytes() == vb.read_bytes(), va.name  # x264 without b-frames/mbtree: byte-stable
        assert np.array_equal(decode(va), decode(vb))
    assert (
        a.counts
        == b.counts
        == {
            "train": dict.fromkeys(TASKS, 2),  # 12 train samples round-robin over 6 tasks
            "eval": dict.fromkeys(TASKS, 1),
        }
    )


def test_other_seed_differs(tmp_path) -> None:
    generate_synthetic_dataset(tmp_path / "a", SMALL)
    other = dataclasses.replace(SMALL, seed=8)
    generate_synthetic_dataset(tmp_path / "b", other)
    assert (tmp_path / "a/train.jsonl").read_bytes() != (tmp_path / "b/train.jsonl").read_bytes()
    name = "videos/train/synth-train-00000-direction.mp4"
    assert not np.array_equal(decode(tmp_path / "a" / name), decode(tmp_path / "b" / name))


def scene_key(rec: dict) -> str:
    return json.dumps([rec["metadata"]["task"], rec["metadata"]["objects"]])


def test_eval_scenes_never_repeat_training_scenes(tmp_path) -> None:
    # Tiny scene space: 28-px frame, 14-px squares crossing the whole free range (travel 14 px, so the
    # start is fixed), 15 offsets across × 4 directions × 3 colours = 180 scenes; 60 training draws
    # make eval collisions likely, so the retry path runs.
    config = SynthConfig(
        n=90, n_eval=30, seed=0, tasks=("direction",), size=28, object_size=0.5, speed=1.0,
        colours=("red", "green", "blue"), shapes=("square",),
    )  # fmt: skip
    result = generate_synthetic_dataset(tmp_path, config)
    train, held_out = records(result.train_path), records(result.eval_path)
    train_keys = {scene_key(r) for r in train}
    eval_keys = [scene_key(r) for r in held_out]
    assert not train_keys & set(eval_keys) and len(set(eval_keys)) == 30
    assert max(r["metadata"]["attempt"] for r in held_out) > 0
    assert all(r["metadata"]["attempt"] == 0 for r in train)


TINY_SPACE = SynthConfig(
    n=90, n_eval=30, seed=0, tasks=("direction",), size=28, object_size=0.5, speed=1.0,
    colours=("red", "green", "blue"), shapes=("square",),
)  # fmt: skip


def test_eval_scenes_at_any_seed_never_repeat_seed_0_training_scenes(tmp_path) -> None:
    # The shipped warm start was trained on seed 0's training scenes and serves every seed: in the
    # 180-scene space above, seed 1's 30 held-out draws would repeat some of seed 0's 60 training ones.
    seed0 = generate_synthetic_dataset(tmp_path / "s0", TINY_SPACE)
    seed1 = generate_synthetic_dataset(tmp_path / "s1", dataclasses.replace(TINY_SPACE, seed=1))
    seen_in_training = {scene_key(r) for r in records(seed0.train_path)}
    held_out = [scene_key(r) for r in records(seed1.eval_path)]
    assert not seen_in_training & set(held_out) and len(set(held_out)) == 30


def test_exhausted_scene_space_raises(tmp_path) -> None:
    # The same 180-scene space as above; 190 distinct held-out scenes cannot exist.
    config = SynthConfig(
        n=200, n_eval=190, seed=0, tasks=("direction",), size=28, object_size=0.5, speed=1.0,
        colours=("red", "green", "blue"), shapes=("square",),
    )  # fmt: skip
    with pytest.raises(SynthError, match="no new scene"):
        generate_synthetic_dataset(tmp_path, config)
    assert not (tmp_path / CONFIG_FILE).exists()  # a failed run leaves no cache marker


@pytest.mark.parametrize("task", ["direction", "count", "first_colour", "which_moves"])
def test_answers_and_letters_are_balanced(tmp_path, task) -> None:
    # direction/count: 4 values × 4 slots = 16-long cycle; colour tasks: 4 colours × 4 slots. 32 samples
    # = two full cycles → each answer text and each letter exactly 32 / 4 = 8 times.
    config = SynthConfig(n=32, n_eval=0, seed=1, tasks=(task,))
    recs = records(generate_synthetic_dataset(tmp_path, config).train_path)
    letters = Counter(r["answer"] for r in recs)
    texts = Counter(r["options"][ord(r["answer"]) - 65] for r in recs)
    assert letters == dict.fromkeys("ABCD", 8)
    assert sorted(texts.values()) == [8, 8, 8, 8]


def test_temporal_grounding_start_frames_balanced(tmp_path) -> None:
    config = SynthConfig(n=12, n_eval=0, seed=1, tasks=("appear_when",))
    recs = records(generate_synthetic_dataset(tmp_path, config).train_path)
    # start frame cycles over 1..6 (F - 2 = 6 values) → each start time 1/4 … 6/4 s twice.
    starts = Counter(r["timestamps"][0][0] for r in recs)
    assert starts == {0.25: 2, 0.5: 2, 0.75: 2, 1.0: 2, 1.25: 2, 1.5: 2}


def test_cache_reuse_and_regeneration(tmp_path) -> None:
    config = SynthConfig(n=6, seed=2, tasks=("count",))
    first = generate_synthetic_dataset(tmp_path, config)
    stamp = first.train_path.stat().st_mtime_ns
    again = generate_synthetic_dataset(tmp_path, config)
    assert again.reused and not first.reused
    assert again.train_path.stat().st_mtime_ns == stamp
    marker = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert marker["hash"] == config.config_hash() and marker["config"] == config.to_json()
    assert SynthConfig.from_json(marker["config"]) == config

    changed = generate_synthetic_dataset(tmp_path, SynthConfig(n=6, seed=3, tasks=("count",)))
    assert not changed.reused and changed.counts == {"train": {"count": 5}, "eval": {"count": 1}}

    # A missing video invalidates the cache.
    next((tmp_path / "videos").rglob("*.mp4")).unlink()
    assert not generate_synthetic_dataset(tmp_path, SynthConfig(n=6, seed=3, tasks=("count",))).reused


def test_refuses_foreign_directory(tmp_path) -> None:
    (tmp_path / "train.jsonl").write_text("{}\n")
    with pytest.raises(SynthError, match="not a synthetic dataset"):
        generate_synthetic_dataset(tmp_path, SynthConfig(n=4))
    assert (tmp_path / "train.jsonl").read_text() == "{}\n"


@pytest.mark.parametrize(
    ("fields", "word"),
    [
        ({"size": 50}, "size"),
        ({"tasks": ("direction", "spin")}, "spin"),
        ({"difficulty": "brutal"}, "difficulty"),
        ({"colours": ("red", "green")}, "colours"),
        ({"object_size": 0.9}, "object_size"),
        ({"n": 5, "n_eval": 6}, "n_eval"),
    ],
)
def test_invalid_config_names_the_option(fields, word) -> None:
    with pytest.raises(SynthConfigError, match=word):
        SynthConfig(**fields).validate()


def test_cli_writes_dataset(tmp_path) -> None:
    runner = CliRunner()
    args = ["synth", "-o", str(tmp_path), "--n", "4", "--n-eval", "1", "--seed", "4", "--size", "84"]
    args += ["--num-frames", "6"]
    result = runner.invoke(app, [*args, "--tasks", "direction,count", "--tasks", "appear_when"])
    assert result.exit_code == 0, result.output
    assert "train: direction=2, count=1, appear_when=1" in result.output  # 4 train + 1 eval
    recs = records(tmp_path / "train.jsonl")
    assert [r["metadata"]["task"] for r in recs] == ["direction", "count", "appear_when", "direction"]
    assert decode(tmp_path / recs[0]["videos"][0]["path"]).shape == (6, 84, 84, 3)
    again = runner.invoke(app, [*args, "--tasks", "direction,count", "--tasks", "appear_when"])
    assert again.exit_code == 0 and "reused" in again.output

    bad = runner.invoke(app, ["synth", "--out", str(tmp_path / "x"), "--tasks", "spin"])
    assert bad.exit_code == 2 and "spin" in bad.output


def test_project_jsonl_loader_reads_the_output(tmp_path) -> None:
    from deepvideo_r1.data import load_samples

    result = generate_synthetic_dataset(tmp_path, SynthConfig(n=6, n_eval=0, seed=5, tasks=tuple(TASKS)))
    loaded = load_samples(str(result.train_path), format="jsonl", check_media=True).samples
    raw = records(result.train_path)
    assert [s.id for s in loaded] == [r["id"] for r in raw]
    for sample, rec in zip(loaded, raw, strict=True):
        assert sample.videos[0].path == str(tmp_path / rec["videos"][0]["path"])  # resolved against the dir
        assert sample.to_json()["answer"] == rec["answer"] and sample.options == rec["options"]
        assert sample.reasoning == rec["reasoning"] and sample.metadata == rec["metadata"]
