"""Rollout with vLLM: a colocated in-process engine per rank, synced to the policy's weights.

The engine runs in the training process (VLLM_ENABLE_V1_MULTIPROCESSING=0, as TRL's colocate mode
and EasyR1 run it), loads the model directory once and then takes the policy's weights through
`sync_weights` (vLLM's `reload_weights` with checkpoint names; rollout.weights): the trainer calls
it after each optimizer step, inside the gathered-for-generation context when sharded. After a
sync the encoder and prefix caches are reset — a cached video would otherwise skip the new
weights' vision pass ("Encoder cache miss" on CPU), and cached prompt KV was computed with the old
weights.

One request per prompt with n = G and a per-prompt seed (seed + prompt index), so a call with the
same seed gives the same completions; vision placeholders get a -100 logit bias (vLLM's floor);
completions keep their stop token and get the HF engine's completion mask. The sampled tokens'
log-probs after temperature (vLLM's processed_logprobs) come back in `RolloutResult.logprobs`.

vLLM is imported on first use only: the default engine never needs it.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepvideo_r1.models.adapter import ModelAdapter
from deepvideo_r1.models.batch import PromptBatch
from deepvideo_r1.rollout.engine import RolloutResult, SamplingOptions, completion_mask, decoding_options
from deepvideo_r1.rollout.vllm_inputs import build_requests
from deepvideo_r1.rollout.weights import policy_weights, vision_is_frozen

VLLM_INSTALL_HINT = (
    "rollout.engine=vllm needs vLLM: `pip install vllm` on GPU, or build the CPU environment with "
    "scripts/make_vllm_cpu_env.sh DIR (docs/models.md, 'vLLM rollout engine')"
)
# vLLM clamps logit_bias to [-100, 100]; exp(-100) makes a vision token unreachable in practice.
SUPPRESS_BIAS = -100.0


@dataclass(frozen=True)
class VLLMSettings:
    """Engine construction settings (rollout.* fields of the run config)."""

    seed: int = 0
    dtype: str = "float32"
    """The policy's dtype (float32, bfloat16); never vLLM's "auto", which picks bfloat16 on CPU."""
    gpu_memory_utilization: float = 0.3
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    enable_prefix_caching: bool = True
    kv_cache_gib: float = 1.0


def import_vllm():
    """The vllm module, or a one-line ImportError saying how to install it."""
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"{VLLM_INSTALL_HINT} ({e})") from e
    return vllm


def set_engine_environment(kv_cache_gib: float) -> None:
    """Environment vLLM reads at import / start-up; values the user set are kept."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process: weights reachable
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{kv_cache_gib:g}")  # else it wants 92 % of RAM
    # Without OMP_NUM_THREADS vLLM's CPU start-up drops torch to 1 thread for the whole process (trainer
    # included) and then turns torch.set_num_threads into a no-op, so ours could not be restored.
    os.environ.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    # without it, OpenMP threads spin between vLLM's kernels and torch's (seconds-long stalls on few cores)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@contextlib.contextmanager
