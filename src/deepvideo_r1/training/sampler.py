"""Which samples each step draws: a seeded permutation per epoch, split across ranks.

The global batch of a step is N·world samples; rank r takes the slice [r·N, (r+1)·N). The state
(epoch, position) is two integers, saved in every checkpoint, so a resumed run draws the same
samples as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PromptSampler:
    """Endless, reproducible draws of dataset indices: epoch e uses permutation(seed + e)."""

    num_samples: int
    seed: int
    epoch: int = 0
    position: int = 0

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError("PromptSampler needs at least one sample; the dataset is empty")

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng(self.seed + epoch).permutation(self.num_samples)

    def next_global_batch(self, size: int) -> list[int]:
        """The next `size` indices of the global stream (wrapping into the next epoch)."""
        out: list[int] = []
        while len(out) < size:
            order = self._order(self.epoch)
            take = min(size - len(out), self.num_samples - self.position)
            out.extend(int(i) for i in order[self.position : self.position + take])
            self.position += take
            if self.position == self.num_samples:
                self.epoch, self.position = self.epoch + 1, 0
        return out

    def next_batch(self, per_rank: int, rank: int = 0, world_size: int = 1) -> list[int]:
        """This rank's `per_rank` indices of the next global batch (every rank advances alike)."""
        batch = self.next_global_batch(per_rank * world_size)
        return batch[rank * per_rank : (rank + 1) * per_rank]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "num_samples": self.num_samples}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state["num_samples"]) != self.num_samples:
            raise ValueError(
                f"checkpoint was made with {state['num_samples']} training samples, this dataset has "
                f"{self.num_samples}: resume with the same training file"
            )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
