"""Policy models: family adapters, prompt batching, tiny preset, trainable setup, log-probs."""

from deepvideo_r1.models.adapter import ModelAdapter, ModelLoadError, PixelBudget, load_policy, sft_inputs
from deepvideo_r1.models.batch import (
    ImageTensors,
    PromptBatch,
    PromptInputs,
    SequenceBatch,
    VideoTensors,
    collate_prompts,
    join_completions,
    repeat_prompts,
)
from deepvideo_r1.models.families import FAMILIES, ModelFamily, UnknownFamilyError, get_family
from deepvideo_r1.models.logprobs import LogProbResult, completion_logprobs, naive_completion_logprobs
from deepvideo_r1.models.reference import ReferencePolicy, build_reference
from deepvideo_r1.models.tiny import TinySizes, make_tiny_model
from deepvideo_r1.models.trainable import (
    LoraOptions,
    TrainableConfigError,
    count_parameters,
    prepare_trainable,
)
from deepvideo_r1.models.vision import VisionCallCounter, shared_vision_outputs

__all__ = [
    "FAMILIES",
    "ImageTensors",
    "LogProbResult",
    "LoraOptions",
    "ModelAdapter",
    "ModelFamily",
    "ModelLoadError",
    "PixelBudget",
    "PromptBatch",
    "PromptInputs",
    "ReferencePolicy",
    "SequenceBatch",
    "TinySizes",
    "TrainableConfigError",
    "UnknownFamilyError",
    "VideoTensors",
    "VisionCallCounter",
    "build_reference",
    "collate_prompts",
    "completion_logprobs",
    "count_parameters",
    "get_family",
    "join_completions",
    "load_policy",
    "make_tiny_model",
    "naive_completion_logprobs",
    "prepare_trainable",
    "repeat_prompts",
    "sft_inputs",
    "shared_vision_outputs",
]
