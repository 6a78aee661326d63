"""Hugging Face dataset inputs (parquet, arrow, save_to_disk, cached hub id) read through the same
adapters as the JSON files they were made from, and trained on."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow", reason="parquet/arrow inputs need pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from deepvideo_r1.data import DataError, load_samples  # noqa: E402
from deepvideo_r1.data.synth import generate_synthetic_dataset  # noqa: E402
from deepvideo_r1.data.synth.config import SynthConfig  # noqa: E402


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hf")
    generate_synthetic_dataset(out, SynthConfig(n=6, n_eval=2, seed=0, size=56, num_frames=4))
    return out


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _key(sample) -> tuple:
    """What the adapters make of a record: id, type, question, options, answer, absolute videos, trace."""
    videos = tuple((v.path, v.start, v.end) for v in sample.videos)
    return (
        sample.id,
        sample.problem_type,
        sample.question,
        tuple(sample.options),
        sample.answer,
        videos,
        tuple(sample.reasoning or ()),
    )


def test_parquet_and_arrow_rows_give_the_jsonl_samples(synth):
    expected = [_key(s) for s in load_samples(synth / "train.jsonl").samples]
    table = pa.Table.from_pylist(_rows(synth / "train.jsonl"))
    pq.write_table(table, synth / "train.parquet")  # beside train.jsonl: the same media root
    with pa.OSFile(str(synth / "train.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)  # the IPC stream format `datasets` writes
    for name in ("train.parquet", "train.arrow"):
        result = load_samples(synth / name)
        assert result.format == "jsonl" and [_key(s) for s in result.samples] == expected, name
    seed = load_samples(synth / "train.parquet", format="seedbench_r1", on_error="skip")
    assert seed.samples == [] and len(seed.skipped) == len(expected)  # an explicit format is honoured


def test_save_to_disk_directory_and_dataset_dict(synth):
    datasets = pytest.importorskip("datasets", reason="save_to_disk fixtures need the datasets package")
    rows = _rows(synth / "train.jsonl")
    expected = [_key(s) for s in load_samples(synth / "train.jsonl").samples]
    datasets.Dataset.from_list(rows).save_to_disk(str(synth / "ds"))
    # media paths in the rows are relative to the synth directory, not the dataset directory
    assert [_key(s) for s in load_samples(synth / "ds", root=synth).samples] == expected
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(synth / "dd"))
    with pytest.raises(DataError, match=r"DatasetDict; pass one split directory: .*dd/train"):
        load_samples(synth / "dd")
    assert len(load_samples(synth / "dd" / "train", root=synth).samples) == len(rows)


def test_hub_id_resolves_from_the_local_cache_only(synth, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"me/tiny-video: no such file or directory \(nor, .* `hf "):
        load_samples("me/tiny-video")
    # the cache layout huggingface_hub writes: refs/main names the snapshot holding the repo files
    repo = tmp_path / "hub" / "datasets--me--tiny-video"
    snapshot = repo / "snapshots" / "0123abcd"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    shutil.copytree(synth / "videos", snapshot / "videos")
    (snapshot / "data").mkdir()
    for split in ("train", "eval"):
        table = pa.Table.from_pylist(_rows(synth / f"{split}.jsonl"))
        pq.write_table(table, snapshot / "data" / f"{split}-00000-of-00001.parquet")
    # splits whose names only contain "train" / "eval" as a substring are other splits
    odd = pa.Table.from_pylist(_rows(synth / "eval.jsonl")[:1])
    pq.write_table(odd, snapshot / "data" / "constraint_test-00000-of-00001.parquet")
    pq.write_table(odd, snapshot / "data" / "eval_matched-00000-of-00001.parquet")
    train = load_samples("me/tiny-video").samples
    evals = load_samples("me/tiny-video:eval").samples
    assert [s.id for s in train] == [r["id"] for r in _rows(synth / "train.jsonl")]
    assert [s.id for s in evals] == [r["id"] for r in _rows(synth / "eval.jsonl")]
    assert train[0].videos[0].path == str(snapshot / _rows(synth / "train.jsonl")[0]["videos"][0]["path"])


@pytest.mark.parametrize(
    "relative, split, belongs",
    [
        ("data/train-00000-of-00002.parquet", "train", True),
        ("train.jsonl", "train", True),
        ("train/0000.parquet", "train", True),
        ("data/constraint_test-00000-of-00001.parquet", "train", False),
        ("validation_matched-00000.parquet", "validation", False),
        ("validation_mismatched/0.parquet", "validation", False),
        ("validation-00000-of-00001.parquet", "validation", True),
    ],
)
def test_hub_split_files_match_the_whole_split_name(relative, split, belongs):
    from pathlib import Path

    from deepvideo_r1.data.hf import is_split_file

    assert is_split_file(Path(relative), split) is belongs


@pytest.mark.slow  # about 40 s on 2 cores: builds the tiny model and runs eval, 2 RL steps, eval
def test_trains_on_parquet_and_evaluates_on_save_to_disk(synth, tmp_path):
    datasets = pytest.importorskip("datasets", reason="save_to_disk fixtures need the datasets package")
    from deepvideo_r1.config import load_config
    from deepvideo_r1.metrics.logger import read_metrics
    from deepvideo_r1.pipeline import run_training
    from deepvideo_r1.presets import TINY_CPU

    pq.write_table(pa.Table.from_pylist(_rows(synth / "train.jsonl")), synth / "rl.parquet")
    datasets.Dataset.from_list(_rows(synth / "eval.jsonl")).save_to_disk(str(synth / "eval_ds"))
    cfg = load_config(
        TINY_CPU,
        [
            f"data.train_file={synth / 'rl.parquet'}", f"data.eval_file={synth / 'eval_ds'}",
            f"data.root={synth}",
            "sft.steps=0", "rollout.group_size=2", "rollout.prompts_per_step=2", "rollout.max_new_tokens=6",
            "train.micro_batch_size=2", "train.max_steps=2", "train.save_every=0", "train.report_to=[]",
            "model.tiny_sizes={text_hidden: 64, text_layers: 2, vision_hidden: 32, vision_depth: 1}",
            f"train.output_dir={tmp_path / 'run'}",
        ],
    )  # fmt: skip
    summary = run_training(cfg)
    assert [r["step"] for r in read_metrics(tmp_path / "run") if "reward/mean" in r] == [1, 2]
    assert summary["eval_after"]["n"] == 2


@pytest.mark.parametrize(("name", "content"), [("state.json", "{torn"), ("dataset_dict.json", "[1]")])
def test_a_damaged_save_to_disk_side_file_is_named(tmp_path, name, content):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / name).write_text(content)
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "ds" / name))) as err:
        load_samples(tmp_path / "ds")
    assert "\n" not in str(err.value)
