"""`deepvideo-r1 train --dry-run`: check a run's inputs without loading weights or training.

The config is already validated by loading it. Then: every record of data.train_file and
data.eval_file goes through its adapter (with `check_media`, the first frame of every video and
image is decoded, so a text file named `.mp4`, an empty file or a link to a system file fails
here; on_error="raise" whatever data.on_error says, so the first problem is an error naming file
and sample), the trackers' packages are importable, model.path holds a config of a known family and
a tokenizer, the resume decision `train` would take (a changed config against the newest
checkpoint, `--resume none` into a run) and the warm start it would use (the shipped one's recipe
and files, a run's sft_model/ or tiny_model/ made with other settings). Nothing is written or
removed. Returns what a run would use, one line per input.
"""

from __future__ import annotations

from pathlib import Path

from deepvideo_r1.config import RunConfig
from deepvideo_r1.data import DataError, load_samples
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.metrics.trackers import check_tracker_packages
from deepvideo_r1.models.adapter import ModelLoadError
from deepvideo_r1.models.families import UnknownFamilyError, get_family
from deepvideo_r1.pipeline import (
    DONE_MARKER,
    TINY_SETTINGS,
    StaleModelError,
    check_settings,
    check_sft_settings,
    sft_settings,
    shipped_fits,
    tiny_settings,
)
from deepvideo_r1.preflight import preflight
from deepvideo_r1.presets.warm_start import SHIPPED_DIR, ShippedWarmStartError, check_files, read_recipe
from deepvideo_r1.training.resume import check_resume
from deepvideo_r1.video import VideoDecodeError, VideoNotFoundError, load_image


def decode_media(samples: list[Sample], file: str) -> int:
    """Decode the first frame of every video and image of `samples` (each path once); returns how
    many files. Raises DataError naming the data file, the sample and the media file."""
    seen: set[str] = set()
    for sample in samples:
        for path in [v.path for v in sample.videos] + sample.images:
            if path in seen:
                continue
            try:
                load_image(path)  # the first frame of any stream PyAV opens: video or image
            except (VideoDecodeError, VideoNotFoundError) as e:
                raise DataError(f"{file}: sample {sample.id!r}: {e}") from e
            seen.add(path)
    return len(seen)


def check_data(cfg: RunConfig, check_media: bool) -> list[str]:
    """One line per data file (records, types), or what the synthetic data would be."""
    d = cfg.data
    if d.train_file is None:
        s = d.synth
        where = s.dir or str(Path(cfg.train.output_dir) / "synth")
        return [f"data: synthetic, {s.n_train} train + {s.n_eval} eval samples, generated into {where}"]
    lines = []
    for role, file in (("train", d.train_file), ("eval", d.eval_file)):
        if file is None:
            continue
        result = load_samples(file, format=d.format, root=d.root, on_error="raise", check_media=check_media)
        counts = ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items()))
        media = "media not checked (--check-media)"
        if check_media:
            media = f"media checked: {decode_media(result.samples, file)} files decode"
        n = len(result.samples)
        lines.append(f"data {role}: {file}: {n} records ({result.format}; {counts}); {media}")
    return lines


def check_model(cfg: RunConfig) -> str:
    """model.path has a config.json of a known family and a tokenizer (no weights are read)."""
    if cfg.model.path is None:
        where = Path(cfg.train.output_dir) / "tiny_model"
        if shipped_fits(cfg):
            return f"model: the shipped warm start (tiny {cfg.model.family}), installed into sft_model/"
        return f"model: tiny {cfg.model.family} preset, built into {where}"
    from transformers import AutoConfig, AutoTokenizer

    path = Path(cfg.model.path)
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"model.path={path}: no config.json, not a model directory")
    try:
        family = get_family(AutoConfig.from_pretrained(path).model_type)
        AutoTokenizer.from_pretrained(path)
    except (UnknownFamilyError, OSError, ValueError) as e:
        raise ModelLoadError(f"model.path={path}: {e}") from e
    weights = sorted(p.name for p in path.glob("*.safetensors"))
    return f"model: {path} ({family.name}; {len(weights)} safetensors files)"


def check_warm_start(cfg: RunConfig) -> str:
    """The warm start `train` would use is usable: the shipped one's recipe parses and its files
    match their SHA-256; a run directory's sft_model/ and tiny_model/ were made with this run's
    settings (else they would be refused after data generation)."""
    out = Path(cfg.train.output_dir)
    try:
        shipped = shipped_fits(cfg)
        if shipped:
            check_files(SHIPPED_DIR, read_recipe())
    except (ValueError, KeyError, TypeError) as e:  # a recipe that is not JSON or lacks its keys
        raise ShippedWarmStartError(f"{SHIPPED_DIR / 'recipe.json'} is not a readable recipe: {e}") from e
    sft_dir = out / "sft_model"
    if (sft_dir / DONE_MARKER).exists():
        check_sft_settings(sft_dir, sft_settings(cfg))
        return f"warm start: {sft_dir} (reused: its settings are this run's)"
    if shipped:
        return "warm start: shipped (recipe and file hashes checked)"
    if cfg.model.path is None and (out / "tiny_model" / "config.json").exists():
        check_settings(out / "tiny_model", tiny_settings(cfg), TINY_SETTINGS, StaleModelError)
    return f"warm start: {cfg.sft.steps} SFT steps" if cfg.sft.steps else "warm start: none (sft.steps=0)"


def check_resume_line(cfg: RunConfig, overwrite: bool, with_changes: bool) -> str:
    """Where `train` would continue from; raises what it would raise (ResumeError, CheckpointError)."""
    plan = check_resume(cfg, overwrite=overwrite, with_changes=with_changes)
    if plan.checkpoint is None:
        return "resume: a fresh start" + (" (--overwrite clears the run first)" if overwrite else "")
    changed = f", with changed settings: {', '.join(plan.changes)}" if plan.changes else ""
    return f"resume: from {plan.checkpoint}{changed}"


def dry_run(
    cfg: RunConfig, *, check_media: bool = False, overwrite: bool = False, with_changes: bool = False
) -> list[str]:
    """The preflight checks, then all checks of the module docstring; raises the first problem
    (PreflightError, DataError, ModelLoadError, TrackerError, ResumeError, CheckpointError,
    StaleModelError, ShippedWarmStartError)."""
    preflight(cfg, "train")
    check_tracker_packages(cfg.train.report_to)
    trackers = ", ".join(cfg.train.report_to) or "none"
    lines = [check_resume_line(cfg, overwrite, with_changes)]
    lines += [check_warm_start(cfg), *check_data(cfg, check_media), check_model(cfg), f"trackers: {trackers}"]
    return lines
