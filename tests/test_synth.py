"""Synthetic dataset: files, schema, and every answer checked against the decoded pixels."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import av
import numpy as np
import pytest

from deepvideo_r1.data.synth import generate_synthetic_dataset
from deepvideo_r1.data.synth.config import COLOURS, SynthConfig
from deepvideo_r1.data.synth.tasks import MIN_TRACE_STEPS, TASKS

KEYS = [
    "id",
    "problem_type",
    "question",
    "options",
    "answer",
    "videos",
    "images",
    "timestamps",
    "reasoning",
    "metadata",
]


def decode(path: Path) -> np.ndarray:
    """All frames of an mp4 as uint8 [F, H, W, 3] RGB."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def colour_mask(frames: np.ndarray, colour: str) -> np.ndarray:
    """[F, H, W] bool: pixels within RGB distance 90 of the palette colour (others are >= 255 away)."""
    diff = frames.astype(np.int32) - np.array(COLOURS[colour], dtype=np.int32)
    return (diff**2).sum(axis=-1) < 90**2


def components(mask: np.ndarray, min_size: int = 4) -> int:
    """Number of 4-connected components of a [H, W] mask with at least `min_size` pixels."""
    seen = np.zeros_like(mask)
    count = 0
    for y, x in zip(*np.nonzero(mask), strict=True):
        if seen[y, x]:
            continue
        seen[y, x] = True
        queue, size = deque([(y, x)]), 0
        while queue:
            cy, cx = queue.popleft()
            size += 1
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        count += size >= min_size
    return count


def answer_text(rec: dict) -> str:
    return rec["options"][ord(rec["answer"]) - ord("A")]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[dict]]:
    """48 samples: 6 tasks × 8, difficulties cycling easy/medium/hard (noise, distractors, small objects)."""
    out = tmp_path_factory.mktemp("synth")
    config = SynthConfig(n=48, n_eval=12, seed=3, tasks=tuple(TASKS), difficulty="mixed")
    generate_synthetic_dataset(out, config)
    records = [json.loads(line) for name in ("train", "eval") for line in (out / f"{name}.jsonl").open()]
    return out, records


def by_task(records: list[dict], task: str) -> list[dict]:
    picked = [r for r in records if r["metadata"]["task"] == task]
    assert picked, task
    return picked


def test_schema_and_videos(dataset) -> None:
    out, records = dataset
    assert len(records) == 48
    assert {r["metadata"]["difficulty"] for r in records} == {"easy", "medium", "hard"}
    for rec in records:
        assert list(rec) == KEYS
        assert len(rec["reasoning"]) >= MIN_TRACE_STEPS
        assert not Path(rec["videos"][0]["path"]).is_absolute()
        frames = decode(out / rec["videos"][0]["path"])
        assert frames.shape == (8, 56, 56, 3)
        if rec["problem_type"] == "multiple_choice":
            assert len(rec["options"]) == 4 and len(set(rec["options"])) == 4
            assert rec["answer"] in "ABCD" and rec["timestamps"] is None
        elif rec["problem_type"] == "temporal_grounding":
            assert rec["answer"] == "" and len(rec["timestamps"]) == 1
        else:
            assert rec["problem_type"] == "numerical" and rec["answer"] in {"1", "2", "3", "4"}


def centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def _answer_text(rec: dict) -> str:
    """What the conclusion must state: the option text, the number, or 'a s to b s'."""
    if rec["problem_type"] == "multiple_choice":
        return rec["options"]["ABCD".index(rec["answer"])]
    if rec["problem_type"] == "temporal_grounding":
        start, end = rec["timestamps"][0]
        return f"{start:g} s to {end:g} s"
    return rec["answer"]


def test_traces_conclude_only_in_the_last_step(dataset) -> None:
    """Observations first, then one conclusion ("So ...") that states the answer, so a hint of
    l_guide <= 3 steps never contains the conclusion."""
    _, records = dataset
    for rec in records:
        *observations, conclusion = rec["reasoning"]
        assert len(observations) >= MIN_TRACE_STEPS - 1
        assert conclusion.startswith("So ") and not any(s.startswith("So ") for s in observations)
        assert _answer_text(rec) in conclusion, (rec["metadata"]["task"], rec["reasoning"])


