"""Hugging Face dataset inputs: records from parquet / arrow files, `save_to_disk` directories and
hub datasets already in the local cache, handed to the same format adapters as JSON files.

- `x.parquet`: its rows (pyarrow). Media root: the file's directory.
- `x.arrow`: an Arrow IPC stream (what `datasets` writes) or file. Media root: the file's directory.
- a directory holding `state.json` (`Dataset.save_to_disk`): its arrow shards in order. Media
  root: the directory. A `DatasetDict` directory holds one such directory per split: pass
  `DIR/<split>`.
- `org/name` or `org/name:split` (not an existing path): the dataset's snapshot in the local
  Hugging Face cache (never downloaded; `hf download --repo-type dataset org/name` fetches it);
  the split's parquet files (a folder or file named by the whole split, default "train": see
  `is_split_file`), else its jsonl / json files. Media root: the snapshot directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepvideo_r1.artifacts import DamagedFileError, read_json_object
from deepvideo_r1.data.errors import DataFormatError

HUB_ID = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?::(?P<split>[\w.-]+))?$")
TABLE_SUFFIXES = (".parquet", ".arrow")


@dataclass(frozen=True)
class HFSource:
    """Record files of one HF dataset input and the default media root."""

    files: tuple[Path, ...]
    root: Path
    label: str


def is_hf_source(path: str | Path) -> bool:
    """Whether `path` is a parquet/arrow file, a save_to_disk directory or a hub id (not a path)."""
    p = Path(path)
    if p.suffix in TABLE_SUFFIXES or (p.is_dir() and (p / "state.json").is_file()):
        return True
    if p.is_dir() and (p / "dataset_dict.json").is_file():
        return True  # resolved to an error that names the splits
    return not p.exists() and HUB_ID.match(str(path)) is not None


def resolve(path: str | Path) -> HFSource:
    """The files and media root of an HF input (see module docstring)."""
    p = Path(path)
    if p.suffix in TABLE_SUFFIXES:
        return HFSource((p,), p.absolute().parent, str(p))
    if p.is_dir() and (p / "dataset_dict.json").is_file():
        splits = _json_object(p / "dataset_dict.json").get("splits", [])
        raise DataFormatError(
            str(p), f"a DatasetDict; pass one split directory: {', '.join(f'{p}/{s}' for s in splits)}"
        )
    if p.is_dir():
        state = _json_object(p / "state.json")
        try:
            files = tuple(p / f["filename"] for f in state.get("_data_files", []))
        except (TypeError, KeyError) as e:
            raise DataFormatError(
                str(p / "state.json"), f"_data_files is not a list of {{filename}} ({e})"
            ) from e
        return HFSource(files, p.absolute(), str(p))
    return _hub_source(str(path))


def _json_object(path: Path) -> dict:
    """A save_to_disk side file; DataFormatError naming it when it is damaged."""
    try:
        return read_json_object(path)
    except DamagedFileError as e:
        raise DataFormatError(str(path), str(e).removeprefix(f"{path} ")) from e


def _hub_source(spec: str) -> HFSource:
    """A hub dataset's files from the local cache only (offline)."""
    match = HUB_ID.match(spec)
    repo, split = match["repo"], match["split"] or "train"
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(repo, repo_type="dataset", local_files_only=True))
    except Exception as e:  # any miss (not cached, no hub package) has the same user fix
        raise DataFormatError(
            spec,
            f"no such file or directory (nor, read as a hub dataset id, is {repo!r} in the local "
            f"Hugging Face cache: {type(e).__name__}); check the path, or fetch the dataset with "
            f"`hf download --repo-type dataset {repo}`",
        ) from None
    for pattern in ("*.parquet", "*.jsonl", "*.json"):
        files = sorted(f for f in snapshot.rglob(pattern) if is_split_file(f.relative_to(snapshot), split))
        if files:
            return HFSource(tuple(files), snapshot, f"{repo}:{split}")
    raise DataFormatError(
        spec, f"the cached snapshot {snapshot} has no parquet/jsonl/json file for split {split!r}"
    )


def is_split_file(relative: Path, split: str) -> bool:
    """Whether a file of a hub snapshot belongs to `split`, by whole name: a folder named `split`,
    or a file named `split.*` or `split-<shard>.*` (`data/train-00000-of-00002.parquet`).
    Substrings do not count: `constraint_test-0.parquet` is not "train", nor
    `validation_matched.parquet` "validation"."""
    *folders, name = relative.parts
    stem = name.split(".", 1)[0]
    return split in folders or stem == split or stem.startswith(split + "-")


def _table_rows(file: Path) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if file.suffix == ".parquet":
        return pq.read_table(file).to_pylist()
    with pa.memory_map(str(file)) as source:
        try:
            return pa.ipc.open_stream(source).read_all().to_pylist()
        except pa.ArrowInvalid:
            return pa.ipc.open_file(source).read_all().to_pylist()


def _json_rows(file: Path) -> list[Any]:
    text = file.read_text(encoding="utf-8")
    if text.lstrip()[:1] == "[":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def iter_records(source: HFSource) -> Iterator[tuple[Path, int, Any]]:
    """(file, 0-based row index within the file, record) for every row of every file."""
    for file in source.files:
        try:
            rows = _table_rows(file) if file.suffix in TABLE_SUFFIXES else _json_rows(file)
        except ImportError as e:
            raise DataFormatError(
                str(file), "reading parquet/arrow needs pyarrow: pip install pyarrow"
            ) from e
        except Exception as e:  # pyarrow and json raise many types for a bad file
            raise DataFormatError(str(file), f"cannot read rows: {e}") from e
        for index, row in enumerate(rows):
            yield file, index, row
