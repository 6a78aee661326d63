"""`deepvideo-r1 export CHECKPOINT OUT`: an RL checkpoint as a complete Hugging Face model directory.

The checkpoint holds the trained weights (or only LoRA adapters) and the run's config; the model
the RL stage started from is found in the run directory (`checkpoints/` sits inside it):
`sft_model/` when the run had a supervised stage, else `model.path`, else `tiny_model/`.
"""

from __future__ import annotations

from pathlib import Path

from deepvideo_r1.checkpoints.checkpoint import COMPLETE_MARKER, load_checkpoint
from deepvideo_r1.config import TrainConfig, load_config
from deepvideo_r1.models.adapter import load_policy
from deepvideo_r1.models.export import ExportError, save_hf_model
from deepvideo_r1.models.trainable import is_lora
from deepvideo_r1.training.context import trainable_model


def rl_base_dir(cfg: TrainConfig, run_dir: Path) -> Path:
    """The model directory the RL stage of a run loaded (see module docstring)."""
    if cfg.sft.steps > 0:
        return run_dir / "sft_model"
    if cfg.model.path is not None:
        return Path(cfg.model.path)
    return run_dir / "tiny_model"


def export_checkpoint(checkpoint: str | Path, out: str | Path, *, merge_lora: bool = True) -> Path:
    """Write `out` as a complete HF model directory with the checkpoint's weights; LoRA merged into
    the base weights, or (merge_lora=False) saved as a peft adapter next to the processor files."""
    checkpoint = Path(checkpoint)
    if not (checkpoint / COMPLETE_MARKER).is_file() or not (checkpoint / "config.yaml").is_file():
        raise ExportError(
            f"{checkpoint} is not a complete checkpoint with a config.yaml; "
            "pass a <output_dir>/checkpoints/checkpoint-N directory"
        )
    cfg = load_config(checkpoint / "config.yaml")
    base = rl_base_dir(cfg, checkpoint.resolve().parent.parent)
    if not (base / "config.json").is_file():
        raise ExportError(f"{checkpoint}: the model it was trained from is not at {base}")
    model, adapter = load_policy(base)
    model = trainable_model(model, cfg)  # the LoRA wrapping the checkpoint's adapter keys expect
    load_checkpoint(checkpoint, model, restore_rng=False)
    if is_lora(model) and not merge_lora:
        model.peft_config["default"].base_model_name_or_path = str(base.resolve())
    return save_hf_model(model, adapter.tokenizer, out, base_dir=base, merge_lora=merge_lora)
