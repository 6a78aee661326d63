"""How far Qwen-VL preprocessing here drifts from transformers' `Qwen2VLImageProcessorPil`.

    python benchmarks/pil_resize_diff.py

For every image size H, W in range(57, 200, 7) x range(57, 200, 9) that smart_resize changes
(min_pixels 56², max_pixels 28²·256, so only the rounding to multiples of 28 resizes), one random
0/255 image (the worst case for bicubic overshoot) and one uniform-noise image go through both
pipelines; the largest |difference| of the normalised pixel values is reported in grey levels
(1 level = 1/255/min(CLIP std)), grouped by the direction each side is scaled, plus the
481x353 -> 476x364 case. Writes benchmarks/results/pil_resize_diff.json.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import PIL
import torch
import transformers
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from deepvideo_r1.video import qwen_image_inputs, smart_resize
from deepvideo_r1.video.qwen import OPENAI_CLIP_STD

MIN, MAX = 56 * 56, 28 * 28 * 256
LEVEL = 1.0 / 255 / min(OPENAI_CLIP_STD)


def diff_levels(processor: Qwen2VLImageProcessorPil, img: np.ndarray) -> float:
    ref = processor(images=[img], return_tensors="pt")["pixel_values"]
    ours = qwen_image_inputs(img, MIN, MAX)["pixel_values"]
    return (ours - ref).abs().max().item() / LEVEL


def direction(old: int, new: int) -> str:
    return "grows" if new > old else "shrinks" if new < old else "same"


def main() -> None:
    processor = Qwen2VLImageProcessorPil(min_pixels=MIN, max_pixels=MAX)
    rng = np.random.default_rng(0)
    worst: dict[str, dict] = defaultdict(lambda: {"levels": 0.0})
    for h, w in itertools.product(range(57, 200, 7), range(57, 200, 9)):
        oh, ow = smart_resize(h, w, 28, MIN, MAX)
        if (oh, ow) == (h, w):
            continue
        key = f"height {direction(h, oh)}, width {direction(w, ow)}"
        for pattern in ("binary", "uniform"):
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            if pattern == "binary":
                img = (img >= 128).astype(np.uint8) * 255
            d = diff_levels(processor, img)
            if d > worst[key]["levels"]:
                worst[key] = {"levels": round(d, 2), "size": [h, w], "resized": [oh, ow], "image": pattern}
    example = diff_levels(
        processor, np.random.default_rng(481).integers(0, 256, (481, 353, 3), dtype=np.uint8)
    )
    out = {
        "worst_by_direction": dict(sorted(worst.items())),
        "uniform_481x353_to_476x364": round(example, 2),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "pillow": PIL.__version__,
        },
    }
    print(json.dumps(out, indent=1))
    path = Path(__file__).parent / "results" / "pil_resize_diff.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
