"""Helpers for tests and benchmarks: the tiny-run overrides, tiny models in a temp dir, random
vision tensors of the right shapes (so model code is tested without decoding videos).

Not part of the package: benchmarks put this folder on sys.path to use it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from deepvideo_r1.models.adapter import ModelAdapter, load_policy
from deepvideo_r1.models.batch import ImageTensors, VideoTensors
from deepvideo_r1.models.families import ModelFamily
from deepvideo_r1.models.tiny import make_tiny_model

# Smaller than the preset: tests build several models and run in seconds on 2 CPU cores.
TEST_SIZES = {
    "text_hidden": 64,
    "text_layers": 2,
    "text_heads": 4,
    "text_kv_heads": 2,
    "text_intermediate": 128,
    "vision_hidden": 32,
    "vision_depth": 2,
    "vision_heads": 2,
    "vision_intermediate": 64,
}


# The tiny run every end-to-end test starts from (a few seconds per RL step on 2 cores); a module
# adds what it tests. Later overrides win, e.g. "model.tiny_sizes.text_layers=1".
TINY_RUN = [
    "rollout.group_size=2",
    "rollout.prompts_per_step=2",
    "train.micro_batch_size=2",
    "train.max_steps=2",
    "train.save_every=1",
    "train.report_to=[]",
    "difficulty.window=4",
    "model.tiny_sizes={text_hidden: 64, text_layers: 2, vision_hidden: 32, vision_depth: 1, vocab_size: 512}",
]

# The synthetic data of the session's shared tiny-run assets (conftest.tiny_run_assets).
TINY_DATA = ["data.synth.n_train=6", "data.synth.n_eval=4"]


def tiny_run_config(output_dir: str | Path, *extra: str):
    """The tiny CPU preset with TINY_RUN, writing into `output_dir`, then `extra` overrides."""
    from deepvideo_r1.config import load_config
    from deepvideo_r1.presets import TINY_CPU

    return load_config(TINY_CPU, [*TINY_RUN, f"train.output_dir={output_dir}", *extra])


def tiny_policy(
    out_dir: str | Path, family: str = "qwen2.5-vl", seed: int = 0
) -> tuple[nn.Module, ModelAdapter]:
    """Write a test-sized tiny model to `out_dir` and load it back (fp32, sdpa, CPU)."""
    return load_policy(make_tiny_model(out_dir, family=family, seed=seed, **TEST_SIZES))


def random_video(
    family: ModelFamily, t: int = 2, h: int = 4, w: int = 4, fps: float = 2.0, seed: int = 0
) -> VideoTensors:
    """Random pixels [t·h·w, 3·2·p·p] for a grid (t, h, w) in patches; t temporal patches = 2t frames."""
    gen = torch.Generator().manual_seed(seed)
    dim = 3 * family.temporal_patch_size * family.patch_size**2
    seconds = family.temporal_patch_size / fps
    return VideoTensors(
        pixel_values_videos=torch.randn(t * h * w, dim, generator=gen),
        video_grid_thw=torch.tensor([[t, h, w]]),
        second_per_grid_ts=torch.tensor([seconds]),
        patch_times=[seconds * (i + 0.25) for i in range(t)],
    )


def random_image(family: ModelFamily, h: int = 4, w: int = 6, seed: int = 0) -> ImageTensors:
    """Random pixels [h·w, 3·2·p·p] for an image grid (1, h, w)."""
    gen = torch.Generator().manual_seed(seed)
    dim = 3 * family.temporal_patch_size * family.patch_size**2
    return ImageTensors(
        pixel_values=torch.randn(h * w, dim, generator=gen), image_grid_thw=torch.tensor([[1, h, w]])
    )


def max_rel_grad_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """max over parameters of max|a_p - b_p| / max|b_p| (a parameter whose gradient is all 0 in
    `b` counts its absolute difference)."""
    worst = 0.0
    for name, grad in b.items():
        scale = float(grad.abs().max())
        diff = float((a[name] - grad).abs().max())
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst


def seed_run_dir(assets: Path, run: Path) -> Path:
    """Copy the shared synthetic data, tiny model and frame cache into a new run directory."""
    import shutil

    run.mkdir(parents=True, exist_ok=True)
    for name in ("synth", "tiny_model", "cache"):
        shutil.copytree(assets / name, run / name, dirs_exist_ok=True)
    return run


def scripted_result(adapter: ModelAdapter, texts: list[str], group_size: int):
    """A RolloutResult holding `texts` (G consecutive rows per prompt) as our tokenizer writes them,
    right-padded with a mask of their tokens: for engines that script completions in tests."""
    from deepvideo_r1.rollout import RolloutResult

    tok = [adapter.tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    width = max(len(t) for t in tok)
    ids = torch.full((len(tok), width), adapter.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, t in enumerate(tok):
        ids[i, : len(t)], mask[i, : len(t)] = torch.tensor(t), 1
    return RolloutResult(ids, mask, texts, torch.arange(len(texts)) // group_size, group_size)
