"""Policy models: family adapters, prompt batching, tiny preset, trainable setup, log-probs.

Names load on first use (PEP 562): `deepvideo_r1.models.options`, which the run configuration
imports, then does not pull in transformers.
"""

import importlib

_HOMES = {
    "adapter": ("ModelAdapter", "ModelLoadError", "PixelBudget", "load_policy", "sft_inputs"),
    "batch": (
        "ImageTensors",
        "PromptBatch",
        "PromptInputs",
        "SequenceBatch",
        "VideoTensors",
        "collate_prompts",
        "join_completions",
        "repeat_prompts",
    ),
    "families": ("FAMILIES", "ModelFamily", "UnknownFamilyError", "get_family"),
    "logprobs": ("LogProbResult", "completion_logprobs", "naive_completion_logprobs"),
    "options": ("LoraOptions",),
    "reference": ("ReferencePolicy", "build_reference"),
    "tiny": ("TinySizes", "make_tiny_model"),
    "trainable": ("TrainableConfigError", "count_parameters", "prepare_trainable"),
    "vision": ("VisionCallCounter", "shared_vision_outputs"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)


def __dir__() -> list[str]:
    return __all__
