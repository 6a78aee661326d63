"""Synthetic task families: each builds a scene, a templated question, the answer and a reasoning trace.

Every trace has at least MIN_TRACE_STEPS steps: observations (per frame, per row of the frame, or
per object) and then one conclusion, the only step that states the answer. A hint of the first
l_guide steps (difficulty-aware guidance, l_guide <= 3 on the reward scale 0..2) then shows some
of the evidence and leaves the model the rest of it and the conclusion.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepvideo_r1.data.synth.knobs import Knobs
from deepvideo_r1.data.synth.render import ObjectTrack, grid_slots, linear_track, static_track

DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
COUNT_VALUES: tuple[int, ...] = (1, 2, 3, 4)
MAX_OPTIONS = 4
MIN_TRACE_STEPS = 5
OBSERVED_FRAMES = 4  # frames described by the motion traces (first, last and two between)
# Option orders used when SynthConfig.shuffle_options is False.
CANONICAL_ORDERS: tuple[tuple[str, ...], ...] = (
    ("up", "down", "left", "right"),
    tuple(map(str, COUNT_VALUES)),
)


@dataclass
class TaskContext:
    """What a task generator may use: geometry, knobs, its RNG and its answer-balancing slot."""

    rng: np.random.Generator
    frame: int
    num_frames: int
    fps: float
    colours: tuple[str, ...]
    shapes: tuple[str, ...]
    knobs: Knobs
    index: int
    """Position of this sample among its task's samples in the split (drives answer balancing)."""
    balance_seed: int
    shuffle_options: bool = True
    """False: options keep the canonical order given by the task (see SynthConfig)."""

    @property
    def object_px(self) -> int:
        """Object side in pixels: round(object_size * frame), at least 4."""
        return max(4, round(self.knobs.object_size * self.frame))

    def balanced(self, n_values: int, n_slots: int = 1) -> tuple[int, int]:
        """(value, slot) cycling through a seeded permutation of all n_values × n_slots pairs.

        Every value and every option position is hit equally often per full cycle, so answers and
        answer letters are balanced (exactly when the task count is a multiple of the cycle).
        """
        perm = np.random.default_rng(self.balance_seed).permutation(n_values * n_slots)
        return divmod(int(perm[self.index % (n_values * n_slots)]), n_slots)

    def shape(self) -> str:
        """A random shape from the configured ones."""
        return str(self.shapes[int(self.rng.integers(len(self.shapes)))])

    def seconds(self, frame: int) -> float:
        """Time of frame boundary `frame`: frame / fps, rounded to 3 decimals."""
        return round(frame / self.fps, 3)


@dataclass
class TaskOutput:
    """One generated question with its scene."""

    problem_type: str
    question: str
    answer: str
    tracks: list[ObjectTrack]
    reasoning: list[str]
    options: list[str] = field(default_factory=list)
    timestamps: list[tuple[float, float]] | None = None
    params: dict[str, Any] = field(default_factory=dict)


TaskFn = Callable[[TaskContext], TaskOutput]
TASKS: dict[str, TaskFn] = {}


