"""Checkpoint integrity: what COMPLETE vouches for, how it is checked, what is never saved.

The COMPLETE marker lists every other file of the checkpoint with its size and sha256. Before a
resume `verify_checkpoint` compares them, so a truncated, deleted or altered file is a
`CheckpointError` naming that file instead of a safetensors or KeyError traceback mid-load.
sha256 reads every byte once (about 1.5 GB/s on one core, the same order as loading them) and is
checkable by hand with `sha256sum`. Weights with a NaN or inf are refused at save time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

from deepvideo_r1.artifacts import file_manifest as artifacts_manifest
from deepvideo_r1.artifacts import pid_alive, sha256_file

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"
_PARTIAL_RE = re.compile(r"^(checkpoint-\d+)\.(tmp|old)-(\d+)$")
MAX_ABS_WEIGHT = 1e6
"""Largest |weight| a checkpoint may hold: trained LLM weights stay below ~1e3 (norms, embeddings);
an update that pushes one past 1e6 (lr=1e30) has diverged and would overflow the next rollout."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, damaged, or does not match the objects it is loaded into."""


class NonFiniteWeightsError(CheckpointError):
    """Weights about to be saved hold NaN or inf; such a checkpoint would poison every resume."""


def file_manifest(directory: Path) -> dict[str, dict]:
    """{file name: {"size", "sha256"}} for every file of `directory` except the marker."""
    return artifacts_manifest(directory, skip=(COMPLETE_MARKER,))


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
    """Raise NonFiniteWeightsError naming up to 3 tensors of `state` that hold NaN or inf, or
    (exploding weights) a value beyond MAX_ABS_WEIGHT in absolute value."""
    bad, largest = [], {}
    for key, t in state.items():
        if not t.is_floating_point() or not t.numel():
            continue
        peak = float(t.detach().abs().max())  # NaN propagates; one sync per tensor, at save time only
        if not math.isfinite(peak) or peak > MAX_ABS_WEIGHT:
            bad.append(key)
            largest[key] = peak
    if bad:
        shown = ", ".join(f"{k} (max |w| {largest[k]:.3g})" for k in bad[:3])
        shown += f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise NonFiniteWeightsError(
            f"{where}: non-finite or exploding weights (|w| > {MAX_ABS_WEIGHT:g}) in {shown}; not saving "
            "them (the training diverged: lower train.lr)"
        )


def _complete(path: Path) -> bool:
    return path.is_dir() and (path / COMPLETE_MARKER).is_file()


def _restore_interrupted(directory: Path, partial: list[tuple[Path, str, str, int]]) -> None:
    """A kill between the two renames of a re-saved step leaves `checkpoint-N` missing beside a
    complete `.tmp-PID` (the new save) and `.old-PID` (the previous one): rename the newest
    complete copy back into place."""
    for path, name, _, _ in sorted(partial, key=lambda p: p[2] != "tmp"):  # the new save first
        final = directory / name
        if not final.exists() and _complete(path):
            logger.warning("restoring %s from %s (a save was interrupted between two renames)", final, path)
            os.replace(path, final)


def remove_partial_checkpoints(directory: str | Path) -> list[Path]:
    """Clean up after killed saves: restore a complete copy of a step whose final folder is missing
    (`_restore_interrupted`), then delete `checkpoint-N.tmp-PID` / `.old-PID` folders whose process
    is gone; a live process's folders (it is saving right now) are left alone. Returns the deleted."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    partial = []
    for p in sorted(directory.iterdir()):
        match = _PARTIAL_RE.match(p.name)
        if match and p.is_dir():
            partial.append((p, match.group(1), match.group(2), int(match.group(3))))
    orphans = [item for item in partial if not pid_alive(item[3]) or item[3] == os.getpid()]
    _restore_interrupted(directory, orphans)
    doomed = [p for p, *_ in orphans if p.exists()]
    for path in doomed:
        logger.warning("removing %s, left by an interrupted checkpoint write", path)
        shutil.rmtree(path, ignore_errors=True)
    for p, *_, pid in partial:
        if pid_alive(pid) and pid != os.getpid():
            logger.warning("leaving %s alone: process %d that writes it is running", p, pid)
    return doomed
