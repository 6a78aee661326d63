"""What an eval report names besides its numbers: model, data, package versions and decoding.

The header of `eval_report.json` (like lmms-eval's results header): the model directory and its
weights fingerprint, the data file and its sha256, the deepvideo-r1 / transformers / torch
versions and the generation settings, so two reports can be told apart and reproduced.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
import transformers
from torch import nn

from deepvideo_r1 import __version__
from deepvideo_r1.evaluation.fingerprint import weights_fingerprint


def file_sha256(path: str | Path) -> str | None:
    """sha256 of a file (of every file under a directory, by relative path); None if it is absent."""
    path = Path(path)
    if not path.exists():
        return None
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def mean_stderr(scores: list[float]) -> float:
    """Standard error of the mean: s / sqrt(n), s the sample standard deviation (n - 1); 0 for n < 2."""
    n = len(scores)
    if n < 2:
        return 0.0
    mean = sum(scores) / n
    variance = sum((x - mean) ** 2 for x in scores) / (n - 1)
    return math.sqrt(variance / n)


def eval_header(
    model: nn.Module, model_path: str | Path | None, data_path: str | Path | None, generation: dict
) -> dict:
    """The report header: model (path, weights fingerprint), data (path, sha256), versions, decoding."""
    return {
        "model": {"path": str(model_path) if model_path else None, "fingerprint": weights_fingerprint(model)},
        "data": {
            "path": str(data_path) if data_path else None,
            "sha256": file_sha256(data_path) if data_path else None,
        },
        "versions": {
            "deepvideo_r1": __version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "generation": generation,
    }
