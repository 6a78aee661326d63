"""Subprocess entry of the ablation runner: `python -m deepvideo_r1.ablations.worker KIND CONFIG`.

warm: data, tiny model, SFT model and the SFT model's held-out evaluation into the config's
output_dir, then warm.json. row: the whole run (`run_training`), which finds the warm start's
sft_model/ and eval_before/ linked into its directory and skips them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from deepvideo_r1.config import TrainConfig, load_config
from deepvideo_r1.pipeline import (
    eval_stage,
    load_model,
    prepare_data,
    prepare_model_dir,
    run_training,
    sft_stage,
)


def warm_start(cfg: TrainConfig) -> dict:
    """Everything before RL, as `run_training` does it; returns (and writes) warm.json."""
    start = time.time()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(cfg.train.seed)
    data = prepare_data(cfg, accelerator)
    model_dir = prepare_model_dir(cfg, accelerator)
    if cfg.sft.steps > 0:
        model_dir = sft_stage(cfg, model_dir, data, accelerator)
    model, adapter = load_model(cfg, model_dir, accelerator)
    report = eval_stage(cfg, model, adapter, data, "eval_before", accelerator)
    info = {
        "seed": cfg.train.seed,
        "eval_accuracy": report.accuracy if report else None,
        "wall_seconds": round(time.time() - start, 1),
    }
    (Path(cfg.train.output_dir) / "warm.json").write_text(json.dumps(info, indent=2))
    return info


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
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
