"""Which parameters train (the LoRA section of the run configuration and the vision choice), beside
`models/trainable.py` that applies them. Light: the config imports it without torch or transformers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from pydantic import Field

from deepvideo_r1.options import Section

TrainVision = Literal["none", "merger", "all"]
TRAIN_VISION: tuple[str, ...] = get_args(TrainVision)


@dataclass(frozen=True)
class LoraOptions:
    """LoRA adapters (peft). target_modules: module-name suffixes inside the language model
    (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class LoraConfig(Section):
    """LoRA adapters on the language model (peft); weights saved adapter-only."""

    enabled: bool = Field(False, description="Train LoRA adapters instead of full weights.")
    r: int = Field(16, ge=1, description="Adapter rank.")
    alpha: int = Field(32, ge=1, description="Scaling numerator: update = (alpha / r) * B A.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Language-model module names that get adapters (also gate_proj, up_proj, down_proj).",
    )

    def adapter_options(self) -> LoraOptions | None:
        """The adapter options `prepare_trainable` takes; None when LoRA is off."""
        if not self.enabled:
            return None
        return LoraOptions(
            r=self.r, alpha=self.alpha, dropout=self.dropout, target_modules=list(self.target_modules)
        )
