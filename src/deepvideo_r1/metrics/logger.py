"""Metrics: one JSON object per step in `<run_dir>/metrics.jsonl`, the trackers, and a progress bar.

Key names carry fixed prefixes (`loss/`, `adv/`, `reward/`, `difficulty/`, `perf/`, `eval/`), e.g.
`reward/mean`, `adv/vanishing_ratio_before`, `difficulty/increase`, `loss/kl`, `perf/grad_norm`.
Non-finite values are written as the strings "nan", "inf", "-inf" (strict JSON) and read back
as floats by `read_metrics`.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
SFT_METRICS_FILE = "sft_metrics.jsonl"
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
MAX_BAR_COLUMNS = 100
DEFAULT_PROGRESS_KEYS = ("reward/mean", "reward/accuracy_rate", "adv/vanishing_ratio_before", "loss/total")
SHORT_NAMES = {
    "reward/mean": "reward", "reward/accuracy_rate": "acc", "adv/vanishing_ratio_before": "vanish",
    "loss/total": "loss", "sft/loss": "loss",
}  # fmt: skip
"""Progress-line names, so the bar with its numbers fits MAX_BAR_COLUMNS."""


def _encode(value: Any) -> Any:
    """float(value) for numbers and 0-d tensors; non-finite floats as strings."""
    if isinstance(value, (str, bool)) or value is None:
        return value
    number = float(value)  # also accepts 0-d tensors and numpy scalars (one sync each)
    if math.isfinite(number):
        return int(number) if isinstance(value, int) else number
    return "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf")


def _decode(value: Any) -> Any:
    return _NON_FINITE.get(value, value) if isinstance(value, str) else value


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl (a run directory is accepted too); a torn last line is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):  # a crash mid-write leaves at most one torn line, at the end
                logger.warning("%s:%d: skipping a truncated last line", path, number)
                continue
            raise ValueError(f"{path}:{number}: not a JSON object: {e}") from e
        records.append({key: _decode(value) for key, value in record.items()})
    return records


def truncate_metrics(path: str | Path, last_step: int) -> int:
    """Drop records with step > last_step (they are redone after a resume); returns how many went."""
    path = Path(path)
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            step = json.loads(line).get("step")
        except json.JSONDecodeError:
            dropped += 1  # torn line from a crash
            continue
        if isinstance(step, int) and step > last_step:
            dropped += 1
        else:
            kept.append(line)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    tmp.replace(path)
    return dropped


class MetricsLogger:
    """Appends `{"step": s, "time": t, **metrics}` lines to `<run_dir>/<filename>`, mirrored to trackers.

    Only the main process should log: pass `enabled=False` on other ranks and every call is a no-op.
    `resume_step` (the step of the checkpoint resumed from) removes later records from the file, so
    a resumed run has no duplicate steps. `mirror(values, step)` (e.g. `Accelerator.log`) receives the
    finite numbers of each record at `step + step_offset` (one step axis across SFT and RL).
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        enabled: bool = True,
        resume_step: int | None = None,
        filename: str = METRICS_FILE,
        mirror: Callable[..., None] | None = None,
        step_offset: int = 0,
    ) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / filename
        self.mirror, self.step_offset = mirror, step_offset
        self._file = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            dropped = truncate_metrics(self.path, resume_step)
            if dropped:
                logger.info("resume at step %d: dropped %d later metric records", resume_step, dropped)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Write one record and flush it, so a crash loses nothing already logged."""
        if not self.enabled or self._file is None:
            return
        record = {"step": int(step), "time": round(time.time(), 3)}
        record.update({key: _encode(value) for key, value in metrics.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self.mirror is not None:
            numbers = {
                k: v for k, v in record.items()
                if k not in ("step", "time") and isinstance(v, (int, float)) and not isinstance(v, bool)
            }  # fmt: skip
            if numbers:
                self.mirror(numbers, step=int(step) + self.step_offset)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def format_metrics(metrics: Mapping[str, Any], keys: Sequence[str]) -> str:
    """'reward 1.234 | loss 0.012' for the keys present (SHORT_NAMES where there is one)."""
    parts = []
    for key in keys:
        if key in metrics and metrics[key] is not None:
            value = float(metrics[key])
            parts.append(f"{SHORT_NAMES.get(key, key)} {value:.4g}")
    return " | ".join(parts)


class TrainProgress:
    """Progress with ETA and a few key numbers: a rich bar on a TTY, else a log line every `log_every`.

    Use as a context manager; call `update(step, metrics)` after each optimizer step
    (`step` = steps done, counted from 0 over the whole run, so a resumed run starts at `initial`).
    """

    def __init__(
        self,
        total_steps: int,
        initial: int = 0,
        *,
        enabled: bool = True,
        log_every: int = 1,
        keys: Sequence[str] = DEFAULT_PROGRESS_KEYS,
        use_bar: bool | None = None,
        label: str = "rl",
    ) -> None:
        self.total, self.initial, self.enabled, self.label = total_steps, initial, enabled, label
        self.log_every, self.keys = max(1, log_every), tuple(keys)
        self.use_bar = enabled and (sys.stderr.isatty() if use_bar is None else use_bar)
        self._start = time.monotonic()
        self._progress = None
        self._task = None

    def __enter__(self) -> TrainProgress:
        if self.use_bar:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            width = min(MAX_BAR_COLUMNS, shutil.get_terminal_size().columns)
            self._progress = Progress(
                TextColumn(f"[bold]{self.label}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                console=Console(stderr=True, width=width),
            )  # fmt: skip
            self._progress.start()
            total, done = self.total, self.initial
            self._task = self._progress.add_task(self.label, total=total, completed=done, info="")
        self._start = time.monotonic()
        return self

    def eta_seconds(self, step: int) -> float | None:
        """Remaining time from the mean step time since start: (elapsed / done) * (total - step)."""
        done = step - self.initial
        if done <= 0:
            return None
        return (time.monotonic() - self._start) / done * max(0, self.total - step)

    def update(self, step: int, metrics: Mapping[str, Any] | None = None) -> None:
        if not self.enabled:
            return
        info = format_metrics(metrics or {}, self.keys)
        if self._progress is not None:
            self._progress.update(self._task, completed=step, info=info)
        elif step % self.log_every == 0 or step in (self.initial + 1, self.total):  # the first: it runs
            eta = self.eta_seconds(step)
            eta_text = f" | eta {_hms(eta)}" if eta is not None else ""
            info = f" | {info}" if info else ""
            logger.info("%s step %d/%d%s%s", self.label, step, self.total, info, eta_text)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _hms(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
