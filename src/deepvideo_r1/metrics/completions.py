"""Sample completions of an RL step: what the policy wrote, how it was scored and what was augmented.

Every `train.log_completions_every` steps the first `MAX_GROUPS` groups of the step (rows built by
`training.groups.completion_rows`) are written,
one row per completion, to `<output_dir>/completions.jsonl` and to the trackers as a table
("completions"). This is where reward hacking (a format reward earned with an empty answer) and
the augmentation (the hint text a decrease added, the level of an increase) can be read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COMPLETIONS_FILE = "completions.jsonl"
MAX_GROUPS = 2
TABLE_COLUMNS = (
    "step", "sample_id", "prompt", "gold", "completion",
    "reward", "advantage", "augmentation", "level", "hint",
)  # fmt: skip


def table_rows(rows: Sequence[dict]) -> list[list[Any]]:
    """Rows as lists in TABLE_COLUMNS order (numbers rounded to 4 digits for display)."""
    out = []
    for row in rows:
        cells = [row[c] for c in TABLE_COLUMNS]
        out.append([round(v, 4) if isinstance(v, float) else ("" if v is None else v) for v in cells])
    return out


def append_completions(run_dir: str | Path, rows: Sequence[dict]) -> Path:
    """Append rows to `<run_dir>/completions.jsonl` (one JSON object per line)."""
    path = Path(run_dir) / COMPLETIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return path


def truncate_completions(run_dir: str | Path, last_step: int) -> None:
    """Drop rows of steps after `last_step` (a resumed run logs them again)."""
    path = Path(run_dir) / COMPLETIONS_FILE
    if not path.exists():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines() if _step(line) <= last_step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return 1 << 62  # a torn line from a crash: dropped
