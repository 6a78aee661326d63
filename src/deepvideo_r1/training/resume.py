"""Where a run continues from, decided at the start of `train`, before data, SFT or evaluation.

- `train.resume=auto`: the newest checkpoint whose files verify; a damaged one is skipped with a
  warning naming the file (none at all: a fresh start; all damaged: CheckpointError).
- `train.resume=<path>`: that checkpoint; missing or damaged is a CheckpointError naming the file.
- `train.resume=none` into a directory that holds a run (checkpoints, metrics, summary) is a
  RunDirectoryError, unless `overwrite`: then the run's outputs are removed first.
- A checkpoint beyond `train.max_steps` is a ResumeError (the model would be ahead of its summary).
- The checkpoint's config.yaml is compared with this run's config: a difference outside
  `SAFE_TO_CHANGE` is a ResumeConfigError naming every one, unless `with_changes`; then the new
  values apply (the trainer re-applies this config's learning rates over the saved optimizer and
  scheduler) and the first resumed step records them in metrics.jsonl (`resume/changes`).
- Even with `with_changes`, a change to `model.*` (but its compute knobs), `sft.*` or
  `data.train_file` is a ResumeConfigError: the checkpoint's weights (or LoRA adapters) belong to
  the model and warm start it was trained from. A training file whose size differs from the one
  the checkpoint recorded is a ResumeError (the data position would point into other data).
- `checkpoint-N.tmp-PID` folders left by a killed save are removed (unless that process runs).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from deepvideo_r1.artifacts import differing_keys
from deepvideo_r1.checkpoints.checkpoint import latest_intact_checkpoint
from deepvideo_r1.checkpoints.integrity import (
    CheckpointError,
    read_marker,
    remove_partial_checkpoints,
    verify_checkpoint,
)
from deepvideo_r1.config import ConfigError, RunConfig, merge_sections

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"

SAFE_TO_CHANGE = (
    "train.output_dir",
    "train.resume",
    "train.max_steps",
    "train.save_every",
    "train.keep_last",
    "train.log_every",
    "train.report_to",
    "train.project",
    "train.run_name",
    "train.log_completions_every",
    "train.eval_every",
    "train.eval_batch_size",
    "train.logprob_chunk_size",
    "train.max_skipped_updates",
    "model.gradient_checkpointing",
    "model.attn_implementation",
    "data.eval_file",
    "data.max_eval_samples",
    "data.max_prompt_tokens",
    "data.synth.dir",
    "video.cache_dir",
)
"""Settings a resume may change freely: where files go, how often things are saved or logged,
memory/speed knobs with the same math, and what is evaluated. Everything else changes what the
run trains (loss, G, lr, model, data, rewards, ...)."""

NEVER_CHANGED = ("model", "sft", "data.train_file")
"""What a checkpoint is tied to even under --resume-with-changes: its weights (or LoRA adapters) are
of the model and warm start these settings make. The compute knobs of SAFE_TO_CHANGE and
`model.shared_prefix` (the same math with another prefill) stay changeable."""
_CHANGEABLE_MODEL_KEYS = ("model.shared_prefix",)

RUN_OUTPUTS = (CHECKPOINT_DIR, "metrics.jsonl", "tb", "eval_before", "eval_after", "final_model")
RUN_OUTPUTS += ("summary.json", "plots", "config.yaml")
"""What `overwrite` removes (with every EVAL_STEP_DIR). Kept: synth/, tiny_model/, sft_model/ and
cache/, which are reused only when their recorded settings equal this run's."""
EVAL_STEP_DIR = "eval_step_{step}"
"""The evaluation after an intermediate RL step (train.eval_every)."""


class ResumeError(RuntimeError):
    """A run cannot continue as asked (the message says how to proceed)."""


class RunDirectoryError(ResumeError):
    """`--resume none` into a directory that already holds a run."""


class ResumeConfigError(ResumeError):
    """The checkpoint was trained with settings that change what this run means."""


@dataclass
class ResumePlan:
    """The checkpoint to continue from (None = fresh start) and the settings changed since it."""

    checkpoint: Path | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def config_changes(checkpoint: Path, cfg: RunConfig) -> dict[str, tuple[Any, Any]]:
    """Settings of `cfg` that differ from the checkpoint's config.yaml (fields it lacks: defaults)."""
    saved_file = checkpoint / "config.yaml"
    if not saved_file.exists():
        logger.warning("%s has no config.yaml; resuming without comparing settings", checkpoint)
        return {}
    saved = yaml.safe_load(saved_file.read_text(encoding="utf-8")) or {}
    try:
        old = merge_sections(RunConfig().model_dump(mode="json"), saved, source=str(saved_file))
    except ConfigError as e:
        raise ResumeConfigError(f"cannot compare settings with {checkpoint}: {e}") from e
    return differing_keys(old, cfg.model_dump(mode="json"))


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in prefixes)


def is_locked_change(key: str) -> bool:
    """Whether `key` may not change on resume even with --resume-with-changes (NEVER_CHANGED)."""
    return _under(key, NEVER_CHANGED) and not _under(key, _CHANGEABLE_MODEL_KEYS) and not is_safe_change(key)


