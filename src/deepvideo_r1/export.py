"""`deepvideo-r1 export CHECKPOINT OUT`: an RL checkpoint as a complete Hugging Face model directory.

The checkpoint holds the trained weights (or only LoRA adapters) and the run's config; the model
the RL stage started from is found in the run directory (`checkpoints/` sits inside it):
`sft_model/` when the run had a supervised stage, else `model.path`, else `tiny_model/`.

The model is written into `<OUT>.tmp-PID` and renamed into place (`artifacts.replace_dir`), so OUT
holds one model, never a mix of two (an old adapter beside new weights). A non-empty OUT needs
`overwrite`; OUT may never be (or sit inside) a run's `checkpoints/`, `sft_model/` or `tiny_model/`,
the checkpoint itself, or the model it was trained from: those are inputs of every later export.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from deepvideo_r1.artifacts import replace_dir, temporary_sibling, write_manifest
from deepvideo_r1.checkpoints.checkpoint import COMPLETE_MARKER, load_checkpoint
from deepvideo_r1.config import RunConfig, load_config
from deepvideo_r1.models.adapter import load_policy
from deepvideo_r1.models.export import ExportError, save_hf_model
from deepvideo_r1.models.trainable import is_lora
from deepvideo_r1.training.context import trainable_model


def rl_base_dir(cfg: RunConfig, run_dir: Path) -> Path:
    """The model directory the RL stage of a run loaded (see module docstring)."""
    if cfg.sft.steps > 0:
        return run_dir / "sft_model"
    if cfg.model.path is not None:
        return Path(cfg.model.path)
    return run_dir / "tiny_model"


PROTECTED_DIRS = ("checkpoints", "sft_model", "tiny_model")
"""Folders of a run directory an export must never write into."""


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_output(out: Path, checkpoint: Path, base: Path, overwrite: bool) -> None:
    """ExportError when `out` is a file, non-empty without `overwrite`, or one of the export's
    inputs: inside a run's PROTECTED_DIRS, the checkpoint, or the base model directory."""
    resolved = out.resolve()
    run_dir = checkpoint.resolve().parent.parent
    protected = [run_dir / name for name in PROTECTED_DIRS] + [checkpoint.resolve(), base.resolve()]
    protected += [
        p
        for p in (resolved, *resolved.parents)
        if p.name in PROTECTED_DIRS and (p.parent / "config.yaml").is_file()
    ]
    for root in protected:
        if _inside(resolved, root):
            raise ExportError(
                f"{out} is inside {root}, which this or later exports read (a run's checkpoints/, "
                "sft_model/, tiny_model/, or the base model); choose another output directory"
            )
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file, not a directory; choose another output directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"{out} is not empty; pass --overwrite to replace it, or choose another directory")


def export_checkpoint(
    checkpoint: str | Path, out: str | Path, *, merge_lora: bool = True, overwrite: bool = False
) -> Path:
    """Write `out` as a complete HF model directory with the checkpoint's weights; LoRA merged into
    the base weights, or (merge_lora=False) saved as a peft adapter next to the processor files.
    Written beside `out` and renamed into place; a non-empty `out` needs `overwrite`."""
    checkpoint, out = Path(checkpoint), Path(out)
    if not (checkpoint / COMPLETE_MARKER).is_file() or not (checkpoint / "config.yaml").is_file():
        raise ExportError(
            f"{checkpoint} is not a complete checkpoint with a config.yaml; "
            "pass a <output_dir>/checkpoints/checkpoint-N directory"
        )
    cfg = load_config(checkpoint / "config.yaml")
    base = rl_base_dir(cfg, checkpoint.resolve().parent.parent)
    if not (base / "config.json").is_file():
        raise ExportError(f"{checkpoint}: the model it was trained from is not at {base}")
    check_output(out, checkpoint, base, overwrite)
    model, adapter = load_policy(base)
    model = trainable_model(model, cfg)  # the LoRA wrapping the checkpoint's adapter keys expect
    load_checkpoint(checkpoint, model, restore_rng=False)
    if is_lora(model) and not merge_lora:
        model.peft_config["default"].base_model_name_or_path = str(base.resolve())
    tmp = temporary_sibling(out)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_hf_model(model, adapter.tokenizer, tmp, base_dir=base, merge_lora=merge_lora)
        write_manifest(tmp)
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # left only when writing failed
    return out
