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

Trackers never cost a run its outputs: metric names are mapped to names every tracker accepts
(`tracker_name`: `eval/accuracy/task=count` -> `eval/accuracy_task_count`; metrics.jsonl keeps
the original names), a resumed MLflow run is never sent a changed param (MLflow refuses that:
the new values go in as `resume.<key>` tags), and any tracker error is a warning, after which the
run goes on (a tracker that cannot start logs nothing more).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.tracking import GeneralTracker, MLflowTracker, TensorBoardTracker, WandBTracker

from deepvideo_r1.artifacts import write_text_atomic

logger = logging.getLogger(__name__)

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


_INVALID = re.compile(r"[^A-Za-z0-9_]")


def tracker_name(key: str) -> str:
    """A metric name every tracker accepts: `group/name`, each of letters, digits and underscores,
    not starting with a digit (W&B's rule, the strictest; MLflow refuses `=` and `..`, TensorBoard
    rewrites other characters). One `/` only, the group W&B and TensorBoard show: MLflow's file
    store keeps `eval/accuracy` as a file, so `eval/accuracy/task_count` could not be a file below it.
    `eval/accuracy/task=count` -> `eval/accuracy_task_count`."""
    parts = [_INVALID.sub("_", part) for part in key.split("/") if part]
    parts = [f"_{part}" if part[0].isdigit() else part for part in parts]
    if len(parts) > 2:
        parts = [parts[0], "_".join(parts[1:])]
    return "/".join(parts) or "_"


class _Guarded:
    """Mixin for an accelerate tracker: names mapped by `tracker_name`, every failure a warning.

    A tracker that fails to start is switched off (it has no run to log to); a failed log or
    config call is reported once per kind and the tracker keeps trying.
    """

    _off = False
    _warned: set[str]

    def _guard(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._off:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # a tracker's error (network, store, its own rules) must not end the run
            warned = self.__dict__.setdefault("_warned", set())
            if what not in warned:
                warned.add(what)
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                logger.warning(
                    "tracker %s: %s failed (%s: %s); the run goes on without it",
                    self.name, what, type(e).__name__, first,
                )  # fmt: skip
            if what == "start":
                self._off = True
            return None

    def start(self) -> None:
        self._guard("start", super().start)

    def store_init_configuration(self, values: dict) -> None:
        self._guard("storing the config", super().store_init_configuration, values)

    def log(self, values: dict, step: int | None = None, **kwargs: Any) -> None:
        named = {tracker_name(k): v for k, v in values.items()}
        self._guard("logging", super().log, named, step=step, **kwargs)

    def finish(self) -> None:
        self._guard("finish", super().finish)


class GuardedTensorBoard(_Guarded, TensorBoardTracker):
    """TensorBoardTracker behind `_Guarded`."""


class GuardedWandB(_Guarded, WandBTracker):
    """WandBTracker behind `_Guarded`."""


class GuardedMLflow(_Guarded, MLflowTracker):
    """MLflowTracker behind `_Guarded`; a continued run gets only the params it lacks."""

    continued = False

    def store_init_configuration(self, values: dict) -> None:
        if self.continued:
            self._guard("storing the config", _store_resumed_params, values)
        else:
            super().store_init_configuration(values)


def _store_resumed_params(values: dict) -> None:
    """MLflow refuses a param whose value changed: log the params the run lacks, and the changed
    ones as `resume.<key>` tags (the first values stay the params)."""
    import mlflow

    run = mlflow.active_run()
    logged = mlflow.get_run(run.info.run_id).data.params
    limit = mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
    fresh = {k: v for k, v in values.items() if k not in logged and len(str(v)) <= limit}
    changed = {
        f"resume.{k}": str(v)[:limit] for k, v in values.items() if k in logged and logged[k] != str(v)
    }
    batch = mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH
    items = list(fresh.items())
    for i in range(0, len(items), batch):
        mlflow.log_params(dict(items[i : i + batch]))
    if changed:
        mlflow.set_tags(changed)


def _tensorboard(project: str, run_name: str, run_dir: Path) -> GeneralTracker:
    return GuardedTensorBoard(run_name, run_dir / "tb")


def _wandb(project: str, run_name: str, run_dir: Path) -> GeneralTracker:
    return GuardedWandB(project, name=run_name, dir=str(run_dir))


def _mlflow(project: str, run_name: str, run_dir: Path) -> GeneralTracker:
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        # MLflow 3 keeps its plain-file store behind this switch; it needs no database package
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        os.environ["MLFLOW_TRACKING_URI"] = (run_dir / "mlruns").resolve().as_uri()
    return GuardedMLflow(experiment_name=project, run_name=run_name)


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


_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def read_run_ids(path: Path) -> dict[str, str]:
    """The recorded tracker run ids of `path` (tracker_runs.json); TrackerError naming the file when
    it is not a {tracker: run id} object of plain ids."""
    if not path.exists():
        return {}
    fix = f"delete {path} to start new tracker runs"
    try:
        ids = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TrackerError(f"{path} is not valid JSON ({e}); {fix}") from e
    if not isinstance(ids, dict):
        raise TrackerError(f"{path} holds a {type(ids).__name__}, not a {{tracker: run id}} object; {fix}")
    for name, run_id in ids.items():
        if name not in TRACKER_PACKAGES or not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise TrackerError(f"{path}: {name!r}: {run_id!r} is not a tracker run id; {fix}")
    return ids


def _run_id(tracker: GeneralTracker) -> str | None:
    if getattr(tracker, "_off", False):
        return None
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
        tracker.continued = True


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
    saved = read_run_ids(ids_file) if ids_file is not None else {}
    for tracker in accelerator.log_with:
        if isinstance(tracker, TensorBoardTracker) and purge_step is not None:
            tracker.init_kwargs["purge_step"] = purge_step  # read by SummaryWriter in start()
        if purge_step is not None and tracker.name in saved:
            _continue_run(tracker, saved[tracker.name])
    accelerator.init_trackers(project, config=flat_config(config))
    ids = {t.name: run_id for t in accelerator.trackers if (run_id := _run_id(t)) is not None}
    if ids_file is not None and ids and accelerator.is_main_process:
        ids_file.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(ids_file, json.dumps(saved | ids, indent=1))


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
        write = TABLE_WRITERS[tracker.name]
        if isinstance(tracker, _Guarded):
            tracker._guard("logging a table", write, tracker, name, columns, rows, step)
        else:
            write(tracker, name, columns, rows, step)
