"""The NaN guard: an update whose loss or gradient norm is not finite is skipped, never applied.

One bad batch (an overflow, a reward that returned NaN) then costs one update instead of every
weight; `limit` skipped updates in a row mean the run cannot recover and stop it with a named
error, while the last checkpoint still holds finite weights.
"""

from __future__ import annotations

import logging
import math

logger = logging.getLogger(__name__)


class NonFiniteUpdateError(RuntimeError):
    """Too many updates in a row had a non-finite loss or gradient norm."""


class UpdateGuard:
    """`allow(loss, grad_norm)` -> whether to apply the update; counts skips in a row."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit={limit} must be >= 1")
        self.limit = limit
        self.in_a_row = 0

    def allow(self, loss: float, grad_norm: float) -> bool:
        """True for a finite loss and gradient norm; else count a skip (NonFiniteUpdateError at `limit`)."""
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        logger.warning(
            "skipping an update: loss %s, gradient norm %s (%d in a row)", loss, grad_norm, self.in_a_row
        )
        if self.in_a_row >= self.limit:
            raise NonFiniteUpdateError(
                f"{self.in_a_row} updates in a row had a non-finite loss ({loss}) or gradient norm "
                f"({grad_norm}); stopped (train.max_skipped_updates={self.limit}). The last checkpoint "
                "holds the weights before them: lower train.lr or check the algo settings and rewards"
            )
        return False