def _kept_rng_and_threads() -> Iterator[None]:
    """vLLM re-seeds the global RNGs and pins torch's thread count at start-up: keep ours."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
    torch.set_num_threads(threads)


def start_llm(model_dir: str | Path, settings: VLLMSettings):
    """A vllm.LLM on `model_dir` (in-process, sleep mode on CUDA)."""
    set_engine_environment(settings.kv_cache_gib)
    vllm = import_vllm()
    kwargs = {
        "model": str(model_dir),
        "dtype": settings.dtype,
        "seed": settings.seed,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "enable_prefix_caching": settings.enable_prefix_caching,
        "logprobs_mode": "processed_logprobs",  # after temperature, as the trainer scores them
        "enable_sleep_mode": torch.cuda.is_available(),
        "limit_mm_per_prompt": {"video": 1, "image": 1},
    }
    if settings.max_model_len is not None:
        kwargs["max_model_len"] = settings.max_model_len
    if settings.max_num_seqs is not None:
        kwargs["max_num_seqs"] = settings.max_num_seqs
    if not torch.cuda.is_available():
        # A chunked prefill discards its sampled token and rewinds the request's seeded generator,
        # which a CPU generator cannot do ("CPU Generator does not use offset"): prefill whole prompts.
        kwargs["enable_chunked_prefill"] = False
    with _kept_rng_and_threads():
        return vllm.LLM(**kwargs)


class VLLMRolloutEngine:
    """`generate(batch, G, seed=)` -> RolloutResult (with `logprobs`), on a colocated vLLM engine.

    `llm` is shared by engines made with `with_sampling` (one vLLM per process for rollouts,
    self-traces and evaluations).
    """

    def __init__(self, llm, adapter: ModelAdapter, sampling: SamplingOptions | None = None) -> None:
        self.llm = llm
        self.adapter = adapter
        self.sampling = sampling or SamplingOptions()
        self._state = {"vision_sent": False, "asleep": False, "syncs": 0}

    @classmethod
    def start(
        cls, model_dir: str | Path, adapter: ModelAdapter, sampling: SamplingOptions, settings: VLLMSettings
    ) -> VLLMRolloutEngine:
        """Start vLLM on `model_dir` (the weights it loads first; `sync_weights` replaces them)."""
        return cls(start_llm(model_dir, settings), adapter, sampling)

    def with_sampling(self, sampling: SamplingOptions) -> VLLMRolloutEngine:
        """An engine on the same vLLM instance with other decoding settings."""
        twin = VLLMRolloutEngine(self.llm, self.adapter, sampling)
        twin._state = self._state  # one instance: one record of what was synced
        return twin

    # ---- weights ----------------------------------------------------------------------------------
    def sync_weights(self, model: nn.Module) -> float:
        """Load `model`'s current weights into vLLM (frozen vision tower: the first time only);
        returns the seconds it took. Under FSDP2 / ZeRO-3 call inside gathered_for_generation."""
        start = time.perf_counter()
        self.wake_up()
        include_vision = not (self._state["vision_sent"] and vision_is_frozen(model))
        weights = policy_weights(model, include_vision=include_vision)
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True}
        )
        self.llm.llm_engine.reset_encoder_cache()
        self.llm.reset_prefix_cache()
        self._state["vision_sent"] = True
        self._state["syncs"] += 1
        return time.perf_counter() - start

    def sleep(self) -> None:
        """Free vLLM's GPU memory (weights and KV cache) during the update; a no-op off CUDA."""
        if torch.cuda.is_available() and not self._state["asleep"]:
            self.llm.sleep(level=1)
            self._state["asleep"] = True

    def wake_up(self) -> None:
        """Undo `sleep` (called by sync_weights and generate)."""
        if self._state["asleep"]:
            self.llm.wake_up()
            self._state["asleep"] = False

    # ---- sampling ---------------------------------------------------------------------------------
    def generation_options(self) -> dict:
        """The decoding that applies: ours only (SamplingParams built here, repetition penalty 1)."""
        return decoding_options(self.sampling)

    def sampling_params(self, group_size: int, seed: int | None):
        """vllm.SamplingParams of one prompt (n = G)."""
        vllm = import_vllm()
        s = self.sampling
        greedy = s.temperature <= 0
        return vllm.SamplingParams(
            n=group_size,
            temperature=0.0 if greedy else s.temperature,
            top_p=1.0 if greedy else s.top_p,
            top_k=0 if greedy else s.top_k,
            max_tokens=s.max_new_tokens,
            repetition_penalty=1.0,  # ours only, never the model directory's generation_config.json
            seed=seed,
            stop_token_ids=list(self.adapter.stop_token_ids),
            logit_bias={t: SUPPRESS_BIAS for t in self.adapter.vision_token_ids},
            logprobs=0,  # the sampled token's own log-prob
            skip_special_tokens=True,
        )

    def requests(self, batch: PromptBatch) -> list[dict]:
        """The vLLM prompt dicts of `batch` (vllm_inputs.build_requests)."""
        fam = self.adapter.family
        return build_requests(
            batch,
            image_token_id=self.adapter.image_token_id,
            video_token_id=self.adapter.video_token_id,
            patch_size=fam.patch_size,
            temporal_patch_size=fam.temporal_patch_size,
            merge_size=fam.merge_size,
        )

    @torch.no_grad()
    def generate(self, batch: PromptBatch, group_size: int, *, seed: int | None = None) -> RolloutResult:
        """G completions per prompt; the same `seed` gives the same completions."""
        start = time.perf_counter()
        self.wake_up()
        batch = batch.to("cpu")
        requests = self.requests(batch)
        params = [
            self.sampling_params(group_size, None if seed is None else seed + n) for n in range(len(requests))
        ]
        with _kept_rng_and_threads():
            outputs = self.llm.generate(requests, params, use_tqdm=False)
        ids, logps = _rows(outputs, group_size, self.adapter.pad_id)
        mask = completion_mask(ids, self.adapter.stop_token_ids)
        return RolloutResult(
            completion_ids=ids,
            completion_mask=mask,
            texts=self.adapter.decode(ids, mask),
            prompt_index=torch.arange(batch.num_prompts).repeat_interleave(group_size),
            group_size=group_size,
            vision_items=sum(batch.videos_per_prompt) + sum(batch.images_per_prompt),
            timing={"rollout/vision_s": 0.0, "rollout/total_s": time.perf_counter() - start},
            logprobs=logps,
        )


def _rows(outputs: list, group_size: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """vLLM outputs -> completion ids [B, T] (pad after the end) and sampled log-probs [B, T]."""
    rows = [c for out in outputs for c in out.outputs[:group_size]]
    width = max(1, max(len(c.token_ids) for c in rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    logps = torch.zeros((len(rows), width), dtype=torch.float32)
    for r, c in enumerate(rows):
        toks = list(c.token_ids)
        ids[r, : len(toks)] = torch.tensor(toks, dtype=torch.long)
        if c.logprobs:
            logps[r, : len(toks)] = torch.tensor(
                [step[t].logprob for step, t in zip(c.logprobs, toks, strict=True)], dtype=torch.float32
            )
    return ids, logps