def test_direction_matches_pixels(dataset) -> None:
    out, records = dataset
    step = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
    for rec in by_task(records, "direction"):
        mask = colour_mask(decode(out / rec["videos"][0]["path"]), rec["metadata"]["params"]["target"])
        moved = centroid(mask[-1]) - centroid(mask[0])  # (dx, dy) in pixels, y grows downwards
        sx, sy = step[answer_text(rec)]
        axis = 0 if sx else 1
        # hard: 0.35 × (56 - 11) ≈ 15.8 px over the clip, so at least 10 px along the answered axis.
        assert moved[axis] * (sx + sy) > 10, (rec["id"], moved)
        assert abs(moved[1 - axis]) < 2, (rec["id"], moved)


def test_count_matches_components(dataset) -> None:
    out, records = dataset
    for rec in by_task(records, "count") + by_task(records, "count_number"):
        frames = decode(out / rec["videos"][0]["path"])
        target = rec["metadata"]["params"]["target"]
        truth = answer_text(rec) if rec["problem_type"] == "multiple_choice" else rec["answer"]
        assert components(colour_mask(frames, target)[0]) == int(truth), rec["id"]


def first_frame(mask: np.ndarray, min_pixels: int = 10) -> float:
    present = np.nonzero(mask.sum(axis=(1, 2)) >= min_pixels)[0]
    return float(present[0]) if len(present) else float("inf")


def test_first_colour_appears_earliest(dataset) -> None:
    out, records = dataset
    for rec in by_task(records, "first_colour"):
        frames = decode(out / rec["videos"][0]["path"])
        firsts = {c: first_frame(colour_mask(frames, c)) for c in rec["options"]}
        answer = answer_text(rec)
        assert all(firsts[answer] < f for c, f in firsts.items() if c != answer), (rec["id"], firsts)
        assert firsts[answer] > 0 or rec["metadata"]["params"]["appear_frames"][answer] == 0


def test_appear_when_segment_matches_pixels(dataset) -> None:
    out, records = dataset
    for rec in by_task(records, "appear_when"):
        frames = decode(out / rec["videos"][0]["path"])
        pixels = colour_mask(frames, rec["metadata"]["params"]["target"]).sum(axis=(1, 2))
        side = rec["metadata"]["objects"][0]["size"]
        (start, end), fps = rec["timestamps"][0], rec["metadata"]["fps"]
        assert 0 < start < end <= 2.0
        for i, count in enumerate(pixels):
            t = i / fps  # frame i is shown at i / fps seconds
            if start <= t < end:
                assert count > 0.5 * side * side, (rec["id"], i, pixels)  # a disc covers π/4 ≈ 0.79
            else:
                assert count < 5, (rec["id"], i, pixels)


def test_which_moves_has_largest_footprint(dataset) -> None:
    out, records = dataset
    for rec in by_task(records, "which_moves"):
        frames = decode(out / rec["videos"][0]["path"])
        side = rec["metadata"]["objects"][0]["size"]
        # Footprint = pixels ever of that colour: s² at most for a still object (occlusion only
        # shrinks it), s² + s × travel for the mover (travel >= 0.35 × (56 - s) px).
        footprint = {c: int(colour_mask(frames, c).any(axis=0).sum()) for c in rec["options"]}
        answer = answer_text(rec)
        assert footprint[answer] > 1.4 * side * side, (rec["id"], footprint)
        assert all(v <= 1.1 * side * side for c, v in footprint.items() if c != answer), footprint


def test_noise_knob_reaches_pixels(dataset) -> None:
    out, records = dataset
    level: dict[float, list[float]] = {}
    for rec in by_task(records, "count"):
        frames = decode(out / rec["videos"][0]["path"])
        brightest = frames.max(axis=-1)  # [F, H, W]
        background = brightest[brightest < 60]
        level.setdefault(rec["metadata"]["knobs"]["noise_std"], []).append(float(np.median(background)))
    # noise_std 0 → black; 0.08 → N(0, 20) per channel clipped at 0, the max of 3 channels has a
    # median near 20 × 0.8 ≈ 16 before x264 smooths it (measured ≈ 11).
    assert max(level[0.0]) == 0.0
    assert min(level[0.04]) >= 3.0 and min(level[0.08]) >= 8.0
