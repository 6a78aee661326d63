"""The rollout engine interface: prompts in, G completions per prompt out.

Shapes: N prompts, G completions each, B = N·G rows ordered group by group (rows n·G … n·G+G-1
belong to prompt n), T = longest completion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from deepvideo_r1.models.batch import PromptBatch


@dataclass(frozen=True)
class SamplingOptions:
    """Decoding settings. temperature 0 means greedy; top_k 0 disables top-k."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0


@dataclass
class RolloutResult:
    """G completions for each of N prompts.

    completion_ids [B, T] (pad after the stop token); completion_mask [B, T] (1 up to and including
    the first stop token, 0 after it and on padding); texts: B decoded completions; prompt_index [B]
    (= row // G); vision_items: videos+images the vision tower encoded; timing: seconds by phase
    (rollout/vision_s inside the vision tower, rollout/total_s the whole call); logprobs [B, T]:
    the engine's log-probs of the sampled tokens after temperature (vLLM; None from the HF engine).
    """

    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    texts: list[str]
    prompt_index: torch.Tensor
    group_size: int
    vision_items: int = 0
    timing: dict[str, float] = field(default_factory=dict)
    logprobs: torch.Tensor | None = None


class RolloutEngine(Protocol):
    """What the trainer calls; implemented by HFRolloutEngine (transformers generate) and
    VLLMRolloutEngine (rollout.vllm_engine)."""

    def generate(self, batch: PromptBatch, group_size: int, *, seed: int | None = None) -> RolloutResult:
        """Sample `group_size` completions for each prompt of `batch` (left-padded PromptBatch)."""
        ...

    def generation_options(self) -> dict:
        """The decoding that applies (`decoding_options`; part of an evaluation's prediction key)."""
        ...


def decoding_options(sampling: SamplingOptions) -> dict:
    """What decodes a completion besides max_new_tokens, and nothing else: greedy is argmax and
    sampling draws from π_θ itself (no repetition penalty, no n-gram ban, whatever a model
    directory's generation config says)."""
    if sampling.temperature > 0:
        drawn = {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k}
        options = {"do_sample": True, **drawn}
    else:
        options = {"do_sample": False}
    return {**options, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0}


def completion_mask(completion_ids: torch.Tensor, stop_token_ids: list[int]) -> torch.Tensor:
    """[B, T] long mask: 1 at positions ≤ the first stop token of the row, 0 after it.

    A row without a stop token (cut at max_new_tokens) is all ones: generate pads only finished rows.
    """
    is_stop = torch.isin(completion_ids, torch.tensor(stop_token_ids, device=completion_ids.device))
    width = completion_ids.shape[1]
    positions = torch.arange(width, device=completion_ids.device).expand_as(completion_ids)
    first = torch.where(is_stop, positions, torch.full_like(positions, width)).min(dim=1, keepdim=True).values
    return (positions <= first).long()


def sync_engine(engine: RolloutEngine | None, model: nn.Module) -> float | None:
    """Load `model`'s current weights into an engine that keeps its own copy (vLLM's
    `sync_weights`); returns the seconds it took, or None for an engine that generates with the
    model itself (HF, or no engine) and so has nothing to sync."""
    sync = getattr(engine, "sync_weights", None)
    return sync(model) if sync is not None else None


def sleep_engine(engine: RolloutEngine) -> None:
    """Let an engine free its accelerator memory while the trainer updates (vLLM on CUDA)."""
    sleep = getattr(engine, "sleep", None)
    if sleep is not None:
        sleep()