def register_task(name: str) -> Callable[[TaskFn], TaskFn]:
    """Decorator adding a generator to TASKS under `name`."""

    def wrap(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn

    return wrap


def place_options(ctx: TaskContext, answer: str, others: list[str], slot: int) -> tuple[list[str], str]:
    """Options: the answer at position `slot`, `others` around it in seeded order → (options, letter).

    Without shuffling, `others` must be in canonical order and the answer takes its canonical place.
    """
    if not ctx.shuffle_options:
        canonical = _canonical_order(answer, others)
        return canonical, string.ascii_uppercase[canonical.index(answer)]
    rest = [others[i] for i in ctx.rng.permutation(len(others))]
    options = [*rest[:slot], answer, *rest[slot:]]
    return options, string.ascii_uppercase[slot]


def _canonical_order(answer: str, others: list[str]) -> list[str]:
    """Answer and others in the order of the CANONICAL_ORDERS list that holds the answer."""
    order = next(o for o in CANONICAL_ORDERS if answer in o)
    return [o for o in order if o == answer or o in others]


def colour_options(ctx: TaskContext, answer: str, present: list[str], slot: int) -> tuple[list[str], str]:
    """Colour options: the answer, the other colours in the scene, then palette colours up to 4."""
    k = min(MAX_OPTIONS, len(ctx.colours))
    if not ctx.shuffle_options:
        chosen = list(ctx.colours[:k]) if answer in ctx.colours[:k] else [*ctx.colours[: k - 1], answer]
        return chosen, string.ascii_uppercase[chosen.index(answer)]
    others = [c for c in present if c != answer]
    spare = [c for c in ctx.colours if c != answer and c not in others]
    spare = [spare[i] for i in ctx.rng.permutation(len(spare))]
    return place_options(ctx, answer, (others + spare)[: k - 1], min(slot, k - 1))


def _other_colours(ctx: TaskContext, exclude: str, count: int, distinct: bool) -> list[str]:
    pool = [c for c in ctx.colours if c != exclude]
    if distinct:
        return [pool[i] for i in ctx.rng.permutation(len(pool))[:count]]
    return [pool[int(i)] for i in ctx.rng.integers(len(pool), size=count)]


def _moving_track(ctx: TaskContext, colour: str, shape: str, direction: str, speed: float) -> ObjectTrack:
    """Constant-velocity track covering speed × (frame - size) pixels in `direction`, inside the frame."""
    s = ctx.object_px
    free = ctx.frame - s
    travel = speed * free
    along = ctx.rng.uniform(0.0, free - travel)
    across = ctx.rng.uniform(0.0, free)
    dx, dy = DIRECTIONS[direction]
    a0, a1 = (along, along + travel) if (dx + dy) > 0 else (along + travel, along)
    start, end = ((a0, across), (a1, across)) if dx != 0 else ((across, a0), (across, a1))
    return linear_track(colour, shape, s, start, end, ctx.num_frames)


def observed_frames(num_frames: int, k: int = OBSERVED_FRAMES) -> list[int]:
    """k frame indices spread evenly from the first to the last: round(i·(F-1)/(k-1))."""
    return sorted({round(i * (num_frames - 1) / (k - 1)) for i in range(k)})


def _centre(track: ObjectTrack, frame: int) -> tuple[int, int]:
    x, y = track.pos(frame)
    return x + track.size // 2, y + track.size // 2


def _side(ctx: TaskContext, track: ObjectTrack, frame: int, direction: str) -> str:
    """Coarse position along the motion axis at `frame`: 'near the left' … 'in the middle'."""
    cx, cy = _centre(track, frame)
    horizontal = direction in ("left", "right")
    pos, low, high = (cx, "left", "right") if horizontal else (cy, "top", "bottom")
    third = min(2, 3 * pos // ctx.frame)
    return ("near the " + low, "in the middle", "near the " + high)[third]


def _region(ctx: TaskContext, track: ObjectTrack) -> str:
    """Where the centre lies on a 3×3 grid: 'top left' … 'bottom right' ('middle' for the centre)."""
    cx, cy = _centre(track, track.first)
    col = ("left", "centre", "right")[min(2, 3 * cx // ctx.frame)]
    row = ("top", "middle", "bottom")[min(2, 3 * cy // ctx.frame)]
    return "middle" if (row, col) == ("middle", "centre") else f"{row} {col}"


@register_task("direction")
def direction_task(ctx: TaskContext) -> TaskOutput:
    """Which way does the target move? Distractors of other colours move in random directions."""
    names = list(DIRECTIONS)
    value, slot = ctx.balanced(len(names), len(names))
    answer = names[value]
    colour, shape = str(ctx.colours[int(ctx.rng.integers(len(ctx.colours)))]), ctx.shape()
    tracks = [
        _moving_track(ctx, c, ctx.shape(), names[int(ctx.rng.integers(4))], ctx.knobs.speed)
        for c in _other_colours(ctx, colour, ctx.knobs.num_distractors, distinct=False)
    ]
    target = _moving_track(ctx, colour, shape, answer, ctx.knobs.speed)
    tracks.append(target)  # drawn last: never hidden by a distractor
    options, letter = place_options(ctx, answer, [d for d in names if d != answer], slot)
    reasoning = [
        f"{ctx.seconds(f):g} s: {_side(ctx, target, f, answer)}." for f in observed_frames(ctx.num_frames)
    ]
    reasoning.append(f"So it moves {answer}.")
    question = f"In which direction does the {colour} {shape} move?"
    params = {"direction": answer, "target": colour}
    return TaskOutput("multiple_choice", question, letter, tracks, reasoning, options, params=params)


def _count_scene(ctx: TaskContext, count: int) -> tuple[str, list[ObjectTrack], list[str]]:
    """Static scene with `count` objects of one colour plus distractors of other colours, none touching."""
    colour = str(ctx.colours[int(ctx.rng.integers(len(ctx.colours)))])
    colours = [colour] * count + _other_colours(ctx, colour, ctx.knobs.num_distractors, distinct=False)
    side, corners = grid_slots(ctx.rng, len(colours), ctx.frame, ctx.object_px)
    tracks = [
        static_track(c, ctx.shape(), side, xy, ctx.num_frames) for c, xy in zip(colours, corners, strict=True)
    ]
    rows = [_region(ctx, t).split(" ")[0] for t in tracks if t.colour == colour]
    per_row = [rows.count(r) for r in ("top", "middle", "bottom")]  # "middle" alone = the centre cell
    reasoning = [f"{name} row: {k}." for name, k in zip(("Top", "Middle", "Bottom"), per_row, strict=True)]
    reasoning.append(f"That makes {' + '.join(map(str, per_row))}.")
    reasoning.append(f"So there {'is' if count == 1 else 'are'} {count}.")
    return colour, tracks, reasoning


@register_task("count")
def count_task(ctx: TaskContext) -> TaskOutput:
    """How many objects of a colour (multiple choice over 1..4)?"""
    value, slot = ctx.balanced(len(COUNT_VALUES), len(COUNT_VALUES))
    count = COUNT_VALUES[value]
    colour, tracks, reasoning = _count_scene(ctx, count)
    others = [str(v) for v in COUNT_VALUES if v != count]
    options, letter = place_options(ctx, str(count), others, slot)
    question = f"How many {colour} objects are in the video?"
    params = {"count": count, "target": colour}
    return TaskOutput("multiple_choice", question, letter, tracks, reasoning, options, params=params)


@register_task("count_number")
def count_number_task(ctx: TaskContext) -> TaskOutput:
    """How many objects of a colour (numerical answer)?"""
    count = COUNT_VALUES[ctx.balanced(len(COUNT_VALUES))[0]]
    colour, tracks, reasoning = _count_scene(ctx, count)
    question = f"How many {colour} objects are in the video? Answer with a number."
    params = {"count": count, "target": colour}
    return TaskOutput("numerical", question, str(count), tracks, reasoning, params=params)


@register_task("first_colour")
def first_colour_task(ctx: TaskContext) -> TaskOutput:
    """Which colour appears first? Objects appear one by one (distinct frames) and then stay."""
    k = min(MAX_OPTIONS, len(ctx.colours))
    value, slot = ctx.balanced(len(ctx.colours), k)
    answer = ctx.colours[value]
    f0 = int(ctx.rng.integers(0, ctx.num_frames // 2))
    later_count = min(1 + ctx.knobs.num_distractors, len(ctx.colours) - 1, ctx.num_frames - 1 - f0)
    later = sorted(
        int(f) for f in ctx.rng.choice(np.arange(f0 + 1, ctx.num_frames), later_count, replace=False)
    )
    colours = [answer, *_other_colours(ctx, answer, later_count, distinct=True)]
    side, corners = grid_slots(ctx.rng, len(colours), ctx.frame, ctx.object_px)
    tracks = [
        static_track(c, ctx.shape(), side, xy, ctx.num_frames, first=f)
        for c, xy, f in zip(colours, corners, [f0, *later], strict=True)
    ]
    options, letter = colour_options(ctx, answer, colours, slot)
    by_palette = sorted(tracks, key=lambda t: ctx.colours.index(t.colour))  # not in time order
    reasoning = ["I check when each appears."]
    reasoning += [f"{t.colour.capitalize()}: {ctx.seconds(t.first):g} s." for t in by_palette]
    reasoning.append(f"Earliest: {ctx.seconds(f0):g} s.")
    reasoning.append(f"So {answer} appears first.")
    params = {"appear_frames": {t.colour: t.first for t in tracks}}
    question = "Which colour appears first?"
    return TaskOutput("multiple_choice", question, letter, tracks, reasoning, options, params=params)


@register_task("appear_when")
def appear_when_task(ctx: TaskContext) -> TaskOutput:
    """When is the target visible? Temporal grounding: visible on frames [k, j-1] → [k/fps, j/fps] s."""
    k = 1 + ctx.balanced(ctx.num_frames - 2)[0]  # start frame in 1..F-2, balanced
    j = int(ctx.rng.integers(k + 1, ctx.num_frames, endpoint=True))  # end boundary in k+1..F
    colour = str(ctx.colours[int(ctx.rng.integers(len(ctx.colours)))])
    colours = [colour, *_other_colours(ctx, colour, ctx.knobs.num_distractors, distinct=False)]
    side, corners = grid_slots(ctx.rng, len(colours), ctx.frame, ctx.object_px)
    tracks = [
        static_track(c, ctx.shape(), side, xy, ctx.num_frames) for c, xy in zip(colours, corners, strict=True)
    ]
    target = static_track(colour, tracks[0].shape, side, corners[0], ctx.num_frames, first=k, last=j - 1)
    tracks[0] = target
    start, end = ctx.seconds(k), ctx.seconds(j)
    gone = f"{end:g} s: gone." if j < ctx.num_frames else f"{end:g} s: end of clip."
    reasoning = [
        f"{ctx.seconds(k - 1):g} s: not there.",
        f"{start:g} s: there.",
        f"{ctx.seconds(j - 1):g} s: still there.",
        gone,
        f"So from {start:g} s to {end:g} s.",
    ]
    question = f"When is the {colour} {target.shape} visible? Give the start and end time in seconds."
    params = {"target": colour, "frames": [k, j - 1]}
    return TaskOutput(
        "temporal_grounding", question, "", tracks, reasoning, timestamps=[(start, end)], params=params
    )


@register_task("which_moves")
def which_moves_task(ctx: TaskContext) -> TaskOutput:
    """Which colour moves? All objects but one stay still; one frame alone cannot tell."""
    k = min(MAX_OPTIONS, len(ctx.colours))
    value, slot = ctx.balanced(len(ctx.colours), k)
    answer = ctx.colours[value]
    statics = _other_colours(ctx, answer, min(1 + ctx.knobs.num_distractors, len(ctx.colours) - 1), True)
    side, corners = grid_slots(ctx.rng, len(statics), ctx.frame, ctx.object_px)
    tracks = [
        static_track(c, ctx.shape(), side, xy, ctx.num_frames) for c, xy in zip(statics, corners, strict=True)
    ]
    direction = list(DIRECTIONS)[int(ctx.rng.integers(4))]
    mover = _moving_track(ctx, answer, ctx.shape(), direction, ctx.knobs.speed)
    tracks.append(mover)  # drawn last so the moving colour is always visible
    options, letter = colour_options(ctx, answer, [answer, *statics], slot)
    reasoning = ["I compare first and last frame."]
    for t in sorted(tracks, key=lambda t: ctx.colours.index(t.colour)):  # not mover last
        reasoning.append(f"{t.colour.capitalize()}: {'moves ' + direction if t is mover else 'stays'}.")
    reasoning.append("One object moves.")
    reasoning.append(f"So the {answer} object moves.")
    params = {"target": answer, "direction": direction}
    question = "Which colour is the object that moves?"
    return TaskOutput("multiple_choice", question, letter, tracks, reasoning, options, params=params)
