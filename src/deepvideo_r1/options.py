"""The base of every configuration section; each package defines its own sections on it.

A package owns its options (video/options.py, difficulty/options.py, models/options.py);
`config.py` only composes them into the run configuration and checks them across sections.
This module imports nothing from the package, so any floor may use it.
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated, floats are finite."""

    # allow_inf_nan=False: every float (also inside dicts such as reward_weights) must be finite;
    # `lr <= 0` is False for NaN, so range checks alone would let NaN and inf through.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """`max_steps: true` would become 1 (pydantic's lax mode): a boolean is never a number here."""
        if _bool_as_number(cls.model_fields[info.field_name].annotation, value):
            raise ValueError("a boolean where a number is expected (true/false are not 1/0 here)")
        return value


def _leaf_types(annotation: Any) -> set:
    """The types an annotation is made of: `dict[str, float] | None` -> {str, float, NoneType}."""
    args = get_args(annotation)
    return {annotation} if not args else set().union(*(_leaf_types(a) for a in args))


def _bool_as_number(annotation: Any, value: Any) -> bool:
    """Whether `value` holds a bool where `annotation` (int, float, dict[str, float], ...) wants a number."""
    types = _leaf_types(annotation)
    if not types & {int, float} or bool in types:
        return False
    if isinstance(value, dict):
        return any(isinstance(v, bool) for v in value.values())
    if isinstance(value, list):
        return any(isinstance(v, bool) for v in value)
    return isinstance(value, bool)
