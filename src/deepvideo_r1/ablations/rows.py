"""Ablation rows: each is a name and the config overrides that make it, over one shared base config.

Every row of a table runs with the base settings (the preset plus the user's `--set`s) except
the keys its overrides name, so no method gets its own tuning. Rows that resolve to the same
config (Table 4's reg_grpo_da, Table 7's da_both, Table 8's levels_adaptive) are run once.

| table | baseline | rows |
|---|---|---|
| 4 | grpo | grpo, grpo_da, reg_grpo, reg_grpo_da |
| 5 | grpo | every registered policy loss, augmentation off |
| 7 | da_none | da_none, da_increase, da_decrease, da_both (Reg-GRPO) |
| 8 | levels_fixed | levels_fixed, levels_adaptive (Reg-GRPO + DA) |
| mechanism | reg_grpo_da | iterations, ratio normalisation, trigger, timing, clip saturation |
| iterations | grpo_it1 | grpo / reg_grpo at num_iterations 1, 2, 4, augmentation off |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from deepvideo_r1.algos import POLICY_LOSSES
from deepvideo_r1.config import RunConfig

# A value, or a function of the base config (a row that scales one setting by another).
Overrides = dict[str, object]


@dataclass(frozen=True)
class Row:
    """One ablation row: `overrides` are dotted config keys set on top of the base config."""

    name: str
    overrides: Overrides = field(default_factory=dict)

    def resolve(self, base: RunConfig) -> Overrides:
        """Concrete values: callables are evaluated on the base config."""
        return {k: v(base) if callable(v) else v for k, v in self.overrides.items()}

    def as_sets(self, base: RunConfig) -> list[str]:
        """The resolved overrides as `key=value` strings for load_config (YAML flow values)."""
        return [f"{key}={_yaml_value(value)}" for key, value in self.resolve(base).items()]


@dataclass(frozen=True)
class Table:
    """A table: its key ("4", "mechanism"), the baseline row's name and the rows in order."""

    key: str
    baseline: str
    rows: tuple[Row, ...]

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)


def _yaml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


REG = {"algo.loss": "reg_grpo"}
DA_ON = {"difficulty.enabled": True}
DA_OFF = {"difficulty.enabled": False}


def table_4() -> Table:
    """GRPO vs Reg-GRPO, each with and without difficulty-aware augmentation."""
    rows = (
        Row("grpo", {"algo.loss": "grpo", **DA_OFF}),
        Row("grpo_da", {"algo.loss": "grpo", **DA_ON}),
        Row("reg_grpo", {**REG, **DA_OFF}),
        Row("reg_grpo_da", {**REG, **DA_ON}),
    )
    return Table("4", "grpo", rows)


def table_5() -> Table:
    """Every loss in the registry, augmentation off; GRPO first (the baseline)."""
    names = ["grpo", *sorted(n for n in POLICY_LOSSES if n != "grpo")]
    return Table("5", "grpo", tuple(Row(n, {"algo.loss": n, **DA_OFF}) for n in names))


def table_7() -> Table:
    """Which augmentations may fire (Reg-GRPO): none, increase only, decrease only, both."""
    kinds = ("none", "increase", "decrease", "both")
    rows = tuple(Row(f"da_{k}", {**REG, **DA_ON, "difficulty.kinds": k}) for k in kinds)
    return Table("7", "da_none", rows)


# Table 8's fixed levels: the mean levels the adaptive row used on the shipped-warm-start preset
# (its logged `augment/decrease_level_mean` / `augment/increase_level_mean`; docs/ablations.md), so the
# two rows differ only in adaptivity. l_guide is a number of hint steps, hence an integer.
FIXED_GUIDE_LEVEL = 2
FIXED_PERTURB_LEVEL = 1.5


