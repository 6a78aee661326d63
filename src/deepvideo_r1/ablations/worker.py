"""Subprocess entry of the ablation runner: `python -m deepvideo_r1.ablations.worker KIND CONFIG`.

warm: data, tiny model, SFT model and the SFT model's held-out evaluation (greedy; and on the first
400 held-out clips K = 8 samples at the rollout temperature: mean@8, maj@8, pass@8 per task, what
RL could gain) into
the config's output_dir, then warm.json. row: the whole run (`run_training`), which finds the warm start's
sft_model/ and eval_before/ linked into its directory and skips them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from deepvideo_r1.artifacts import PARENT_PID_ENV, DirectoryLock, die_with_parent
from deepvideo_r1.config import RunConfig, load_config
from deepvideo_r1.evaluation.evaluate import EvalReport, SampledDecoding
from deepvideo_r1.pipeline import (
    eval_stage,
    evaluate_with_config,
    load_model,
    prepare_data,
    run_training,
    warm_start_model,
)

HEADROOM_SAMPLES = 8
# Sampled decoding costs K + 1 generations per clip: the headroom table uses a prefix of the
# held-out split (its interval is wider than the greedy accuracy's; `n` says how many clips).
HEADROOM_CLIPS = 400


def warm_start(cfg: RunConfig) -> dict:
    """Everything before RL, as `run_training` does it; returns (and writes) warm.json."""
    with DirectoryLock(cfg.train.output_dir, "ablate warm start"):
        return _warm_start(cfg)


def _warm_start(cfg: RunConfig) -> dict:
    start = time.time()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(cfg.train.seed)
    data = prepare_data(cfg, accelerator)
    model_dir = warm_start_model(cfg, data, accelerator)
    model, adapter = load_model(cfg, model_dir, accelerator)
    report = eval_stage(cfg, model, adapter, data, "eval_before", accelerator)
    info = {"seed": cfg.train.seed, "eval_accuracy": report.accuracy if report else None}
    if data.eval:
        sampled = SampledDecoding(HEADROOM_SAMPLES, cfg.rollout.temperature, cfg.train.seed)
        out = Path(cfg.train.output_dir) / "eval_sampled"
        info["headroom"] = headroom(evaluate_sampled(cfg, model, adapter, data, out, sampled, accelerator))
    info["wall_seconds"] = round(time.time() - start, 1)
    (Path(cfg.train.output_dir) / "warm.json").write_text(json.dumps(info, indent=2))
    return info


def evaluate_sampled(cfg: RunConfig, model, adapter, data, out: Path, sampled, accelerator) -> EvalReport:
    """Greedy + K sampled completions per sample of the first HEADROOM_CLIPS held-out clips
    (resumable, like every evaluation)."""
    clips = data.eval[:HEADROOM_CLIPS]
    return evaluate_with_config(cfg, model, adapter, clips, out, accelerator, sampled=sampled)


def headroom(report: EvalReport) -> dict[str, dict[str, float]]:
    """Per category (and "all"): clips n, greedy accuracy, mean@K, maj@K, pass@K."""
    keys = ("accuracy", "mean_at_k", "maj_at_k", "pass_at_k")
    out = {"all": {"n": report.n_labelled} | {k: getattr(report, k) for k in keys}}
    out |= {
        cat: {"n": entry["n"]} | {k: entry.get(k) for k in keys} for cat, entry in report.per_category.items()
    }
    return out


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if PARENT_PID_ENV in os.environ:  # a killed `ablate` must not leave this run writing
        die_with_parent(int(os.environ[PARENT_PID_ENV]))
    kind, path = argv
    cfg = load_config(path)
    if kind == "warm":
        warm_start(cfg)
    elif kind == "row":
        run_training(cfg)
    else:
        raise SystemExit(f"unknown worker kind {kind!r}; use warm or row")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
