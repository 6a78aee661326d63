"""Which rollout engine a run uses (rollout.engine), built once per process and shared by the RL
steps, self-traces and the evaluations.

hf: transformers `generate` on the policy module itself (nothing to sync). vllm: a colocated vLLM
engine started on the warm-start directory, seeded per rank, then synced to the policy's weights
before every rollout batch and evaluation (rollout.vllm_engine).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from deepvideo_r1.config import RunConfig
from deepvideo_r1.models.adapter import ModelAdapter, default_dtype_and_attention
from deepvideo_r1.rollout import HFRolloutEngine, RolloutEngine, SamplingOptions

# Seeds of different ranks' engines are this far apart (vLLM seeds each request itself too).
RANK_SEED_STRIDE = 1_000_003


def sampling_options(cfg: RunConfig) -> SamplingOptions:
    """The RL rollout's decoding settings."""
    r = cfg.rollout
    return SamplingOptions(
        max_new_tokens=r.max_new_tokens, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k or 0
    )


def vllm_settings(cfg: RunConfig, rank: int):
    """VLLMSettings of this rank's engine from the rollout section."""
    from deepvideo_r1.rollout.vllm_engine import VLLMSettings

    r, dtype = cfg.rollout, cfg.model.dtype
    if dtype == "auto":  # the policy's own dtype rule (fp32 on CPU, bf16 on CUDA): vLLM must match it
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = str(default_dtype_and_attention(device)[0]).removeprefix("torch.")
    return VLLMSettings(
        seed=cfg.train.seed + rank * RANK_SEED_STRIDE,
        dtype=dtype,
        gpu_memory_utilization=r.gpu_memory_utilization,
        max_model_len=r.max_model_len,
        max_num_seqs=r.max_num_seqs or r.prompts_per_step * r.group_size,
        enable_prefix_caching=r.enable_prefix_caching,
        kv_cache_gib=r.kv_cache_gib,
    )


def _none(cfg: RunConfig, model_dir: Path, adapter: ModelAdapter, rank: int) -> None:
    return None  # HF generates with whichever policy module it is given: built per use


def _vllm(cfg: RunConfig, model_dir: Path, adapter: ModelAdapter, rank: int) -> RolloutEngine:
    from deepvideo_r1.rollout.vllm_engine import VLLMRolloutEngine

    return VLLMRolloutEngine.start(model_dir, adapter, sampling_options(cfg), vllm_settings(cfg, rank))


# rollout.engine -> the process-wide engine that outlives the policy module (None: none needed)
ENGINES: dict[str, Callable[..., RolloutEngine | None]] = {"hf": _none, "vllm": _vllm}


def start_engine(
    cfg: RunConfig, model_dir: Path, adapter: ModelAdapter, rank: int = 0
) -> RolloutEngine | None:
    """This process's engine, started on `model_dir`; its weights are replaced by `sync_engine`
    before each use (the policy may differ from the directory: dtype, a checkpoint, LoRA)."""
    return ENGINES[cfg.rollout.engine](cfg, Path(model_dir), adapter, rank)


def rollout_engine(cfg: RunConfig, engine: RolloutEngine | None, model: nn.Module, adapter: ModelAdapter):
    """The RL rollout engine: the process's engine with the rollout's decoding, else HF on `model`
    (decoding into a compiled static cache per rollout.compile: on with CUDA unless set)."""
    on_cuda = next(model.parameters()).device.type == "cuda"
    compile_decode = cfg.rollout.compile if cfg.rollout.compile is not None else on_cuda
    make = engine_for(engine, model, adapter, cfg.model.shared_prefix, compile=compile_decode)
    return make(sampling_options(cfg))


def engine_for(
    engine: RolloutEngine | None,
    model: nn.Module,
    adapter: ModelAdapter,
    shared_prefix: bool,
    *,
    compile: bool = False,
):
    """A factory SamplingOptions -> engine: the run's own engine with other decoding settings (vLLM:
    the same instance), or HF engines on `model` when the run has none."""

    def make(sampling: SamplingOptions) -> RolloutEngine:
        if engine is not None and hasattr(engine, "with_sampling"):
            return engine.with_sampling(sampling)
        return HFRolloutEngine(model, adapter, sampling, shared_prefix=shared_prefix, compile=compile)

    return make
