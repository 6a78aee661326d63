"""deepvideo-r1: reinforcement fine-tuning of video LLMs with Reg-GRPO and difficulty-aware augmentation.

Python API (the functions the CLI calls): `load_config`, `train`, `sft`, `evaluate`, `export_checkpoint`.
"""

__version__ = "0.1.0"

_API = {
    "load_config": "deepvideo_r1.config",
    "train": "deepvideo_r1.api",
    "sft": "deepvideo_r1.api",
    "evaluate": "deepvideo_r1.api",
    "export_checkpoint": "deepvideo_r1.export",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    """Import API functions on first use, so `import deepvideo_r1` stays light (no torch)."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'deepvideo_r1' has no attribute {name!r}")
