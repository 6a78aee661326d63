"""Held-out evaluation: greedy (and sampled) decoding, accuracy per category, resumable predictions."""

from deepvideo_r1.evaluation.evaluate import EvalReport, EvalSettings, SampledDecoding, evaluate
from deepvideo_r1.evaluation.resume import DuplicateIdError, EvalResumeError

__all__ = ["DuplicateIdError", "EvalReport", "EvalResumeError", "EvalSettings", "SampledDecoding", "evaluate"]
