"""The policy as one nn.Module whose forward is what training differentiates.

accelerate wraps this module (DDP / FSDP / DeepSpeed), so every differentiated forward passes
through the wrapper's own forward and gradients are synchronised as usual; rollout uses the
unwrapped model (`PolicyModule.model`).
"""

from __future__ import annotations

import torch
from torch import nn

from deepvideo_r1.models.adapter import sft_inputs
from deepvideo_r1.models.batch import SequenceBatch
from deepvideo_r1.models.logprobs import LogProbResult, completion_logprobs
from deepvideo_r1.models.precision import compute_context
from deepvideo_r1.models.prefix import check_shared_prefix


class PolicyModule(nn.Module):
    """forward(batch) -> LogProbResult of the completions; forward(batch, sft=True) -> CE loss.

    `shared_prefix`: each group's prompt runs through the decoder once (models.prefix); checked here,
    so an unsupported model fails when the policy is built, not mid-run.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        chunk_size: int = 512,
        temperature: float = 1.0,
        shared_prefix: bool = True,
    ) -> None:
        super().__init__()
        if shared_prefix:
            check_shared_prefix(model)
        self.model = model
        self.chunk_size = chunk_size
        self.temperature = temperature
        self.shared_prefix = shared_prefix

    def forward(self, batch: SequenceBatch, sft: bool = False) -> LogProbResult | torch.Tensor:
        with compute_context(self.model):  # bf16 autocast over fp32 master weights (models.precision)
            if sft:
                return self.model(**sft_inputs(batch), labels=batch.labels, use_cache=False).loss
            return completion_logprobs(
                self.model,
                batch,
                chunk_size=self.chunk_size,
                temperature=self.temperature,
                shared_prefix=self.shared_prefix,
            )