def table_8() -> Table:
    """Fixed levels (the adaptive row's mean levels) vs the adaptive level f(|dR|) (Reg-GRPO + both)."""
    both = {**REG, **DA_ON, "difficulty.kinds": "both"}
    fixed = {
        "difficulty.fixed_guide_level": FIXED_GUIDE_LEVEL,
        "difficulty.fixed_perturb_level": FIXED_PERTURB_LEVEL,
    }
    rows = (
        Row("levels_fixed", {**both, "difficulty.levels": "fixed", **fixed}),
        Row("levels_adaptive", {**both, "difficulty.levels": "adaptive"}),
    )
    return Table("8", "levels_fixed", rows)


def _twice_epsilon(base: RunConfig) -> float:
    return 2.0 * base.algo.epsilon


def table_mechanism() -> Table:
    """Beyond the paper: each row changes one mechanism of Reg-GRPO + DA from the baseline.

    `clip_unsaturated`: on-policy (num_iterations 1) every ratio is 1, so the Reg-GRPO gradient
    is (2·epsilon / std_eps) times a sequence-level policy gradient, about 2e4 times the
    gradient and far above max_grad_norm: every update is clipped to the same norm.
    std_eps = 2·epsilon makes the factor 1, the scale of GRPO's gradient, so clipping acts only
    on large gradients; the row shows whether the constant saturation matters.
    """
    base = {
        **REG,
        **DA_ON,
        "algo.num_iterations": 1,
        "algo.ratio_normalization": "std",
        "difficulty.trigger": "vanishing",
        "difficulty.timing": "same_step",
    }
    changes: tuple[tuple[str, Overrides], ...] = (
        ("reg_grpo_da", {}),
        ("iterations_4", {"algo.num_iterations": 4}),
        ("ratio_norm_none", {"algo.ratio_normalization": "none"}),
        ("trigger_all", {"difficulty.trigger": "all"}),
        ("timing_next_visit", {"difficulty.timing": "next_visit"}),
        ("clip_unsaturated", {"algo.std_eps": _twice_epsilon}),
    )
    return Table("mechanism", "reg_grpo_da", tuple(Row(n, {**base, **c}) for n, c in changes))


def table_iterations() -> Table:
    """GRPO vs Reg-GRPO at 1, 2 and 4 optimizer steps per rollout, augmentation off: only off-policy
    (num_iterations > 1) does GRPO's clip or Reg-GRPO's regression target act."""
    rows = tuple(
        Row(f"{loss}_it{n}", {"algo.loss": loss, **DA_OFF, "algo.num_iterations": n})
        for n in (1, 2, 4)
        for loss in ("grpo", "reg_grpo")
    )
    return Table("iterations", "grpo_it1", rows)


TABLE_BUILDERS: dict[str, Callable[[], Table]] = {
    "4": table_4,
    "5": table_5,
    "7": table_7,
    "8": table_8,
    "mechanism": table_mechanism,
    "iterations": table_iterations,
}
TABLE_NAMES: tuple[str, ...] = tuple(TABLE_BUILDERS)


class UnknownRowError(ValueError):
    """A table or row name given on the command line does not exist."""


def build_tables(names: list[str], rows: list[str] | None = None) -> list[Table]:
    """The named tables ("all" = every one), optionally cut to the named rows (baselines kept).

    A table keeps its baseline row whenever it keeps any row, so its differences stay defined.
    """
    keys = list(TABLE_NAMES) if "all" in names else names
    unknown = [k for k in keys if k not in TABLE_BUILDERS]
    if unknown:
        raise UnknownRowError(f"unknown table {unknown[0]!r}; use one of {', '.join(TABLE_NAMES)} or all")
    tables = [TABLE_BUILDERS[k]() for k in keys]
    if not rows:
        return tables
    known = {r.name for t in tables for r in t.rows}
    missing = [r for r in rows if r not in known]
    if missing:
        raise UnknownRowError(
            f"unknown row {missing[0]!r} in --rows; rows of these tables: {', '.join(sorted(known))}"
        )
    out = []
    for t in tables:
        kept = tuple(r for r in t.rows if r.name in rows or (r.name == t.baseline))
        if any(r.name in rows for r in t.rows):
            out.append(Table(t.key, t.baseline, kept))
    return out
