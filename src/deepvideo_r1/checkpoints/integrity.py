"""Checkpoint integrity: what COMPLETE vouches for, how it is checked, what is never saved.

The COMPLETE marker lists every other file of the checkpoint with its size and sha256. Before a
resume `verify_checkpoint` compares them, so a truncated, deleted or altered file is a
`CheckpointError` naming that file instead of a safetensors or KeyError traceback mid-load.
sha256 reads every byte once (about 1.5 GB/s on one core, the same order as loading them) and is
checkable by hand with `sha256sum`. Weights with a NaN or inf are refused at save time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"
_CHUNK = 8 << 20
_PARTIAL_RE = re.compile(r"^checkpoint-\d+\.(tmp|old)-\d+$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, damaged, or does not match the objects it is loaded into."""


class NonFiniteWeightsError(CheckpointError):
    """Weights about to be saved hold NaN or inf; such a checkpoint would poison every resume."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 8 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_manifest(directory: Path) -> dict[str, dict]:
    """{file name: {"size", "sha256"}} for every file of `directory` except the marker."""
    return {
        p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != COMPLETE_MARKER
    }


def read_marker(path: Path) -> dict:
    """The COMPLETE marker of checkpoint `path`; CheckpointError if absent or unreadable."""
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    marker = path / COMPLETE_MARKER
    if not marker.is_file():
        raise CheckpointError(f"{path} is not a complete checkpoint (no {COMPLETE_MARKER} marker)")
    try:
        return json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{marker} is unreadable ({e})") from e


def verify_checkpoint(path: str | Path) -> None:
    """Raise CheckpointError naming the first file that is missing or whose size or sha256 differs
    from the marker. Markers of older versions carry no manifest: accepted with a warning."""
    path = Path(path)
    files = read_marker(path).get("files")
    if files is None:
        logger.warning("%s predates file checksums; it is loaded unverified", path)
        return
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file} is missing (listed in {COMPLETE_MARKER})")
        size = file.stat().st_size
        if size != expected["size"]:
            raise CheckpointError(f"{file} has {size} bytes, {expected['size']} were saved (truncated?)")
        if sha256_file(file) != expected["sha256"]:
            raise CheckpointError(f"{file} does not match its saved sha256 (the file was altered)")


def check_finite(state: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise NonFiniteWeightsError naming up to 3 tensors of `state` that hold NaN or inf."""
    bad = [k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NonFiniteWeightsError(f"{where}: non-finite weights in {shown}; not saving them")


def remove_partial_checkpoints(directory: str | Path) -> list[Path]:
    """Delete `checkpoint-N.tmp-PID` / `.old-PID` folders a killed run left; returns them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    doomed = [p for p in sorted(directory.iterdir()) if p.is_dir() and _PARTIAL_RE.match(p.name)]
    for path in doomed:
        logger.warning("removing %s, left by an interrupted checkpoint write", path)
        shutil.rmtree(path, ignore_errors=True)
    return doomed
