"""Decrease-difficulty guidance: reasoning-step hints and the trace bank.

guidance="partial_trace" (default): the first l_guide steps of a reasoning trace, inserted after
the question; it states the answer only if those steps do. guidance="answer_and_traces" (the
earlier paper version): the ground-truth answer plus l_guide whole traces.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from deepvideo_r1.data.reasoning import squash_whitespace

TraceSource = Literal["dataset", "self"]
_SOURCES: tuple[str, ...] = ("dataset", "self")
_LEADING_STEP_MARKER = re.compile(r"^\s*step\s*\d+\s*[:.)]\s*", re.I)


def _numbered_steps(steps: list[str]) -> str:
    """'Step 1: a Step 2: b' (an existing leading 'Step k:' in a step is replaced, not doubled)."""
    cleaned = [squash_whitespace(_LEADING_STEP_MARKER.sub("", step)) for step in steps]
    return " ".join(f"Step {k}: {step}" for k, step in enumerate(cleaned, start=1))


def format_hint(steps: list[str], level: int) -> str:
    """Partial-trace hint: 'Hint: Step 1: … Step 2: …' with the first ``level`` steps (all if fewer)."""
    if level < 1:
        raise ValueError(f"hint level must be >= 1, got {level}")
    kept = [step for step in steps if step.strip()][:level]
    if not kept:
        raise ValueError("cannot format a hint from an empty reasoning trace")
    return f"Hint: {_numbered_steps(kept)}"


def format_answer_and_traces_hint(answer: str, traces: list[list[str]], level: int) -> str:
    """guidance="answer_and_traces": 'Hint: The answer is X. Reasoning 1: Step 1: … Reasoning 2: …'.

    States the ground-truth answer and the first ``level`` whole traces (all if fewer).
    """
    if level < 1:
        raise ValueError(f"hint level must be >= 1, got {level}")
    if not answer.strip():
        raise ValueError("answer_and_traces guidance needs a non-empty ground-truth answer")
    parts = [f"Hint: The answer is {answer.strip()}."]
    usable = [trace for trace in traces if any(step.strip() for step in trace)][:level]
    for k, trace in enumerate(usable, start=1):
        parts.append(f"Reasoning {k}: {_numbered_steps([s for s in trace if s.strip()])}")
    return " ".join(parts)


class HintBank:
    """Reasoning traces per sample id, tagged by source ("dataset" or "self"-generated).

    A dataset trace is never replaced by a self-generated one (the dataset is the preferred
    source); any trace replaces a self-generated one.
    """

    def __init__(self) -> None:
        # id -> (traces, source): the first trace is the preferred one (partial-trace hints use it);
        # answer_and_traces guidance shows up to l_guide of them
        self._entries: dict[str, tuple[list[list[str]], str]] = {}

    @staticmethod
    def _clean(sample_id: str, steps: list[str], source: str) -> list[str]:
        if source not in _SOURCES:
            raise ValueError(f"trace source must be one of {', '.join(_SOURCES)}, got {source!r}")
        cleaned = [squash_whitespace(step) for step in steps if step.strip()]
        if not cleaned:
            raise ValueError(f"sample {sample_id!r}: refusing to store an empty reasoning trace")
        return cleaned

    def add(self, sample_id: str, steps: list[str], source: TraceSource) -> bool:
        """Store ``steps`` as the trace of ``sample_id`` (replacing what it had); returns False if a
        dataset trace was kept instead."""
        cleaned = self._clean(sample_id, steps, source)
        current = self._entries.get(str(sample_id))
        if current is not None and current[1] == "dataset" and source == "self":
            return False
        self._entries[str(sample_id)] = ([cleaned], source)
        return True

    def add_alternative(self, sample_id: str, steps: list[str], source: TraceSource) -> bool:
        """Append a further reasoning path for ``sample_id`` (the first `add`s if it has none);
        returns False when the same steps are stored already."""
        cleaned = self._clean(sample_id, steps, source)
        current = self._entries.get(str(sample_id))
        if current is None:
            return self.add(sample_id, cleaned, source)
        if cleaned in current[0]:
            return False
        current[0].append(cleaned)
        return True

    def get(self, sample_id: str) -> list[str] | None:
        """The first (preferred) stored trace's steps for ``sample_id`` (a copy), or None."""
        entry = self._entries.get(str(sample_id))
        return list(entry[0][0]) if entry is not None else None

    def traces(self, sample_id: str) -> list[list[str]]:
        """Every stored trace of ``sample_id``, the preferred one first (copies; [] when none)."""
        entry = self._entries.get(str(sample_id))
        return [list(t) for t in entry[0]] if entry is not None else []

    def source(self, sample_id: str) -> str | None:
        """ "dataset", "self" or None (the source of the first trace)."""
        entry = self._entries.get(str(sample_id))
        return entry[1] if entry is not None else None

    def __contains__(self, sample_id: object) -> bool:
        return str(sample_id) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable: {"entries": {id: {"steps": [...], "source": ..., "more": [[...], ...]}}}
        ("more": the further traces, only when there are some)."""
        entries = {}
        for sid, (traces, src) in self._entries.items():
            entries[sid] = {"steps": list(traces[0]), "source": src}
            if len(traces) > 1:
                entries[sid]["more"] = [list(t) for t in traces[1:]]
        return {"entries": entries}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the bank's content with a `state_dict`."""
        try:
            entries = {
                str(sid): (
                    [[str(step) for step in t] for t in [e["steps"], *e.get("more", [])]],
                    str(e["source"]),
                )
                for sid, e in state["entries"].items()
            }
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"malformed HintBank state: {e}") from e
        bad = {sid: src for sid, (_, src) in entries.items() if src not in _SOURCES}
        if bad:
            raise ValueError(f"HintBank state has unknown trace sources: {bad}")
        self._entries = entries
