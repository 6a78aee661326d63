"""`deepvideo-r1 train --dry-run`: check a run's inputs without loading weights or training.

The config is already validated by loading it. Then: every record of data.train_file and
data.eval_file goes through its adapter (with `check_media`, every video and image must be a file;
on_error="raise" whatever data.on_error says, so the first problem is an error naming file and
line), the trackers' packages are importable, and model.path holds a config of a known family and
a tokenizer. Returns what a run would use, one line per input.
"""

from __future__ import annotations

from pathlib import Path

from deepvideo_r1.config import TrainConfig
from deepvideo_r1.data import load_samples
from deepvideo_r1.metrics.trackers import check_tracker_packages
from deepvideo_r1.models.adapter import ModelLoadError
from deepvideo_r1.models.families import UnknownFamilyError, get_family
from deepvideo_r1.preflight import preflight


def check_data(cfg: TrainConfig, check_media: bool) -> list[str]:
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
        media = "media checked" if check_media else "media not checked (--check-media)"
        n = len(result.samples)
        lines.append(f"data {role}: {file}: {n} records ({result.format}; {counts}); {media}")
    return lines


def check_model(cfg: TrainConfig) -> str:
    """model.path has a config.json of a known family and a tokenizer (no weights are read)."""
    if cfg.model.path is None:
        where = Path(cfg.train.output_dir) / "tiny_model"
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


def dry_run(cfg: TrainConfig, *, check_media: bool = False) -> list[str]:
    """The preflight checks, then all checks of the module docstring; raises the first problem
    (PreflightError, DataError, ModelLoadError, TrackerError)."""
    preflight(cfg, "train")
    check_tracker_packages(cfg.train.report_to)
    trackers = ", ".join(cfg.train.report_to) or "none"
    return [*check_data(cfg, check_media), check_model(cfg), f"trackers: {trackers}"]
