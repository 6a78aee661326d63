"""Self-generated reasoning traces for guidance when the dataset has none.

The policy is told the ground-truth answer and asked to reason; of k samples every one that earns
accuracy is kept, best reward (format + accuracy) first, its <think> part split into steps and cached
in the HintBank under the sample id (source "self"; the first is the preferred trace, the others
further reasoning paths for answer_and_traces guidance), so each sample costs one extra rollout at
most once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from deepvideo_r1.data.prompts import format_answer
from deepvideo_r1.data.reasoning import split_reasoning_steps
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.difficulty.guidance import HintBank
from deepvideo_r1.models.adapter import ModelAdapter
from deepvideo_r1.models.media import SampleMedia, encode_sample
from deepvideo_r1.rewards import compute_rewards, extract_answer
from deepvideo_r1.rollout import RolloutEngine

logger = logging.getLogger(__name__)


def answer_conditioned_hint(sample: Sample) -> str | None:
    """The prompt addition that tells the policy the answer (None when the sample has none)."""
    answer = format_answer(sample)
    if not answer:
        return None
    return f"The correct answer is {answer}. Explain step by step how the video shows this."


def generate_self_traces(
    samples: Sequence[Sample],
    media: Callable[[Sample], SampleMedia],
    adapter: ModelAdapter,
    engine: RolloutEngine,
    hints: HintBank,
    k: int,
    seed: int,
) -> int:
    """Fill `hints` for samples without a trace; returns how many traces were added.

    A sample gets no trace when none of its k completions both earns accuracy and has reasoning
    steps; it is then retried the next time guidance is needed for it.
    """
    todo = [s for s in samples if s.id not in hints and answer_conditioned_hint(s) is not None]
    if not todo or k < 1:
        return 0
    prompts = [encode_sample(adapter, s, media(s), hint=answer_conditioned_hint(s)) for s in todo]
    out = engine.generate(adapter.collate(prompts), max(k, 2), seed=seed)
    group = out.group_size
    repeated = [s for s in todo for _ in range(group)]
    scores = compute_rewards(out.texts, repeated)
    accuracy = scores.components.get("accuracy")
    added = 0
    for n, sample in enumerate(todo):
        # every completion that earns accuracy and has steps, the best first: several paths for
        # answer_and_traces guidance (partial-trace hints use the first)
        rows = sorted(range(n * group, (n + 1) * group), key=lambda r: -float(scores.total[r]))
        right = [r for r in rows if accuracy is None or float(accuracy[r]) > 0]
        good = [r for r in right if extract_answer(out.texts[r])]
        paths = [steps for r in good if (steps := split_reasoning_steps(out.texts[r]))]
        if paths:
            added += int(hints.add(sample.id, paths[0], "self"))
            for steps in paths[1:]:
                hints.add_alternative(sample.id, steps, "self")
    logger.info("self-generated reasoning traces: %d of %d samples", added, len(todo))
    return added
