"""Typed errors for bad data: each names the file, the record (line or index) and what is wrong."""

from __future__ import annotations


class DataError(ValueError):
    """Base class of every user-facing data error."""


class DataFormatError(DataError):
    """A malformed file or record.

    `line` is the 1-based line of a JSON-lines record, `index` the 0-based position of a record in a
    JSON list, `field` the offending key when there is one.
    """

    def __init__(
        self,
        file: str,
        message: str,
        *,
        line: int | None = None,
        index: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file)
        self.message = message
        self.line = line
        self.index = index
        self.field = field
        super().__init__(f"{self.file}{self.where_suffix}: {message}")

    @property
    def where(self) -> str:
        """'line 3', 'index 2' or '' (whole file)."""
        if self.line is not None:
            return f"line {self.line}"
        if self.index is not None:
            return f"index {self.index}"
        return ""

    @property
    def where_suffix(self) -> str:
        return f", {self.where}" if self.where else ""


class MissingMediaError(DataError):
    """A video or image a sample refers to does not exist (or is not a file)."""

    def __init__(self, path: str, sample_id: str, file: str | None = None) -> None:
        self.path = str(path)
        self.sample_id = sample_id
        self.file = None if file is None else str(file)
        origin = f" (from {self.file})" if self.file else ""
        super().__init__(f"sample {sample_id!r}{origin}: media file not found: {self.path}")


class UnknownFormatError(DataError):
    """A `--format` name that is not registered; the message lists the known ones."""
