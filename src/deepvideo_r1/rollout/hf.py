"""Rollout with transformers' `generate`, the vision tower run once per prompt.

The N prompts' videos/images are encoded once (models.vision.shared_vision_outputs); the token
rows, grids and features are repeated G times and `generate` receives `mm_encoder_outputs`, so the
model scatters the shared features into each row and computes its 3-D rope positions (and the
rope deltas used for the generated tokens) from input_ids + mm_token_type_ids as usual.
With `shared_prefix` (the default) the decoder also prefills each prompt once: the N prompts but
their last token run once, the KV cache is repeated to the B rows, and `generate` continues from it
with the rope deltas of the N prompts repeated likewise (models.prefix.prefill_prompts).
`shared_vision=False` is the naive path peers use (pixels repeated G times) — kept to measure
against and to check that both give the same tokens.

Decoding is ours only: while `generate` runs, the model's `generation_config` (read from the model
directory's generation_config.json, where Qwen2.5-VL-Instruct sets repetition_penalty 1.05) is
replaced by an empty one, so greedy is argmax and rollouts are drawn from π_θ itself
(`generation_options` lists what applies). Non-finite logits stop the call with
NonFiniteLogitsError instead of torch's "probability tensor contains inf, nan" (or, greedy, an
argmax over NaN).

`static_cache` decodes into a static KV cache of bucketed size (models.static_cache), which
`compile` lets transformers compile (on CUDA; the rows are then padded to a power of two).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from deepvideo_r1.models.adapter import ModelAdapter
from deepvideo_r1.models.batch import PromptBatch, repeat_prompts
from deepvideo_r1.models.precision import compute_context
from deepvideo_r1.models.prefix import prefill_prompts
from deepvideo_r1.models.static_cache import batch_bucket, cache_bucket, pad_rows, static_from_prefill
from deepvideo_r1.models.vision import VisionCallCounter, shared_vision_outputs, unwrap
from deepvideo_r1.rollout.engine import RolloutResult, SamplingOptions, completion_mask, decoding_options


class NonFiniteLogitsError(RuntimeError):
    """The policy produced NaN or inf logits while generating (its weights have diverged)."""


class _FiniteLogits(LogitsProcessor):
    """Raise NonFiniteLogitsError at the first decoding position where a row's logits hold NaN or
    +inf, or are all -inf (masked tokens are -inf, so -inf alone is fine). One device sync per
    token, as generate's own stopping check already makes."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        bad = torch.isnan(scores).any(-1) | torch.isposinf(scores).any(-1) | torch.isneginf(scores).all(-1)
        if bool(bad.any()):
            rows = bad.nonzero().flatten().tolist()
            raise NonFiniteLogitsError(
                f"non-finite logits while generating (token position {input_ids.shape[1]}, rows {rows[:4]}): "
                "the policy's weights have diverged; lower train.lr"
            )
        return scores


@contextmanager
def own_generation_config(model: nn.Module) -> Iterator[None]:
    """Replace the `generation_config` of every (wrapped) module of `model` by an empty one while
    the block runs: generate then uses only the arguments it is given and transformers' neutral
    defaults, nothing from the model directory's generation_config.json."""
    swapped = [
        (m, m.generation_config)
        for m in model.modules()
        if isinstance(getattr(m, "generation_config", None), GenerationConfig)
    ]
    for module, _ in swapped:
        module.generation_config = GenerationConfig()
    try:
        yield
    finally:
        for module, config in swapped:
            module.generation_config = config


