"""The one internal sample record every adapter produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

ProblemType = Literal[
    "multiple_choice",
    "numerical",
    "ocr",
    "free_form",
    "regression",
    "temporal_grounding",
    "grounded_qa",
]
PROBLEM_TYPES: tuple[str, ...] = get_args(ProblemType)


@dataclass(frozen=True)
class VideoRef:
    """A video file, optionally cut to [start, end] seconds. `path` is absolute once resolved."""

    path: str
    start: float | None = None
    end: float | None = None


@dataclass
class Sample:
    """One question about zero or more videos and images.

    `answer` is the option letter for multiple_choice and grounded_qa, the number as text for
    numerical/regression, the reference text for ocr/free_form, and "" for temporal_grounding
    (whose target is `timestamps`). `timestamps` holds ground-truth [start, end] segments in
    seconds (temporal_grounding, grounded_qa). `reasoning` is an optional list of reasoning steps
    (a hint source for difficulty-aware guidance and the SFT target).
    """

    id: str
    question: str
    problem_type: str
    answer: str = ""
    options: list[str] = field(default_factory=list)
    videos: list[VideoRef] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    timestamps: list[tuple[float, float]] | None = None
    reasoning: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        """Whether there is a gold label to score against: an answer, or spans for temporal_grounding."""
        return bool(self.answer) or (self.problem_type == "temporal_grounding" and bool(self.timestamps))

    def to_json(self) -> dict[str, Any]:
        """The normalised JSON form (the keys `inspect-data --json` prints, plus reasoning/metadata)."""
        return {
            "id": self.id,
            "problem_type": self.problem_type,
            "question": self.question,
            "options": list(self.options),
            "answer": self.answer,
            "videos": [{"path": v.path, "start": v.start, "end": v.end} for v in self.videos],
            "images": list(self.images),
            "timestamps": [list(seg) for seg in self.timestamps] if self.timestamps is not None else None,
            "reasoning": list(self.reasoning) if self.reasoning is not None else None,
            "metadata": dict(self.metadata),
        }
