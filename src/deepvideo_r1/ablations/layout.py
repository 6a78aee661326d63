"""Where an ablation suite keeps its files, and the key that names a row's run.

Layout of the output directory:

    DIR/settings.json                 base config, seeds, versions (a rerun must match it)
    DIR/warm/seed<S>/                 synth/, tiny_model/, sft_model/, eval_before/, cache/, warm.json
    DIR/runs/<key>/seed<S>/           one RL run (links to the warm start's files, its eval copied)
    DIR/runs/<key>/seed<S>.json       its result, written atomically when the run is done

<key> is a hash of the row's resolved config (`row_key`), so rows of different tables that resolve
to the same config share one run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from deepvideo_r1.ablations.rows import Row
from deepvideo_r1.artifacts import DamagedFileError, read_json_object
from deepvideo_r1.config import RunConfig, load_config

SETTINGS_FILE = "settings.json"
WARM_FILE = "warm.json"
# What a row run takes from its seed's warm start (absent ones are skipped, e.g. no SFT stage):
# read-only folders are linked (the frame cache writes atomically); the SFT model's predictions
# are copied, since each run rewrites its eval_before/eval_report.json.
LINKED = ("synth", "tiny_model", "sft_model", "cache")
COPIED = ("eval_before",)


@dataclass(frozen=True)
class BaseSpec:
    """The settings every row shares: a YAML config (None = the tiny CPU preset), --set items and the
    torch threads of each run."""

    config: str | None
    sets: tuple[str, ...] = ()
    threads: int = 1

    def load(self, *extra: str) -> RunConfig:
        from deepvideo_r1.presets import TINY_CPU

        return load_config(self.config or TINY_CPU, [*self.sets, *extra])


def seeded(base: BaseSpec, seed: int, sets: Sequence[str], output_dir: Path) -> RunConfig:
    """The base config, run and data seed = `seed`, writing into `output_dir`, then `sets`."""
    own = [f"train.seed={seed}", f"data.synth.seed={seed}", f"train.output_dir={output_dir}"]
    return base.load(*own, *sets)


def row_key(base: BaseSpec, row: Row) -> str:
    """12 hex digits of the row's resolved config (seeds and directories left out)."""
    data = seeded(base, 0, row.as_sets(base.load()), Path("row")).model_dump(mode="json")
    data["train"].pop("output_dir")
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def warm_dir(out: Path, seed: int) -> Path:
    return out / "warm" / f"seed{seed}"


def run_dir(out: Path, key: str, seed: int) -> Path:
    return out / "runs" / key / f"seed{seed}"


def result_path(out: Path, key: str, seed: int) -> Path:
    return out / "runs" / key / f"seed{seed}.json"


class AblationError(RuntimeError):
    """A setting conflicts with an existing output directory, a result is damaged, or a run failed."""


RESULT_KEYS = ("accuracy", "per_task")
"""What the report reads from every row x seed result (ablations.report.collect_result writes them)."""


def read_result(path: Path) -> dict:
    """A finished row x seed result; DamagedFileError naming the file when it is damaged."""
    result = read_json_object(path, required=RESULT_KEYS)
    if not isinstance(result["accuracy"], (int, float)) or not isinstance(result["per_task"], dict):
        raise DamagedFileError(f"{path}: accuracy is not a number or per_task not an object")
    return result