class HFRolloutEngine:
    """`generate(batch, G, seed=)` -> RolloutResult, with HF generate on `model`."""

    def __init__(
        self,
        model: nn.Module,
        adapter: ModelAdapter,
        sampling: SamplingOptions | None = None,
        *,
        shared_vision: bool = True,
        shared_prefix: bool = True,
        static_cache: bool = False,
        compile: bool = False,
    ) -> None:
        if shared_prefix and not shared_vision:
            raise ValueError(
                "shared_prefix encodes vision once per prompt; pass shared_vision=True or shared_prefix=False"
            )
        self.model = model
        self.adapter = adapter
        self.sampling = sampling or SamplingOptions()
        self.shared_vision = shared_vision
        self.shared_prefix = shared_prefix
        self.compile = compile
        self.static_cache = static_cache or compile  # a dynamic cache cannot be compiled

    def generation_options(self) -> dict:
        """The decoding that applies besides max_new_tokens (nothing else does: see
        `own_generation_config`)."""
        return decoding_options(self.sampling)

    def _generate_kwargs(self) -> dict:
        return {
            **self.generation_options(),
            "max_new_tokens": self.sampling.max_new_tokens,
            "logits_processor": LogitsProcessorList([_FiniteLogits()]),
            "eos_token_id": self.adapter.stop_token_ids,
            "pad_token_id": self.adapter.pad_id,
            # a generated placeholder would break the placeholder/feature count in later forwards
            "suppress_tokens": self.adapter.vision_token_ids,
            "use_cache": True,
            # transformers turns on per-token cross-rank syncing for FSDP / ZeRO-3 modules; the
            # trainer gathers sharded weights before any rollout, so ranks generate independently
            # (and augmented re-rollouts happen on some ranks only).
            "synced_gpus": False,
            # transformers compiles the decode step itself when the cache is static (on CUDA)
            "disable_compile": not self.compile,
            **({"cache_implementation": "static"} if self.static_cache and not self.shared_prefix else {}),
        }

    def _static_inputs(self, batch: PromptBatch, group_size: int) -> dict:
        """The shared-prefix prefill copied into a bucketed static cache; rows padded when compiling."""
        cache, deltas = prefill_prompts(self.model, batch, group_size)
        rows = repeat_prompts(batch, group_size, with_pixels=False)
        n_rows = rows.input_ids.shape[0]
        padded = batch_bucket(n_rows) if self.compile else n_rows
        length = cache_bucket(rows.input_ids.shape[1] + self.sampling.max_new_tokens)
        base = unwrap(self.model)
        base.model.rope_deltas = pad_rows(deltas, padded)
        return {
            "input_ids": pad_rows(rows.input_ids, padded),
            "attention_mask": pad_rows(rows.attention_mask, padded),
            "mm_token_type_ids": pad_rows(rows.mm_token_type_ids, padded),
            "cache": static_from_prefill(cache, base.config, length, padded),
        }

    def _model_inputs(self, batch: PromptBatch, group_size: int) -> dict:
        if self.shared_prefix and self.static_cache:
            return self._static_inputs(batch, group_size)
        if self.shared_prefix:
            cache, deltas = prefill_prompts(self.model, batch, group_size)
            unwrap(self.model).model.rope_deltas = deltas  # what generate adds to text positions
            rows = repeat_prompts(batch, group_size, with_pixels=False)
            return {
                "input_ids": rows.input_ids,
                "attention_mask": rows.attention_mask,
                "mm_token_type_ids": rows.mm_token_type_ids,
                "cache": cache,
            }
        if self.shared_vision:
            rows = repeat_prompts(batch, group_size, with_pixels=False)
            return {
                "mm_encoder_outputs": shared_vision_outputs(self.model, batch, group_size),
                **_row_inputs(rows),
            }
        rows = repeat_prompts(batch, group_size, with_pixels=True)
        return {**rows.pixel_kwargs(), **_row_inputs(rows)}

    @torch.no_grad()
    def generate(self, batch: PromptBatch, group_size: int, *, seed: int | None = None) -> RolloutResult:
        """Sample G completions per prompt; `seed` makes the call reproducible."""
        device = next(self.model.parameters()).device
        batch = batch.to(device)
        was_training = self.model.training
        self.model.eval()
        start = time.perf_counter()
        devices = [device] if device.type == "cuda" else []
        try:
            with (
                torch.random.fork_rng(devices=devices),
                VisionCallCounter(self.model) as counter,
                compute_context(self.model),
            ):
                if seed is not None:
                    torch.manual_seed(seed)
                inputs = self._model_inputs(batch, group_size)
                with own_generation_config(self.model):
                    out = self.model.generate(**inputs, **self._generate_kwargs())
        finally:
            self.model.train(was_training)
        ids = out[: batch.num_prompts * group_size, batch.input_ids.shape[1] :]  # [B, T] generated part
        mask = completion_mask(ids, self.adapter.stop_token_ids)
        total = time.perf_counter() - start
        return RolloutResult(
            completion_ids=ids,
            completion_mask=mask,
            texts=self.adapter.decode(ids, mask),
            prompt_index=torch.arange(batch.num_prompts, device=device).repeat_interleave(group_size),
            group_size=group_size,
            vision_items=counter.items,
            timing={"rollout/vision_s": counter.seconds, "rollout/total_s": total},
        )


def _row_inputs(rows: PromptBatch) -> dict:
    """Token rows and grids for generate: input_ids, attention_mask, mm_token_type_ids, grids."""
    return {"input_ids": rows.input_ids, "attention_mask": rows.attention_mask, **rows.vision_kwargs()}
