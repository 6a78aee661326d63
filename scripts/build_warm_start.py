"""Rebuild the warm start shipped with the package (src/deepvideo_r1/presets/warm_start/).

    python scripts/build_warm_start.py                 # train it, replace the shipped files
    python scripts/build_warm_start.py --check         # train it, compare with the shipped files

It runs the tiny CPU preset's SFT stage at seed 0 (`deepvideo-r1 sft --seed 0 --set
sft.shipped=false`), alone on the machine, then copies the model directory into the package with
its recipe: the settings, the SHA-256 of every file, the versions it was built with and this
command. On the machine that built the shipped files the rebuild is bit for bit the same; on
another machine CPU kernels differ and so do the weights (--check says which files differ).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import accelerate
import torch
import transformers

from deepvideo_r1.config import load_config
from deepvideo_r1.pipeline import run_sft_only, sft_settings
from deepvideo_r1.presets import TINY_CPU
from deepvideo_r1.presets.warm_start import SHIPPED_DIR, read_recipe, write_shipped

COMMAND = "python scripts/build_warm_start.py"


def build(workdir: Path) -> tuple[Path, dict, float]:
    """Train the preset's warm start at seed 0 in `workdir`: (sft_model dir, settings, seconds)."""
    overrides = ["train.seed=0", "data.synth.seed=0", "sft.shipped=false", f"train.output_dir={workdir}"]
    cfg = load_config(TINY_CPU, overrides)
    start = time.perf_counter()
    model_dir = run_sft_only(cfg)
    return model_dir, sft_settings(cfg), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare with the shipped files, change nothing")
    parser.add_argument("--workdir", type=Path, help="where to train (default: a temporary directory)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="warm_start_"))
    torch.set_num_threads(2)  # the preset's machine: 2 cores
    try:
        return build_and_write(workdir, args.check)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir)


def build_and_write(workdir: Path, check: bool) -> int:
    """Train in `workdir`, then replace the shipped files, or (check) compare with them."""
    model_dir, settings, seconds = build(workdir)
    losses = json.loads((model_dir / "sft_losses.json").read_text())
    record = {
        "command": COMMAND,
        "built_with": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "accelerate": accelerate.__version__,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        },
        "final_sft_loss": losses[-1] if losses else None,
    }
    if check:
        shipped = read_recipe()
        with tempfile.TemporaryDirectory() as tmp:
            rebuilt = write_shipped(model_dir, settings, record, Path(tmp) / "warm_start")
        differ = [n for n in shipped["sha256"] if shipped["sha256"][n] != rebuilt["sha256"].get(n)]
        print("rebuild identical to the shipped warm start" if not differ else f"files differ: {differ}")
        return 1 if differ else 0
    recipe = write_shipped(model_dir, settings, record, SHIPPED_DIR)
    print(f"wrote {SHIPPED_DIR} ({len(recipe['sha256'])} files, SFT {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
