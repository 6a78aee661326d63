"""Rollout: sample G completions per prompt (`RolloutEngine` protocol; HF generate here, vLLM in
rollout.vllm_engine, imported only when used)."""

from deepvideo_r1.rollout.engine import (
    RolloutEngine,
    RolloutResult,
    SamplingOptions,
    completion_mask,
    sleep_engine,
    sync_engine,
)
from deepvideo_r1.rollout.hf import HFRolloutEngine

__all__ = [
    "HFRolloutEngine",
    "RolloutEngine",
    "RolloutResult",
    "SamplingOptions",
    "completion_mask",
    "sleep_engine",
    "sync_engine",
]
