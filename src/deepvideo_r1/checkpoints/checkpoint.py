"""Atomic, complete, pickle-free checkpoints that resume a run exactly.

Layout of `<dir>/checkpoint-<step>/`:

    model.safetensors | adapter_model.safetensors   weights (adapters only under LoRA)
    optimizer.json + optimizer.safetensors          optimizer.state_dict(): structure + tensors
    scheduler.json (+ .safetensors)                 lr scheduler state
    rng.json (+ rng.safetensors)                    python/numpy/torch/CUDA RNG states, one per rank
    trainer_state.json                              step, controller buffer, hint bank, data position...
    config.yaml                                     the resolved RunConfig
    COMPLETE                                        written last: {"step", "weights", "format",
                                                    "files": {name: {"size", "sha256"}}}

Everything is written into `checkpoint-<step>.tmp-<pid>` and renamed into place, so a crash never
leaves a directory that looks complete. Nothing is pickled: nested state (dicts, lists, tuples,
numbers, tensors, numpy arrays) is flattened into JSON with tensors stored by name in safetensors.
The marker's file manifest and its checks live in `integrity.py`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from deepvideo_r1.artifacts import replace_dir
from deepvideo_r1.checkpoints.integrity import (
    COMPLETE_MARKER,
    CheckpointError,
    check_finite,
    file_manifest,
    read_marker,
    verify_checkpoint,
)
from deepvideo_r1.config import RunConfig, save_config

logger = logging.getLogger(__name__)

__all__ = ["COMPLETE_MARKER", "CheckpointError"]  # re-exported: the marker and the error of this module

FORMAT_VERSION = 2
MODEL_FILE = "model.safetensors"
ADAPTER_FILE = "adapter_model.safetensors"
_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


# ---------------------------------------------------------------- nested state <-> JSON + tensors


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], path: str = "s") -> Any:
    """JSON-able tree of `obj`; tensors go into `tensors` under their tree path and leave a reference.

    Encodings: tensor -> {"__tensor__": key}; tuple -> {"__tuple__": [...]};
    dict with non-str keys -> {"__items__": [[k, v], ...]}; numpy array -> {"__ndarray__": list, "dtype"}.
    """
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous()
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten_state(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {k: flatten_state(v, tensors, f"{path}.{k}") for k, v in obj.items()}
        return {"__items__": [[k, flatten_state(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint {type(obj).__name__} at {path}: only tensors, arrays and JSON types")


def unflatten_state(tree: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of `flatten_state`."""
    if isinstance(tree, list):
        return [unflatten_state(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "__tensor__" in tree:
        return tensors[tree["__tensor__"]]
    if "__ndarray__" in tree:
        return np.asarray(tree["__ndarray__"], dtype=tree["dtype"])
    if "__tuple__" in tree:
        return tuple(unflatten_state(v, tensors) for v in tree["__tuple__"])
    if "__items__" in tree:
        return {k: unflatten_state(v, tensors) for k, v in tree["__items__"]}
    return {k: unflatten_state(v, tensors) for k, v in tree.items()}


def _save_tree(directory: Path, name: str, obj: Any) -> None:
    tensors: dict[str, torch.Tensor] = {}
    tree = flatten_state(obj, tensors)
    (directory / f"{name}.json").write_text(json.dumps(tree), encoding="utf-8")
    if tensors:
        save_file(_unshare(tensors), str(directory / f"{name}.safetensors"))


def _load_tree(directory: Path, name: str) -> Any:
    tensor_file = directory / f"{name}.safetensors"
    tensors = load_file(str(tensor_file)) if tensor_file.exists() else {}
    return unflatten_state(json.loads((directory / f"{name}.json").read_text(encoding="utf-8")), tensors)


def _unshare(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share storage (tied embeddings): clone the repeats only."""
    seen: set[int] = set()
    out = {}
    for key, tensor in state.items():
        tensor = tensor.detach().cpu().contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if tensor.numel() and storage in seen:
            tensor = tensor.clone()
        seen.add(storage)
        out[key] = tensor
    return out


# ---------------------------------------------------------------- RNG


def capture_rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch CPU and (when present) CUDA generator states."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of `capture_rng_state`; the next random draws repeat those after the capture."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


# ---------------------------------------------------------------- weights


def model_state_for_saving(model: torch.nn.Module, adapters_only: bool = False) -> dict[str, torch.Tensor]:
    """The tensors to save: the full state dict, or only the LoRA adapters of a peft model."""
    if adapters_only:
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(model)
    return model.state_dict()


def read_optimizer_state(path: str | Path) -> Any:
    """The optimizer state saved in a checkpoint, as saved (no optimizer needed)."""
    return _load_tree(Path(path), "optimizer")


def read_model_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The full-model weights of a checkpoint (not LoRA adapters)."""
    weights = Path(path) / MODEL_FILE
    if not weights.exists():
        raise CheckpointError(f"{path} holds no {MODEL_FILE}")
    return load_file(str(weights))


def _load_weights(path: Path, model: torch.nn.Module) -> None:
    if (path / ADAPTER_FILE).exists():
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, load_file(str(path / ADAPTER_FILE)))
        if result.unexpected_keys:
            unexpected = list(result.unexpected_keys)[:5]
            raise CheckpointError(f"{path / ADAPTER_FILE}: adapter keys not in the model: {unexpected}")
        return
    weights = path / MODEL_FILE
    if not weights.exists():
        raise CheckpointError(f"{path} holds neither {MODEL_FILE} nor {ADAPTER_FILE}")
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{weights} does not match the model: {e}") from e


# ---------------------------------------------------------------- save / find / load


def save_checkpoint(
    directory: str | Path,
    step: int,
    *,
    model_state: Mapping[str, torch.Tensor],
    adapters_only: bool = False,
    optimizer: torch.optim.Optimizer | None = None,
    optimizer_state: Mapping[str, Any] | None = None,
    scheduler: Any | None = None,
    rng_states: list[dict[str, Any]] | None = None,
    trainer_state: Mapping[str, Any] | None = None,
    config: RunConfig | None = None,
    keep_last: int | None = None,
) -> Path:
    """Write `<directory>/checkpoint-<step>` atomically and prune to the last `keep_last` complete ones.

    `model_state` comes from `model_state_for_saving` (or `accelerator.get_state_dict(model)`);
    `adapters_only` names the file `adapter_model.safetensors`. `rng_states` holds one
    `capture_rng_state()` per rank (index = rank); default: this process's state as rank 0.
    `optimizer_state` replaces `optimizer.state_dict()` when the state was gathered elsewhere
    (sharded optimizers). `trainer_state` must be JSON-serialisable (lists of floats, ints, strings, dicts).
    Returns the final checkpoint path. Non-finite weights are a NonFiniteWeightsError (nothing saved).
    """
    check_finite(model_state, f"checkpoint-{step}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"checkpoint-{step}"
    tmp = directory / f"checkpoint-{step}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        weights_name = _write_files(tmp, model_state, adapters_only, optimizer_state or optimizer, scheduler)
        _write_state(tmp, step, weights_name, rng_states, trainer_state, config)
        replace_dir(tmp, final)
    except (
        OSError,
        SafetensorError,
    ) as e:  # disk full, read-only: the previous checkpoints stay as they were
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"{final} could not be written ({e}); the earlier checkpoints are intact"
        ) from e
    if keep_last is not None:
        prune_checkpoints(directory, keep_last)
    logger.info("saved checkpoint %s", final)
    return final


def _write_files(tmp: Path, model_state, adapters_only: bool, optimizer, scheduler) -> str:
    """Weights, optimizer (an optimizer or its state dict) and scheduler state into `tmp`; returns
    the weights file's name."""
    weights_name = ADAPTER_FILE if adapters_only else MODEL_FILE
    save_file(_unshare(model_state), str(tmp / weights_name))
    if isinstance(optimizer, torch.optim.Optimizer):
        optimizer = optimizer.state_dict()
    if optimizer is not None:
        _save_tree(tmp, "optimizer", optimizer)
    if scheduler is not None:
        _save_tree(tmp, "scheduler", scheduler.state_dict())
    return weights_name


def _write_state(tmp: Path, step: int, weights_name: str, rng_states, trainer_state, config) -> None:
    """RNG, trainer state and config, then the COMPLETE marker listing every file, last."""
    _save_tree(tmp, "rng", rng_states if rng_states is not None else [capture_rng_state()])
    state = {"step": step, **dict(trainer_state or {})}
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    if config is not None:
        save_config(config, tmp / "config.yaml")
    marker = {"step": step, "weights": weights_name, "format": FORMAT_VERSION, "files": file_manifest(tmp)}
    _write_synced(tmp / COMPLETE_MARKER, json.dumps(marker))


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoints in `directory`, oldest step first; tmp and unmarked dirs are ignored."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        match = _CKPT_RE.match(child.name)
        if match and child.is_dir() and (child / COMPLETE_MARKER).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def find_latest_checkpoint(directory: str | Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def latest_intact_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete checkpoint whose files verify; damaged ones are skipped with a warning
    naming the file. None when there is none; CheckpointError when all of them are damaged."""
    found = list_checkpoints(directory)
    problems = []
    for path in reversed(found):
        try:
            verify_checkpoint(path)
            return path
        except CheckpointError as e:
            logger.warning("skipping a damaged checkpoint: %s", e)
            problems.append(str(e))
    if problems:
        raise CheckpointError(f"no intact checkpoint in {directory}: {'; '.join(problems)}")
    return None


def prune_checkpoints(directory: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the `keep_last` newest complete checkpoints; returns the deleted paths."""
    if keep_last < 1:
        raise ValueError(f"keep_last={keep_last} must be >= 1")
    doomed = list_checkpoints(directory)[:-keep_last]
    for path in doomed:
        if path.is_symlink():  # a link to a checkpoint kept elsewhere: drop the link, keep its target
            logger.warning("pruning %s: removing the symbolic link, not the directory it points to", path)
            path.unlink()
        else:
            shutil.rmtree(path)
    return doomed


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    *,
    rank: int = 0,
    restore_rng: bool = True,
    verify: bool = True,
) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and this rank's RNG from `path`; returns trainer_state.

    Load the weights into the unwrapped model (before `accelerator.prepare` or via
    `accelerator.unwrap_model`). A rank beyond the saved ones gets rank 0's RNG state, offset
    by rank, with a warning (the world size changed since the save). `verify` checks every
    file's size and sha256 first (`verify_checkpoint`); pass False when that was just done.
    """
    path = Path(path)
    if verify:
        verify_checkpoint(path)
    else:
        read_marker(path)
    if model is not None:
        _load_weights(path, model)
    if optimizer is not None:
        if not (path / "optimizer.json").is_file():
            raise CheckpointError(f"{path}: holds no optimizer state (saved under DeepSpeed): cannot resume")
        optimizer.load_state_dict(_load_tree(path, "optimizer"))
    if scheduler is not None:
        scheduler.load_state_dict(_load_tree(path, "scheduler"))
    if restore_rng:
        _restore_rank_rng(path, rank)
    return json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))


def _restore_rank_rng(path: Path, rank: int) -> None:
    states = _load_tree(path, "rng")
    if rank < len(states):
        restore_rng_state(states[rank])
        return
    logger.warning("%s holds RNG states for %d ranks; rank %d reseeds from rank 0", path, len(states), rank)
    restore_rng_state(states[0])
    seed = int(torch.randint(0, 2**31 - 1, (1,)).item()) + rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
