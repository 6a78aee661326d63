"""The frozen reference policy of the KL term: kl_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1.

Under LoRA the reference is the base model with adapters disabled (no second copy); otherwise a
frozen deep copy taken when the policy is wrapped (of the full weights: a policy that DeepSpeed
ZeRO-3 partitioned at load is gathered for the copy, so the reference is whole on every rank).
With beta = 0 nothing is built.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from deepvideo_r1.distributed.sharding import gathered_for_generation
from deepvideo_r1.models.batch import SequenceBatch
from deepvideo_r1.models.logprobs import completion_logprobs
from deepvideo_r1.models.precision import compute_context
from deepvideo_r1.models.trainable import is_lora


class ReferencePolicy:
    """`ref.logprobs(batch) -> [B, T]` reference log-probs (no grad).

    Build it with the policy before training starts (the deep copy must be the initial weights).
    """

    def __init__(self, policy: nn.Module, *, shared_prefix: bool = True) -> None:
        self.policy = policy
        self.shared_prefix = shared_prefix
        self.shares_weights = is_lora(policy)
        self.model: nn.Module | None = None
        if not self.shares_weights:
            with gathered_for_generation(policy):  # a no-op unless ZeRO-3 partitioned the weights
                self.model = copy.deepcopy(policy).eval()
            self.model.requires_grad_(False)

    @torch.no_grad()
    def logprobs(
        self, batch: SequenceBatch, *, chunk_size: int = 128, temperature: float = 1.0
    ) -> torch.Tensor:
        """Per-token reference log-probs [B, T] (0 where completion_mask is 0)."""
        if self.shares_weights:
            context = self.policy.disable_adapter()
            model = self.policy
        else:
            context = contextlib.nullcontext()
            model = self.model
        with context, compute_context(model):
            return completion_logprobs(
                model, batch, chunk_size=chunk_size, temperature=temperature, shared_prefix=self.shared_prefix
            ).logps


def build_reference(policy: nn.Module, beta: float, *, shared_prefix: bool = True) -> ReferencePolicy | None:
    """A ReferencePolicy when beta > 0, else None (no reference model is loaded)."""
    return ReferencePolicy(policy, shared_prefix=shared_prefix) if beta > 0 else None
