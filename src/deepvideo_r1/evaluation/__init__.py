"""Held-out evaluation: greedy (and sampled) decoding, accuracy per category, resumable predictions."""

from deepvideo_r1.evaluation.evaluate import EvalReport, EvalResumeError, SampledDecoding, evaluate

__all__ = ["EvalReport", "EvalResumeError", "SampledDecoding", "evaluate"]
