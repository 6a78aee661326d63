"""Reward registry and batch scoring: total = Σ_k weight_k · reward_k.

A reward function is `fn(completion: str, sample: Sample) -> float`, registered by name with
`@register_reward(name)`. A name may also be `"path/to/file.py:function"`: that file is imported
with importlib — it *executes the file*, which is the user's own code they chose to run — and its
`function` is used with the same signature. Built-ins: "format" and "accuracy".
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from deepvideo_r1.rewards.accuracy import accuracy_reward
from deepvideo_r1.rewards.errors import RewardError
from deepvideo_r1.rewards.parsing import format_reward

if TYPE_CHECKING:  # rewards sit below data: a Sample is only read here (data imports the scorer)
    from deepvideo_r1.data.sample import Sample

RewardFn = Callable[[str, "Sample"], float]
REWARD_FUNCTIONS: dict[str, RewardFn] = {}
DEFAULT_WEIGHTS: Mapping[str, float] = {"format": 1.0, "accuracy": 1.0}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: register `fn(completion, sample) -> float` under `name` (names are unique)."""

    def decorate(fn: RewardFn) -> RewardFn:
        if name in REWARD_FUNCTIONS:
            raise RewardError(f"reward {name!r} is already registered")
        if ":" in name:
            raise RewardError(f"reward name {name!r} may not contain ':' (reserved for file.py:function)")
        REWARD_FUNCTIONS[name] = fn
        return fn

    return decorate


@register_reward("format")
def _format(completion: str, sample: Sample) -> float:
    """1 if the completion is `<think>…</think><answer>…</answer>`, else 0."""
    return format_reward(completion)


@register_reward("accuracy")
def _accuracy(completion: str, sample: Sample) -> float:
    """`accuracy_reward` dispatched on sample.problem_type with its answer, options and spans."""
    return accuracy_reward(
        completion,
        sample.answer,
        sample.problem_type,
        sample.options or None,
        segments=sample.timestamps,
    )


def _split_file_ref(name: str) -> tuple[Path, str] | None:
    """ "dir/my_rewards.py:length_bonus" → (Path, "length_bonus"); None if not a file reference."""
    path, sep, func = name.rpartition(":")
    if not sep or not path.endswith(".py"):
        return None
    return Path(path), func


def load_reward_from_file(path: str | Path, function: str) -> RewardFn:
    """Import `path` (executing it) and return its callable `function`.

    Cached per (file, modification time, function): scoring every step does not re-run the file,
    and editing the file reloads it.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise RewardError(f"reward file {path} does not exist")
    return _load_cached(path, path.stat().st_mtime_ns, function)


@functools.lru_cache(maxsize=32)
def _load_cached(path: Path, mtime_ns: int, function: str) -> RewardFn:
    module_name = f"deepvideo_r1_user_reward_{abs(hash((str(path), mtime_ns)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise RewardError(f"cannot import reward file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # so dataclasses/pickling inside the user file work
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(module_name, None)
        raise RewardError(f"importing reward file {path} failed: {e}") from e
    fn = getattr(module, function, None)
    if not callable(fn):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise RewardError(f"{path} has no function {function!r}; callables there: {', '.join(names)}")
    return fn


def reward_name_problem(name: str) -> str | None:
    """Why `name` names no reward (None if it is registered or has the "file.py:function" form);
    checks the name only: the file is imported when the reward is first used."""
    if name in REWARD_FUNCTIONS or _split_file_ref(name) is not None:
        return None
    return (
        f"unknown reward {name!r}; known: {', '.join(sorted(REWARD_FUNCTIONS))} "
        "(or give 'path/to/file.py:function')"
    )


def get_reward(name: str) -> RewardFn:
    """A registered reward by name, or a user reward given as "path/to/file.py:function"."""
    if name in REWARD_FUNCTIONS:
        return REWARD_FUNCTIONS[name]
    ref = _split_file_ref(name)
    if ref is not None:
        return load_reward_from_file(*ref)
    raise RewardError(reward_name_problem(name))


@dataclass
class RewardBreakdown:
    """Rewards of B completions: `total` [B] float32 = Σ weight·component; `components` name → [B]."""

    total: torch.Tensor
    components: dict[str, torch.Tensor]

    def metrics(self) -> dict[str, torch.Tensor]:
        """Batch means as `reward/<name>` and `reward/total` (0-dim tensors)."""
        out = {f"reward/{name}": values.mean() for name, values in self.components.items()}
        out["reward/total"] = self.total.mean()
        return out


def _score_all(
    name: str, fn: RewardFn, completions: Sequence[str], samples: Sequence[Sample]
) -> torch.Tensor:
    """One reward over the batch → [B] float32; a non-finite value names the sample."""
    values = []
    for completion, sample in zip(completions, samples, strict=True):
        value = float(fn(completion, sample))
        if not math.isfinite(value):
            raise RewardError(f"reward {name!r} returned {value} for sample {sample.id!r}")
        values.append(value)
    return torch.tensor(values, dtype=torch.float32)


def compute_rewards(
    completions: Sequence[str],
    samples: Sequence[Sample],
    weights: Mapping[str, float] | None = None,
) -> RewardBreakdown:
    """Score completion b against samples[b] with every weighted reward (default format + accuracy).

    completions, samples: length B (a sample repeats G times for its group).
    total[b] = Σ_name weights[name] · components[name][b]  (max 2.0 with the defaults).
    """
    if len(completions) != len(samples):
        raise RewardError(f"{len(completions)} completions but {len(samples)} samples")
    weights = DEFAULT_WEIGHTS if weights is None else weights
    if not weights:
        raise RewardError("weights is empty: name at least one reward")
    fns = {name: get_reward(name) for name in weights}  # resolve all first: fail before scoring
    components = {name: _score_all(name, fn, completions, samples) for name, fn in fns.items()}
    total = torch.zeros(len(completions), dtype=torch.float32)
    for name, values in components.items():
        total += float(weights[name]) * values
    return RewardBreakdown(total=total, components=components)
