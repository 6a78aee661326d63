"""Rollout: sample G completions per prompt (`RolloutEngine` protocol, HF generate implementation)."""

from deepvideo_r1.rollout.engine import RolloutEngine, RolloutResult, SamplingOptions, completion_mask
from deepvideo_r1.rollout.hf import HFRolloutEngine

__all__ = ["HFRolloutEngine", "RolloutEngine", "RolloutResult", "SamplingOptions", "completion_mask"]
