"""Cost of keying resumed evaluation predictions on the model weights: `weights_fingerprint`
(integer sums of the weights' bytes + sampled words) against sha256 of every weight byte.

    python benchmarks/eval_fingerprint.py [--layers 24] [--width 2048] [--repeats 5]

A bf16 MLP (layers × width², ~100 M parameters, 200 MB by default) on one CPU thread; the two
are timed alternately and the medians compared. Writes benchmarks/results/eval_fingerprint.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from deepvideo_r1.evaluation.fingerprint import weights_fingerprint

RESULTS = Path(__file__).parent / "results" / "eval_fingerprint.json"


def full_sha256(model: nn.Module) -> str:
    h = hashlib.sha256()
    for tensor in model.state_dict().values():
        h.update(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def timed(fn, model: nn.Module) -> float:
    start = time.perf_counter()
    fn(model)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(args.width, args.width) for _ in range(args.layers)]).to(torch.bfloat16)
    fingerprint, sha = [], []
    for _ in range(args.repeats):  # alternated, so machine load hits both alike
        fingerprint.append(timed(weights_fingerprint, model))
        sha.append(timed(full_sha256, model))
    mb = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6
    result = {
        "weights_mb": round(mb, 1),
        "fingerprint_s": round(statistics.median(fingerprint), 4),
        "sha256_s": round(statistics.median(sha), 4),
    }
    result["sha256_over_fingerprint"] = round(result["sha256_s"] / result["fingerprint_s"], 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
