"""`load_samples`: read a dataset file in any registered format into `Sample`s, with an error policy.

Bad input never passes silently: with on_error="raise" the first bad record (or missing media file,
when check_media) raises a typed error; with on_error="skip" it is listed in `LoadResult.skipped`
and logged, and the sample is dropped — never replaced by another one.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import deepvideo_r1.data.formats  # noqa: F401  (registers the adapters)
from deepvideo_r1.data.errors import DataError, DataFormatError, MissingMediaError
from deepvideo_r1.data.fields import check_labelled, check_sample
from deepvideo_r1.data.hf import is_hf_source, iter_records, resolve
from deepvideo_r1.data.registry import Container, FormatAdapter, RecordContext, detect_format, get_format
from deepvideo_r1.data.sample import Sample

logger = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]


class DuplicateSampleIdError(DataFormatError):
    """Two records of a dataset share a sample id."""


@dataclass(frozen=True)
class SkippedRecord:
    """A record left out under on_error="skip".

    `line_or_index` is the 1-based line (JSON lines) or the 0-based index (JSON list).
    """

    file: str
    line_or_index: int
    reason: str


@dataclass
class LoadResult:
    """Samples read from one file, the records skipped, and the format used."""

    samples: list[Sample]
    skipped: list[SkippedRecord] = field(default_factory=list)
    format: str = ""

    @property
    def counts(self) -> dict[str, int]:
        """Number of samples per problem type, e.g. {"multiple_choice": 3}."""
        return dict(Counter(s.problem_type for s in self.samples))


def _container_of(text: str) -> Container:
    """A JSON array if the file starts with '[' (after whitespace), else JSON lines."""
    return "json_list" if text.lstrip()[:1] == "[" else "jsonl"


def _raw_records(
    path: Path, text: str, container: Container
) -> Iterator[tuple[RecordContext, Any, DataFormatError | None]]:
    """(context without root, raw value, parse error) per record; a malformed jsonl line has an error."""
    if container == "json_list":
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataFormatError(str(path), f"malformed JSON: {e.msg}", line=e.lineno) from e
        if not isinstance(records, list):
            raise DataFormatError(str(path), "expected a JSON list of records")
        for index, record in enumerate(records):
            yield RecordContext(path, Path(), index=index), record, None
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        ctx = RecordContext(path, Path(), line=number)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            yield ctx, None, ctx.error(f"malformed JSON: {e.msg} (column {e.colno})")
            continue
        yield ctx, record, None


def _convert(adapter: FormatAdapter, ctx: RecordContext, record: Any, require_labels: bool) -> Sample:
    if not isinstance(record, Mapping):
        raise ctx.error(f"expected a JSON object, got {type(record).__name__}")
    sample = check_sample(adapter.convert(record, ctx), ctx)
    return check_labelled(sample, ctx) if require_labels else sample


def _check_media(sample: Sample, file: Path) -> None:
    """Raise MissingMediaError for the first video or image of `sample` that is not a file."""
    for media in [v.path for v in sample.videos] + sample.images:
        if not os.path.isfile(media):
            raise MissingMediaError(media, sample.id, str(file))


def _choose_adapter(fmt: str, container: Container | None, first: Any, path: Path) -> FormatAdapter:
    """The adapter for `fmt` ("auto": detected from the first record). container None = table rows
    (a Hugging Face dataset), which any adapter may read."""
    if fmt != "auto":
        adapter = get_format(fmt)
        if container is not None and adapter.container != container:
            wanted = "one JSON object per line" if adapter.container == "jsonl" else "a JSON list"
            raise DataFormatError(str(path), f"format {fmt!r} expects {wanted}, but the file is not")
        return adapter
    if not isinstance(first, Mapping):
        raise DataFormatError(str(path), "cannot detect the format: no JSON object record found")
    if container is None:
        try:
            return detect_format(first, "jsonl", str(path))
        except DataFormatError:
            return detect_format(first, "json_list", str(path))
    return detect_format(first, container, str(path))


def _read_records(path: Path, root: str | Path | None) -> tuple[list, Path, Container | None]:
    """(records as (context, raw, parse error), media root, container) of a JSON file or an HF input
    (data.hf: parquet, arrow, save_to_disk directory, cached hub id; container None)."""
    if is_hf_source(path):
        source = resolve(path)
        base = Path(root).absolute() if root is not None else source.root
        rows = [(RecordContext(file, base, index=i), row, None) for file, i, row in iter_records(source)]
        return rows, base, None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataFormatError(str(path), f"cannot read file: {e}") from e
    base = Path(root).absolute() if root is not None else path.absolute().parent
    container = _container_of(text)
    return list(_raw_records(path, text, container)), base, container


def load_samples(
    path: str | Path,
    format: str = "auto",
    root: str | Path | None = None,
    on_error: OnError = "raise",
    check_media: bool = False,
    require_labels: bool = False,
) -> LoadResult:
    """Read `path` (format name or "auto") into samples with media paths absolute against `root`.

    `path` is a JSON / JSON-lines file, or a Hugging Face dataset input (data.hf). `root` defaults
    to the file's directory. `on_error="skip"` drops and lists bad records (and, with
    `check_media`, samples whose video/image files are missing) instead of raising.
    Gold labels are checked with the scorer of their problem type; `require_labels` also makes a
    sample without one a bad record (training data: every completion is scored).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    path = Path(path)
    records, base, container = _read_records(path, root)
    first = next((rec for _, rec, err in records if err is None), None)
    adapter = _choose_adapter(format, container, first, path)
    result = LoadResult(samples=[], format=adapter.name)
    ids: dict[str, RecordContext] = {}
    for ctx, record, parse_error in records:
        try:
            if parse_error is not None:
                raise parse_error
            where = RecordContext(ctx.file, base, ctx.line, ctx.index)
            sample = _convert(adapter, where, record, require_labels)
            if check_media:
                _check_media(sample, ctx.file)
        except DataError as e:
            if on_error == "raise":
                raise
            _claim_id(ids, _raw_id(record), ctx)  # a skipped duplicate is still a duplicate
            _skip(result, ctx.file, ctx, e)
            continue
        _claim_id(ids, sample.id, ctx)
        result.samples.append(sample)
    _warn_outside_root(result.samples, path, base)
    return result


