"""The base of every configuration section; each package defines its own sections on it.

A package owns its options (video/options.py, difficulty/options.py, models/options.py);
`config.py` only composes them into the run configuration and checks them across sections.
This module imports nothing from the package, so any floor may use it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated, floats are finite."""

    # allow_inf_nan=False: every float (also inside dicts such as reward_weights) must be finite;
    # `lr <= 0` is False for NaN, so range checks alone would let NaN and inf through.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
