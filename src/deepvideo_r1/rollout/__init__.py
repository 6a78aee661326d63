"""Rollout: sample G completions per prompt (HF generate; vLLM interface documented in docs/models.md)."""

from deepvideo_r1.rollout.engine import RolloutEngine, RolloutResult, SamplingOptions, completion_mask
from deepvideo_r1.rollout.hf import HFRolloutEngine

__all__ = ["HFRolloutEngine", "RolloutEngine", "RolloutResult", "SamplingOptions", "completion_mask"]
