"""Typed errors of the rewards area."""

from __future__ import annotations


class RewardError(ValueError):
    """A reward could not be computed because of a user or data mistake (never model output).

    Raised for: an unknown reward or problem type, a malformed gold answer or gold span, a user
    reward file that cannot be loaded, or a user reward that returns a non-finite value. A bad
    *completion* never raises; it scores 0.
    """