def _raw_id(record: Any) -> str | None:
    """The "id" of a raw record that could not be converted, when it has one."""
    value = record.get("id") if isinstance(record, Mapping) else None
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def _claim_id(ids: dict[str, RecordContext], sample_id: str | None, ctx: RecordContext) -> None:
    """Raise DuplicateSampleIdError if another record already used `sample_id` (on_error does not
    apply: skipping either copy would silently drop a sample, and per-sample state is keyed on ids)."""
    if sample_id is None:
        return
    first = ids.setdefault(sample_id, ctx)
    if first is not ctx:
        other = f"{first.file}, {'line' if first.line is not None else 'index'} {first.position}"
        raise DuplicateSampleIdError(
            str(ctx.file),
            f"sample id {sample_id!r} is also used by {other}; give every sample its own id "
            "(hint banks, augmentation state and predictions are keyed on it)",
            line=ctx.line,
            index=ctx.index,
        )


def _outside(media: str, base: Path) -> bool:
    return os.path.commonpath([media, str(base)]) != str(base)


def _warn_outside_root(samples: list[Sample], path: Path, base: Path) -> None:
    """Warn once, with the count and the first example, if media paths ('..' or absolute) leave the
    root: a dataset file is input from others and should not make a run read elsewhere unnoticed."""
    outside = [(s, m) for s in samples for m in [v.path for v in s.videos] + s.images if _outside(m, base)]
    if outside:
        sample, media = outside[0]
        count = len({id(s) for s, _ in outside})
        logger.warning(
            "%s: %d samples have media outside the root %s (first: sample %r -> %s); check these paths",
            *(path, count, base, sample.id, media),
        )


def _skip(result: LoadResult, path: Path, ctx: RecordContext, error: DataError) -> None:
    result.skipped.append(SkippedRecord(str(path), ctx.position, str(error)))
    logger.warning("skipped record: %s", error)
