"""benchmarks/shared_prefix_step.py: its pure helpers (alternation order, summaries, which prompts
the timed steps draw). The timing itself is the script's job, not a test's."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import shared_prefix_step as bench  # noqa: E402


def test_paths_alternate_which_runs_first():
    assert [bench.path_order(s)[0] for s in (1, 2, 3, 4)] == ["repeated", "shared", "repeated", "shared"]
    assert all(sorted(bench.path_order(s)) == ["repeated", "shared"] for s in range(1, 6))


def test_summarize_median_and_range():
    # sorted 1.0, 2.0, 4.0, 10.0: median (2 + 4) / 2 = 3.0
    assert bench.summarize([4.0, 1.0, 10.0, 2.0]) == {"median": 3.0, "min": 1.0, "max": 10.0}
    assert bench.summarize([0.12345]) == {"median": 0.123, "min": 0.123, "max": 0.123}


def test_drawn_indices_are_the_samplers_draws():
    order = np.random.default_rng(7).permutation(10)  # epoch 0 of PromptSampler(10, seed=7)
    # 2 steps × 3 prompts = the first 6 of epoch 0's permutation
    assert bench.drawn_indices(10, 7, 3, 2) == sorted(int(i) for i in order[:6])
    # 3 steps × 4 = 12 > 10 draws: epoch 0 whole, so every index
    assert bench.drawn_indices(10, 7, 4, 3) == list(range(10))
