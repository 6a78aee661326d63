"""Experiment trackers (TensorBoard, Weights & Biases, MLflow) through accelerate's tracker API.

`build_trackers` makes accelerate `GeneralTracker` objects for `train.report_to`, to be passed as
`Accelerator(log_with=...)`; `start_trackers` calls `accelerator.init_trackers` with the resolved
config flattened to `section.field` keys. accelerate logs on the main process only.

Where each tracker writes (nothing is uploaded unless the tracker's own settings say so):
- tensorboard: `<output_dir>/tb/<run_name>`.
- wandb: `wandb.init(project=train.project, name=run_name, dir=<output_dir>)`; `WANDB_MODE=offline`
  keeps the run in `<output_dir>/wandb/offline-run-*`.
- mlflow: experiment `train.project`, run `run_name`; the store is `MLFLOW_TRACKING_URI`, or the
  file store `<output_dir>/mlruns` when that variable is unset.

One step axis for the whole run: SFT step s is logged at s, RL step s at `sft.steps + s`, so every
tracker sees increasing steps (W&B drops steps that go back).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.tracking import GeneralTracker, MLflowTracker, TensorBoardTracker, WandBTracker

TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
"""Tracker name -> the module it needs (pip: tensorboard, wandb, mlflow-skinny or mlflow)."""
_PIP_NAMES = {"mlflow": "mlflow-skinny"}


class TrackerError(RuntimeError):
    """A tracker named in train.report_to cannot be used (its package is not installed)."""


def check_tracker_packages(names: Sequence[str]) -> None:
    """Raise TrackerError naming the first tracker whose package is not importable."""
    for name in names:
        module = TRACKER_PACKAGES[name]
        if importlib.util.find_spec(module) is None:
            pip = _PIP_NAMES.get(name, module)
            raise TrackerError(
                f"train.report_to has {name}, but the {module!r} package is not installed; "
                f"pip install {pip} (or deepvideo-r1[trackers]), or remove {name} from train.report_to"
            )


def _tensorboard(project: str, run_name: str, run_dir: Path) -> GeneralTracker:
    return TensorBoardTracker(run_name, run_dir / "tb")


def _wandb(project: str, run_name: str, run_dir: Path) -> GeneralTracker:
    return WandBTracker(project, name=run_name, dir=str(run_dir))


def _mlflow(project: str, run_name: str, run_dir: Path) -> GeneralTracker:
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        # MLflow 3 keeps its plain-file store behind this switch; it needs no database package
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        os.environ["MLFLOW_TRACKING_URI"] = (run_dir / "mlruns").resolve().as_uri()
    return MLflowTracker(experiment_name=project, run_name=run_name)


TRACKER_BUILDERS: dict[str, Callable[[str, str, Path], GeneralTracker]] = {
    "tensorboard": _tensorboard,
    "wandb": _wandb,
    "mlflow": _mlflow,
}


def build_trackers(
    names: Sequence[str], project: str, run_name: str, run_dir: str | Path
) -> list[GeneralTracker]:
    """accelerate trackers for `names` (checked to be installed), not started yet."""
    check_tracker_packages(names)
    return [TRACKER_BUILDERS[name](project, run_name, Path(run_dir)) for name in names]


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """{"algo": {"beta": 0.1}} -> {"algo.beta": 0.1}; None, lists and empty dicts become JSON text
    (TensorBoard's hparams take only scalars and strings)."""
    flat: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= flat_config(value, dotted + ".")
        elif isinstance(value, (bool, int, float, str)):
            flat[dotted] = value
        else:
            flat[dotted] = json.dumps(value)
    return flat


TRACKER_RUNS_FILE = "tracker_runs.json"
"""<output_dir>/tracker_runs.json: {"wandb": run id, "mlflow": run id} of the run's tracker runs."""


def _run_id(tracker: GeneralTracker) -> str | None:
    if isinstance(tracker, WandBTracker):
        return tracker.run.id
    if isinstance(tracker, MLflowTracker):
        return tracker.active_run.info.run_id
    return None


def _continue_run(tracker: GeneralTracker, run_id: str) -> None:
    """Make `tracker` (not started yet) log into its earlier run `run_id`."""
    if isinstance(tracker, WandBTracker):
        tracker.init_kwargs |= {"id": run_id, "resume": "allow"}
    elif isinstance(tracker, MLflowTracker):
        tracker.run_id = run_id  # mlflow.start_run(run_id=...) in start()


def start_trackers(
    accelerator: Accelerator,
    project: str,
    config: Mapping[str, Any],
    *,
    purge_step: int | None = None,
    run_dir: str | Path | None = None,
) -> None:
    """init_trackers with the resolved config (flattened) as the run's hyperparameters.

    `purge_step` (resuming from a checkpoint): TensorBoard drops events at and after it (the
    resumed run logs them again), and W&B and MLflow continue the runs recorded in
    `run_dir`/tracker_runs.json instead of starting new ones. The run ids are recorded there.
    """
    if not accelerator.log_with:
        return
    ids_file = Path(run_dir) / TRACKER_RUNS_FILE if run_dir is not None else None
    saved = json.loads(ids_file.read_text()) if ids_file and ids_file.exists() else {}
    for tracker in accelerator.log_with:
        if isinstance(tracker, TensorBoardTracker) and purge_step is not None:
            tracker.init_kwargs["purge_step"] = purge_step  # read by SummaryWriter in start()
        if purge_step is not None and tracker.name in saved:
            _continue_run(tracker, saved[tracker.name])
    accelerator.init_trackers(project, config=flat_config(config))
    ids = {t.name: run_id for t in accelerator.trackers if (run_id := _run_id(t)) is not None}
    if ids_file is not None and ids and accelerator.is_main_process:
        ids_file.parent.mkdir(parents=True, exist_ok=True)
        ids_file.write_text(json.dumps(saved | ids, indent=1))


def _markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (TensorBoard renders it in the Text tab); pipes and newlines escaped."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", "<br>")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _table_tensorboard(tracker: Any, name: str, columns, rows, step: int) -> None:
    tracker.writer.add_text(name, _markdown(columns, rows), global_step=step)
    tracker.writer.flush()


def _table_wandb(tracker: Any, name: str, columns, rows, step: int) -> None:
    tracker.log_table(name, columns=list(columns), data=[list(r) for r in rows], step=step)


def _table_mlflow(tracker: Any, name: str, columns, rows, step: int) -> None:
    import mlflow

    records = [dict(zip(columns, row, strict=True)) for row in rows]
    mlflow.log_text(json.dumps(records, indent=1), f"{name}/step_{step:07d}.json")


TABLE_WRITERS: dict[str, Callable[[Any, str, Sequence[str], Sequence[Sequence[Any]], int], None]] = {
    "tensorboard": _table_tensorboard,
    "wandb": _table_wandb,
    "mlflow": _table_mlflow,
}


def log_table(
    accelerator: Accelerator, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], step: int
) -> None:
    """A table to every started tracker: a W&B Table, a TensorBoard text table, an MLflow JSON artifact."""
    if not accelerator.is_main_process:
        return
    for tracker in accelerator.trackers:
        TABLE_WRITERS[tracker.name](tracker, name, columns, rows, step)
