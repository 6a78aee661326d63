"""Registry of dataset formats: each adapter turns one raw record (a dict) into a `Sample`.

An adapter declares its container ("jsonl": one JSON object per line, or "json_list": one JSON
array), a `detect(record) -> bool` predicate for `format="auto"`, and `convert(record, ctx)`.
Adding a format is adding one module under `data/formats/` that calls `register_format`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deepvideo_r1.data.errors import DataFormatError, UnknownFormatError
from deepvideo_r1.data.sample import Sample

Container = Literal["jsonl", "json_list"]


@dataclass(frozen=True)
class RecordContext:
    """Where a raw record comes from: its file, its position and the media root."""

    file: Path
    root: Path
    line: int | None = None  # 1-based, JSON-lines files
    index: int | None = None  # 0-based, JSON-list files

    @property
    def position(self) -> int:
        """The line (jsonl) or index (JSON list) of the record."""
        return self.line if self.line is not None else (self.index or 0)

    def error(self, message: str, field: str | None = None) -> DataFormatError:
        """A `DataFormatError` located at this record (raise it)."""
        return DataFormatError(str(self.file), message, line=self.line, index=self.index, field=field)

    def media(self, *parts: str) -> str:
        """Absolute path of a media file: `root / parts...` (an absolute part wins), normalised."""
        return os.path.abspath(os.path.join(self.root, *parts))


Converter = Callable[[Mapping[str, Any], RecordContext], Sample]


@dataclass(frozen=True)
class FormatAdapter:
    """One registered dataset format."""

    name: str
    container: Container
    detect: Callable[[Mapping[str, Any]], bool]
    convert: Converter
    description: str = ""


FORMATS: dict[str, FormatAdapter] = {}


def register_format(
    name: str, *, container: Container, detect: Callable[[Mapping[str, Any]], bool], description: str = ""
) -> Callable[[Converter], Converter]:
    """Decorator registering `convert` under `name` (auto-detection tries formats in registration order)."""

    def wrap(convert: Converter) -> Converter:
        if name in FORMATS:
            raise ValueError(f"format {name!r} is already registered")
        FORMATS[name] = FormatAdapter(name, container, detect, convert, description)
        return convert

    return wrap


def get_format(name: str) -> FormatAdapter:
    """The adapter registered as `name`; an unknown name lists the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        known = ", ".join(["auto", *FORMATS])
        raise UnknownFormatError(f"unknown data format {name!r}; known formats: {known}") from None


def detect_format(record: Mapping[str, Any], container: Container, file: str) -> FormatAdapter:
    """The first registered adapter of `container` whose `detect` accepts `record`."""
    for adapter in FORMATS.values():
        if adapter.container == container and adapter.detect(record):
            return adapter
    keys = ", ".join(sorted(record)[:12])
    known = ", ".join(f"{a.name} ({a.container})" for a in FORMATS.values())
    raise DataFormatError(
        file,
        f"cannot detect the format from the first record (keys: {keys}); pass --format, one of: {known}",
    )
