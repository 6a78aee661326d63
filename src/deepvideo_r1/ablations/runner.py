"""Run ablation rows: one warm start per seed shared by every row, then each row × seed.

Layout of the output directory:

    DIR/settings.json                 base config, seeds, versions (a rerun must match it)
    DIR/warm/seed<S>/                 synth/, tiny_model/, sft_model/, eval_before/, cache/, warm.json
    DIR/runs/<key>/seed<S>/           one RL run (links to the warm start's files, its eval copied)
    DIR/runs/<key>/seed<S>.json       its result, written atomically when the run is done

<key> is a hash of the row's resolved config, so rows of different tables that resolve to the same
config share one run, and a finished result is never recomputed. Every run is a subprocess with
`threads` torch threads (`OMP_NUM_THREADS`, 1 by default), whatever `jobs` is, so accuracy does not
depend on `--jobs`; the thread count is part of the settings, since CPU results depend on it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from deepvideo_r1.ablations.layout import (
    COPIED,
    LINKED,
    SETTINGS_FILE,
    WARM_FILE,
    AblationError,
    BaseSpec,
    read_result,
    result_path,
    row_key,
    run_dir,
    seeded,
    warm_dir,
)
from deepvideo_r1.ablations.report import base_settings, collect_result, write_report
from deepvideo_r1.ablations.rows import Row, Table
from deepvideo_r1.artifacts import (
    PARENT_PID_ENV,
    DamagedFileError,
    DirectoryLock,
    differing_keys,
    read_json_object,
    write_json_atomic,
)
from deepvideo_r1.config import save_config

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One subprocess: the warm start of a seed (row None) or one row at one seed."""

    seed: int
    config_path: Path
    kind: str  # "warm" | "row"
    label: str
    result: Path | None = None
    """Where a row's result goes as soon as its run succeeds (None for a warm start)."""

    @property
    def log_path(self) -> Path:
        return self.config_path.parent / "log.txt"


def check_settings(out: Path, settings: dict) -> None:
    """Write DIR/settings.json, or check that an existing one records the same base config."""
    path = out / SETTINGS_FILE
    if path.exists():
        try:
            saved = read_json_object(path, required=("base_config",))
        except DamagedFileError as e:
            raise AblationError(f"{e}; delete it (and the results beside it) or use another --out") from e
        if saved.get("threads", 1) != settings["threads"]:
            raise AblationError(
                f"{out} holds ablations run with {saved.get('threads', 1)} thread(s) per run, not "
                f"{settings['threads']} (CPU results depend on it, see {path}); use another --out"
            )
        if saved.get("base_config") != settings["base_config"]:
            differ = list(differing_keys(saved.get("base_config", {}), settings["base_config"]))
            raise AblationError(
                f"{out} holds ablations run with other settings ({', '.join(differ[:5])} differ, "
                f"see {path}); use another --out or the same --config/--set"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def finished(path: Path) -> bool:
    """Whether the result at `path` exists and is intact; a damaged one is deleted with a warning
    (its run is finished again, which rewrites it)."""
    if not path.exists():
        return False
    try:
        read_result(path)
        return True
    except DamagedFileError as e:
        logger.warning("recomputing a damaged result: %s", e)
        path.unlink()
        return False


def prepare_warm(out: Path, base: BaseSpec, seed: int) -> Job | None:
    """The warm-start job of `seed`, or None when DIR/warm/seed<S>/warm.json exists."""
    where = warm_dir(out, seed)
    if (where / WARM_FILE).exists():
        return None
    where.mkdir(parents=True, exist_ok=True)
    path = save_config(seeded(base, seed, [], where), where / "warm_config.yaml")
    return Job(seed, path, "warm", f"warm start seed {seed}")


def prepare_row(out: Path, base: BaseSpec, key: str, row: Row, seed: int) -> Job | None:
    """The run of `row` at `seed` (its folder linked to the warm start), or None when finished."""
    if finished(result_path(out, key, seed)):
        return None
    where = run_dir(out, key, seed)
    where.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        source, link = warm_dir(out, seed) / name, where / name
        if source.exists() and not link.exists():
            link.symlink_to(os.path.relpath(source, where), target_is_directory=True)
    for name in COPIED:
        if (warm_dir(out, seed) / name).exists():
            shutil.copytree(warm_dir(out, seed) / name, where / name, dirs_exist_ok=True)
    cfg = seeded(base, seed, row.as_sets(base.load()), where)
    path = save_config(cfg, where / "row_config.yaml")
    return Job(seed, path, "row", f"{row.name} seed {seed}", result_path(out, key, seed))


def run_job(job: Job, threads: int = 1) -> str | None:
    """Run one job in a subprocess with `threads` torch threads; None on success, else one line
    naming the log."""
    n = str(threads)
    env = os.environ | {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "TOKENIZERS_PARALLELISM": "false"}
    env[PARENT_PID_ENV] = str(os.getpid())  # the worker stops when this process is gone
    cmd = [sys.executable, "-m", "deepvideo_r1.ablations.worker", job.kind, str(job.config_path)]
    logger.info("start: %s", job.label)
    with job.log_path.open("a") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode
    if code != 0:
        return f"{job.label} failed (exit {code}); see {job.log_path}"
    if job.result is not None:  # now, not after the others: an interrupted suite keeps it
        write_json_atomic(job.result, collect_result(job.config_path.parent))
    logger.info("done: %s", job.label)
    return None


def run_all(jobs: list[Job], parallel: int, threads: int = 1) -> list[str]:
    """Run jobs `parallel` at a time; return the failure lines (the others still run)."""
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        return [msg for msg in pool.map(lambda job: run_job(job, threads), jobs) if msg]


def unique_rows(tables: list[Table], base: BaseSpec) -> dict[str, Row]:
    """key -> first row with that resolved config (shared runs are made once)."""
    keys: dict[str, Row] = {}
    for table in tables:
        for row in table.rows:
            keys.setdefault(row_key(base, row), row)
    return keys


def run_ablations(
    base: BaseSpec,
    tables: list[Table],
    seeds: list[int],
    out: str | Path,
    jobs: int = 1,
    report_only: bool = False,
) -> dict:
    """Warm starts, then every missing row × seed, then ablations.json / .md and the plots.

    `report_only`: run nothing; rewrite the report from the results already in `out`.
    """
    out = Path(out)
    with DirectoryLock(out, "ablate"):  # two suites in one directory would run the same rows at once
        check_settings(out, base_settings(base))
        if report_only:
            return write_report(out, base, tables, seeds)
        return _run_missing(base, tables, seeds, out, jobs)


def _run_missing(base: BaseSpec, tables: list[Table], seeds: list[int], out: Path, jobs: int) -> dict:
    """Warm starts, then every missing row x seed, then the report (under the directory's lock)."""
    warm = [j for s in seeds if (j := prepare_warm(out, base, s)) is not None]
    failures = run_all(warm, jobs, base.threads)
    failed_seeds = {j.seed for j in warm if not (warm_dir(out, j.seed) / WARM_FILE).exists()}
    keys = unique_rows(tables, base)
    runs = [
        (key, job)
        for key, row in keys.items()
        for s in seeds
        if s not in failed_seeds and (job := prepare_row(out, base, key, row, s)) is not None
    ]
    runs.sort(key=lambda kj: (list(keys).index(kj[0]), kj[1].seed))  # row by row, seeds side by side
    failures += run_all([j for _, j in runs], jobs, base.threads)
    report = write_report(out, base, tables, seeds)
    if failures:
        raise AblationError("; ".join(failures))
    return report
