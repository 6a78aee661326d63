"""Difficulty-aware augmentation decisions (DeepVideo-R1).

The controller keeps the mean rewards of the last W samples (or steps) and compares each new
group against them:

    r_cur = mean_i R_{n,i}
    r_ref = mean(buffer)        (empty buffer: r_ref = r_cur; reference="absolute": r_ref = threshold)
    dR    = r_ref - r_cur       (compare first, then push r_cur)
    dR > 0 -> "decrease" difficulty (guidance hint), level l_guide   = floor(|dR| + 0.5) + 1  (int)
    dR < 0 -> "increase" difficulty (frame noise),   level l_perturb = |dR| + 1               (float)
    dR = 0 -> "none", level 0

l_guide rounds half up (floor(x + 0.5)), not Python's banker's round(), so |dR| = 0.5 gives 2.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from torch import Tensor

logger = logging.getLogger(__name__)

DecisionKind = Literal["increase", "decrease", "none"]
_KINDS: tuple[str, ...] = get_args(DecisionKind)
# The controller's options; the run configuration (DifficultyConfig) uses these same types.
Reference = Literal["relative", "absolute"]
Levels = Literal["adaptive", "fixed"]
Kinds = Literal["both", "increase", "decrease", "none"]
Trigger = Literal["all", "vanishing"]
Timing = Literal["same_step", "next_visit"]
WindowUnit = Literal["samples", "steps"]
OPTIONS: dict[str, tuple[str, ...]] = {
    "reference": get_args(Reference),
    "levels": get_args(Levels),
    "kinds": get_args(Kinds),
    "trigger": get_args(Trigger),
    "timing": get_args(Timing),
    "window_unit": get_args(WindowUnit),
}


@dataclass(frozen=True)
class DifficultyDecision:
    """What to do with one group: kind, dR = r_ref - r_cur, and the level (l_guide or l_perturb)."""

    kind: DecisionKind
    delta: float
    level: float
    r_ref: float
    r_cur: float
    vanishing: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DifficultyDecision:
        """Inverse of `to_dict` (l_guide stays an int)."""
        return cls(**data)


def _as_floats(group_rewards: Sequence[float] | Tensor) -> list[float]:
    if isinstance(group_rewards, Tensor):
        values = [float(v) for v in group_rewards.detach().reshape(-1).tolist()]
    else:
        values = [float(v) for v in group_rewards]
    if not values:
        raise ValueError("group_rewards is empty: a group needs at least one reward")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"group_rewards must be finite, got {values}")
    return values


class DifficultyController:
    """Decide per group whether to add guidance ("decrease"), noise ("increase") or nothing.

    Args:
        window: W, how many recent sample means (or step means) form the reference.
        reference: "relative" (r_ref = buffer mean) or "absolute" (r_ref = threshold).
        threshold: the fixed r_ref for reference="absolute".
        levels: "adaptive" (levels from |dR|) or "fixed" (always fixed_level).
        fixed_level: l_guide when levels="fixed".
        fixed_perturb_level: l_perturb when levels="fixed" (None: fixed_level).
        kinds: which augmentations are allowed: "both", "increase", "decrease" or "none".
        trigger: "all" groups, or only "vanishing" groups (all rewards equal) may be augmented.
        timing: "same_step" (the trainer re-rolls now) or "next_visit" (decisions are deferred per
            sample id and applied the next time that sample is drawn).
        window_unit: "samples" (push r_cur after each assess) or "steps" (push the step's mean
            reward in `end_step`).
    """

    def __init__(
        self,
        window: int = 100,
        reference: Reference = "relative",
        threshold: float = 1.0,
        levels: Levels = "adaptive",
        fixed_level: int = 1,
        fixed_perturb_level: float | None = None,
        kinds: Kinds = "both",
        trigger: Trigger = "all",
        timing: Timing = "same_step",
        window_unit: WindowUnit = "samples",
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if fixed_level < 1:
            raise ValueError(f"fixed_level must be >= 1, got {fixed_level}")
        perturb = float(fixed_level if fixed_perturb_level is None else fixed_perturb_level)
        if perturb <= 0:
            raise ValueError(f"fixed_perturb_level must be > 0, got {fixed_perturb_level}")
        self.options: dict[str, Any] = {
            "window": int(window), "reference": reference, "threshold": float(threshold),
            "levels": levels, "fixed_level": int(fixed_level), "fixed_perturb_level": perturb,
            "kinds": kinds, "trigger": trigger,
            "timing": timing, "window_unit": window_unit,
        }  # fmt: skip
        for name, allowed in OPTIONS.items():
            if self.options[name] not in allowed:
                raise ValueError(f"{name}={self.options[name]!r} is not one of {', '.join(allowed)}")
        self.buffer: deque[float] = deque(maxlen=int(window))
        self._step_means: list[float] = []
        self.pending: dict[str, DifficultyDecision] = {}
        self.counts: dict[str, int] = dict.fromkeys(_KINDS, 0)

    def reference_reward(self, r_cur: float) -> float:
        """r_ref for a group whose mean reward is r_cur."""
        if self.options["reference"] == "absolute":
            return self.options["threshold"]
        return sum(self.buffer) / len(self.buffer) if self.buffer else r_cur

    def _allowed(self, kind: str, vanishing: bool) -> bool:
        """Apply the kinds filter and the vanishing trigger to a raw kind."""
        if kind == "none":
            return True
        if self.options["trigger"] == "vanishing" and not vanishing:
            return False
        return self.options["kinds"] in ("both", kind)

    def _level(self, kind: str, delta: float) -> float:
        """l_guide = floor(|dR| + 0.5) + 1 (int), l_perturb = |dR| + 1 (float), 0 for none."""
        if kind == "none":
            return 0
        if self.options["levels"] == "fixed":
            if kind == "decrease":
                return int(self.options["fixed_level"])
            return float(self.options["fixed_perturb_level"])
        if kind == "decrease":
            return math.floor(abs(delta) + 0.5) + 1
        return abs(delta) + 1.0

    def assess(
        self, group_rewards: Sequence[float] | Tensor, sample_id: str | None = None
    ) -> DifficultyDecision:
        """Compare the group's mean reward with r_ref, then push it; return the decision.

        With timing="next_visit" and a sample_id, an augmenting decision is also deferred
        (see `pop_pending`).
        """
        rewards = _as_floats(group_rewards)
        r_cur = sum(rewards) / len(rewards)
        vanishing = max(rewards) == min(rewards)
        r_ref = self.reference_reward(r_cur)
        delta = r_ref - r_cur
        raw = "decrease" if delta > 0 else "increase" if delta < 0 else "none"
        kind = raw if self._allowed(raw, vanishing) else "none"
        decision = DifficultyDecision(kind, delta, self._level(kind, delta), r_ref, r_cur, vanishing)
        if self.options["window_unit"] == "samples":
            self.buffer.append(r_cur)
        else:
            self._step_means.append(r_cur)
        self.counts[kind] += 1
        if self.options["timing"] == "next_visit" and sample_id is not None and kind != "none":
            self.defer(sample_id, decision)
        return decision

    def end_step(self) -> None:
        """window_unit="steps": push the mean reward of this step's groups; no-op for "samples"."""
        if self._step_means:
            self.buffer.append(sum(self._step_means) / len(self._step_means))
        self._step_means = []

    def defer(self, sample_id: str, decision: DifficultyDecision) -> None:
        """Store a decision to apply the next time `sample_id` is drawn (replaces an older one)."""
        self.pending[str(sample_id)] = decision

    def pop_pending(self, sample_id: str) -> DifficultyDecision | None:
        """Return and remove the deferred decision for `sample_id`, or None."""
        return self.pending.pop(str(sample_id), None)

    def metrics(self, reset: bool = True) -> dict[str, float]:
        """difficulty/{increase,decrease,none} counts since the last reset, r_ref, buffer size."""
        out = {f"difficulty/{kind}": float(count) for kind, count in self.counts.items()}
        out["difficulty/r_ref"] = sum(self.buffer) / len(self.buffer) if self.buffer else 0.0
        out["difficulty/buffer_len"] = float(len(self.buffer))
        out["difficulty/pending"] = float(len(self.pending))
        if reset:
            self.counts = dict.fromkeys(_KINDS, 0)
        return out

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: options, buffer, the open step, pending decisions, counts."""
        return {
            "options": dict(self.options),
            "buffer": list(self.buffer),
            "step_means": list(self._step_means),
            "pending": {sid: d.to_dict() for sid, d in self.pending.items()},
            "counts": dict(self.counts),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`. This controller's options win; a changed option is logged."""
        changed = {k: v for k, v in state.get("options", {}).items() if self.options.get(k) != v}
        if changed:
            logger.warning("difficulty controller options differ from the checkpoint: %s", changed)
        try:
            self.buffer = deque((float(v) for v in state["buffer"]), maxlen=self.options["window"])
            self._step_means = [float(v) for v in state.get("step_means", [])]
            self.pending = {sid: DifficultyDecision.from_dict(d) for sid, d in state["pending"].items()}
            self.counts = {k: int(state.get("counts", {}).get(k, 0)) for k in _KINDS}
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed DifficultyController state: {e}") from e
