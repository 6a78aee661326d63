"""What a run leaves on disk, written and compared one way everywhere.

- Atomic writes: a temp file in the target's folder, then `os.replace` (atomic on POSIX and
  Windows), so a reader never sees a half-written file and a crash leaves the old one whole.
- Recorded settings: nested JSON-able dicts compared leaf by leaf, each difference named by its
  dotted key, so "reuse only if the recorded settings match" guards say exactly what changed.

Standard library only: every floor of the package may use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(target: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(f)` on a same-folder temp file opened "wb", then rename it over `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_text_atomic(target: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """`target` holds `text` (encoded with `encoding`), or is left as it was."""
    return atomic_write(target, lambda f: f.write(text.encode(encoding)))


def write_json_atomic(target: str | os.PathLike, data: Any) -> Path:
    """`target` holds `data` as indented JSON, or is left as it was."""
    return write_text_atomic(target, json.dumps(data, indent=2))


def flatten_settings(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"algo": {"beta": 0.1, "w": {"a": 1}}} -> {"algo.beta": 0.1, "algo.w.a": 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat |= flatten_settings(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differing_keys(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (old, new)} for every leaf that differs between two nested settings trees
    (a key one side lacks counts as None there)."""
    a, b = flatten_settings(old), flatten_settings(new)
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}