def train_file_bytes(train_file: str | None) -> int | None:
    """The size of data.train_file (None for the synthetic data, or a hub dataset id)."""
    if train_file is None or not Path(train_file).is_file():
        return None
    return Path(train_file).stat().st_size


def check_train_file(checkpoint: Path, train_file: str | None) -> None:
    """ResumeError when the training file's size differs from the one `checkpoint` recorded."""
    state_file = checkpoint / "trainer_state.json"
    try:
        saved = json.loads(state_file.read_text(encoding="utf-8")).get("train_file_bytes")
    except (OSError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{state_file} is unreadable ({type(e).__name__}: {e})") from e
    now = train_file_bytes(train_file)
    if saved is not None and now != saved:
        raise ResumeError(
            f"data.train_file {train_file} has {now} bytes, but {checkpoint} was trained on {saved} bytes: "
            "the file changed since; restore it, or start over in another --output-dir"
        )


def is_safe_change(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in SAFE_TO_CHANGE)


def format_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    """'algo.loss: reg_grpo -> grpo, train.lr: 0.0001 -> 0.001'."""
    return ", ".join(f"{k}: {old} -> {new}" for k, (old, new) in changes.items())


def holds_run(out: Path) -> list[str]:
    """The run outputs present in `out` (an empty checkpoints/ does not count)."""
    ckpt = out / CHECKPOINT_DIR
    found = [name for name in ("metrics.jsonl", "summary.json") if (out / name).exists()]
    if ckpt.is_dir() and any(ckpt.iterdir()):
        found.insert(0, f"{CHECKPOINT_DIR}/")
    return found


def clear_run(out: Path) -> None:
    """Remove the outputs of a previous run from `out` (see RUN_OUTPUTS)."""
    for path in [*(out / name for name in RUN_OUTPUTS), *out.glob(EVAL_STEP_DIR.format(step="*"))]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    logger.info("cleared the previous run's outputs from %s", out)


def _choose(cfg: RunConfig, overwrite: bool, dry: bool = False) -> Path | None:
    """The checkpoint to resume from; `dry`: decide only, removing nothing (--dry-run)."""
    out = Path(cfg.train.output_dir)
    if overwrite and dry:
        return None  # the run would clear the directory and start fresh
    if overwrite:
        clear_run(out)
    if not dry:
        remove_partial_checkpoints(out / CHECKPOINT_DIR)
    resume = cfg.train.resume
    if resume == "none":
        present = holds_run(out)
        if present:
            raise RunDirectoryError(
                f"{out} holds another run ({', '.join(present)}); pass --overwrite to clear it first, "
                "--resume auto to continue it, or use another --output-dir"
            )
        return None
    if resume == "auto":
        return latest_intact_checkpoint(out / CHECKPOINT_DIR)
    verify_checkpoint(resume)
    return Path(resume)


def check_resume(cfg: RunConfig, *, overwrite: bool = False, with_changes: bool = False) -> ResumePlan:
    """What `plan_resume` would decide (or raise), changing nothing on disk: for `train --dry-run`."""
    return _plan(cfg, overwrite, with_changes, dry=True)


def _plan(cfg: RunConfig, overwrite: bool, with_changes: bool, dry: bool = False) -> ResumePlan:
    path = _choose(cfg, overwrite, dry)
    if path is None:
        return ResumePlan()
    step = int(read_marker(path)["step"])
    if step > cfg.train.max_steps:
        raise ResumeError(
            f"{path} is at step {step}, beyond train.max_steps={cfg.train.max_steps}; set --max-steps "
            f">= {step}, or start over with --resume none --overwrite"
        )
    changes = {k: v for k, v in config_changes(path, cfg).items() if not is_safe_change(k)}
    locked = {k: v for k, v in changes.items() if is_locked_change(k)}
    if locked:
        raise ResumeConfigError(
            f"{path} was trained from another model or warm start ({format_changes(locked)}); "
            "model.*, sft.* and data.train_file cannot change on resume, even with --resume-with-changes: "
            "use another --output-dir"
        )
    check_train_file(path, cfg.data.train_file)
    if changes and not with_changes:
        raise ResumeConfigError(
            f"{path} was trained with other settings ({format_changes(changes)}); pass "
            "--resume-with-changes to continue with the new values, or use another --output-dir"
        )
    if changes:
        logger.warning("resuming from %s with changed settings: %s", path, format_changes(changes))
    return ResumePlan(path, changes)


def plan_resume(
    cfg: RunConfig, accelerator: Accelerator, *, overwrite: bool = False, with_changes: bool = False
) -> ResumePlan:
    """Decide (on the main process, which also clears and cleans up) where the run continues from;
    every rank gets the same plan, or the same error."""
    outcome: ResumePlan | Exception | None = None
    if accelerator.is_main_process:
        try:
            outcome = _plan(cfg, overwrite, with_changes)
        except (ResumeError, CheckpointError) as e:
            outcome = e
    if accelerator.num_processes > 1:
        box = [outcome]
        broadcast_object_list(box, from_process=0)
        outcome = box[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome
