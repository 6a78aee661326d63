"""The two mechanisms tested directly (hint transfer, iterations), as resumable cells.

    python experiments/mechanisms.py run --out DIR [--seeds 0 1 2 3 4] [--hint-seeds 0 1 2]
    python experiments/mechanisms.py run --out DIR --only it:grpo_it4:2 hint:a1:0   # rerun cells
    python experiments/mechanisms.py aggregate --out DIR [--json experiments/results/mechanisms.json]
    python experiments/mechanisms.py cell ...    # one cell in this process (what `run` spawns)

Every cell is a subprocess with `--threads` torch threads (1 by default) and writes one result
file when it finishes; `run` skips cells whose file exists, so a killed run resumes. Cells run in
the order `plan` gives: section 3 seed by seed across its six rows, section 2's arms at seed 0
interleaved early. `aggregate` writes the results file from whatever has finished (a row or arm
lists only its finished seeds).

Section 3 (`iterations`): `grpo` and `reg_grpo`, augmentation off, `algo.num_iterations` 1, 2, 4,
on the shipped warm start with the preset's 40 RL steps: the ablation table `iterations`
(`deepvideo-r1 ablate --table iterations`), laid out as `deepvideo-r1 ablate` lays it out
(DIR/iterations/warm/seedS, DIR/iterations/runs/<key>/seedS.json), so
`deepvideo-r1 ablate --table iterations --seeds S --rows NAME -o DIR/iterations --threads 1`
reruns a cell. The warm start of a seed here skips the ablation runner's headroom table (greedy
held-out accuracy only); everything else is the runner's. Per step the run logs `loss/clip_frac`
(GRPO), `drift/outside_clip_frac`, `drift/kl_to_rollout` and `drift/adv_logratio_corr` (both losses).

Section 2 (`hint_transfer`): the shipped warm start rolls out G = 8 at the rollout temperature on
the first `--collect-prompts` training prompts of data seed 0 (all 800 by default); the all-wrong
groups are split by clip (alternately, in id order) into a train half and a test half. Each arm
is `--hint-steps` on-policy steps of the preset loss (Reg-GRPO, preset lr / warmup / beta) from
the same weights, 16 train-half clips a step (`--hint-prompts`), G = 8:
  a1 / a2  hinted re-rolls (partial-trace hint, l_guide 1 / 2)
  b        plain re-rolls of the same clips (rescue by resampling alone)
  c        placebo: hinted re-rolls (l_guide 2) with the advantages shuffled within each group
The seed varies the clip order and the sampling of the steps, not the collection or the split.
The same cells then run on a second warm start that has learned to read hints (`readwarm`: the
preset's SFT at seed 0 with half of its examples carrying a 1- or 2-step hint, trained once, never
tuned on the arms; its cells carry the suffix `:reading`). Whether it reads hints shows in its
arms' first-step accuracy (rolled out before any update: hinted for a1 / a2, plain for b).
Readouts, all under the CLEAN prompt: the teacher-forced log-probability (temperature 1) of the
gold target "<think>trace</think><answer>X</answer>" on the train half, the test half and the
first `--heldout-per-task` held-out clips of each task; then mean@16 accuracy (rollout
temperature) on the train and test halves (not on the held-out clips: 16 generations × 2,000
clips is beyond the 2-core budget). The arm `base` is the warm start itself, read out once.

Decision rule, fixed before running: on the clean-prompt log-probability of the test
half and of the held-out clips, per-seed change from `base`; if neither a1 nor a2 beats b AND c
beyond the seed spread (paired 95 % interval over seeds of a - b and a - c above 0), the hint's
gradient does not transfer to the clean prompt at this scale and the docs say the augmentation
cannot work here; if one does, the end-to-end null is dilution, and `difficulty.trigger: all` on
the shipped warm start is the one follow-up. The same rule is read on each warm start. Section 3:
Reg-GRPO and GRPO differ where the paired interval over seeds of reg_grpo_itN - grpo_itN excludes 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
RESULTS = HERE.parent / "results" / "mechanisms.json"
HINT_ARMS = ("a1", "a2", "b", "c")
DECISION_RULE = __doc__.split("Decision rule, fixed before running: ")[1].strip()


# ---- the plan -------------------------------------------------------------------------------------


def plan(seeds: list[int], hint_seeds: list[int]) -> list[tuple[str, ...]]:
    """Cells in run order: ("warm", S), ("it", ROW, S), ("collect",), ("hint", ARM, S), then the
    hint-reading warm start's ("readwarm",), ("collect", "reading"), ("hint", ARM, S, "reading").

    Seed by seed, the six iterations rows alternate with that seed's section-2 cells (at the
    first seed the collection and the `base` readout come first among them).
    """
    from deepvideo_r1.ablations.rows import table_iterations

    rows = [r.name for r in table_iterations().rows]
    cells: list[tuple[str, ...]] = []
    first = True
    for s in seeds:
        hints = [("hint", a, str(s)) for a in HINT_ARMS] if s in hint_seeds else []
        if first:
            hints = [("collect",), ("hint", "base", "0"), *hints]
            first = False
        cells.append(("warm", str(s)))
        for k, row in enumerate(rows):
            cells.append(("it", row, str(s)))
            if k < len(hints):
                cells.append(hints[k])
        cells += hints[len(rows) :]
    # hint seeds beyond the iteration seeds still run
    cells += [("hint", a, str(s)) for s in hint_seeds if s not in seeds for a in HINT_ARMS]
    cells += [("readwarm",), ("collect", "reading"), ("hint", "base", "0", "reading")]
    return cells + [("hint", a, str(s), "reading") for s in hint_seeds for a in HINT_ARMS]


def cell_name(cell: tuple[str, ...]) -> str:
    return ":".join(cell)


# ---- section 3: the iterations table through the ablation runner ------------------------------------


def base_spec(sets: list[str], threads: int):
    from deepvideo_r1.ablations.runner import BaseSpec

    return BaseSpec(None, tuple(sets), threads)


def iter_dir(out: Path) -> Path:
    return out / "iterations"


def warm_cell(out: Path, seed: int, sets: list[str], threads: int) -> None:
    """Data, the shipped warm start and its greedy held-out evaluation into DIR/iterations/warm/seedS."""
    from accelerate import Accelerator

    from deepvideo_r1.ablations.report import base_settings
    from deepvideo_r1.ablations.runner import WARM_FILE, check_settings, seeded, warm_dir, write_json_atomic
    from deepvideo_r1.config import save_config
    from deepvideo_r1.pipeline import eval_stage, load_model, prepare_data, warm_start_model

    base = base_spec(sets, threads)
    check_settings(iter_dir(out), base_settings(base))
    where = warm_dir(iter_dir(out), seed)
    where.mkdir(parents=True, exist_ok=True)
    cfg = seeded(base, seed, [], where)
    save_config(cfg, where / "warm_config.yaml")
    start = time.time()
    accelerator = Accelerator(cpu=True)
    data = prepare_data(cfg, accelerator)
    model, adapter = load_model(cfg, warm_start_model(cfg, data, accelerator), accelerator)
    report = eval_stage(cfg, model, adapter, data, "eval_before", accelerator)
    info = {"seed": seed, "eval_accuracy": report.accuracy if report else None, "headroom": None}
    info["wall_seconds"] = round(time.time() - start, 1)
    write_json_atomic(where / WARM_FILE, info)


def it_job(out: Path, row_name: str, seed: int, sets: list[str], threads: int):
    """The ablation runner's job for one iterations row at one seed (None when finished)."""
    from deepvideo_r1.ablations.rows import table_iterations
    from deepvideo_r1.ablations.runner import prepare_row, row_key

    base = base_spec(sets, threads)
    row = table_iterations().row(row_name)
    return prepare_row(iter_dir(out), base, row_key(base, row), row, seed)


def it_result(out: Path, row_name: str, seed: int, sets: list[str], threads: int) -> Path:
    from deepvideo_r1.ablations.rows import table_iterations
    from deepvideo_r1.ablations.runner import result_path, row_key

    base = base_spec(sets, threads)
    return result_path(iter_dir(out), row_key(base, table_iterations().row(row_name)), seed)


# ---- driver -----------------------------------------------------------------------------------------


def done_path(out: Path, cell: tuple[str, ...], args) -> Path:
    """The file whose existence marks `cell` finished."""
    kind = cell[0]
    if kind == "warm":
        from deepvideo_r1.ablations.runner import WARM_FILE, warm_dir

        return warm_dir(iter_dir(out), int(cell[1])) / WARM_FILE
    if kind == "it":
        return it_result(out, cell[1], int(cell[2]), args.set, args.threads)
    from hint_transfer import collect_path, hint_result, reading_warm_path

    if kind == "readwarm":
        return reading_warm_path(out)
    if kind == "collect":
        return collect_path(out, *cell[1:])
    return hint_result(out, cell[1], int(cell[2]), *cell[3:])


def spawn(cell: tuple[str, ...], args) -> int:
    """Run one cell in a subprocess with `threads` torch threads; its log in DIR/logs/."""
    n = str(args.threads)
    env = os.environ | {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "TOKENIZERS_PARALLELISM": "false"}
    logs = Path(args.out) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if cell[0] == "it":
        from deepvideo_r1.ablations.runner import WARM_FILE, run_job, warm_dir

        if not (warm_dir(iter_dir(Path(args.out)), int(cell[2])) / WARM_FILE).exists():
            return 2  # its seed's warm start failed: no run without it

        job = it_job(Path(args.out), cell[1], int(cell[2]), args.set, args.threads)
        if job is None:
            return 0
        return 0 if run_job(job, args.threads) is None else 1
    cmd = [sys.executable, str(HERE), "cell", *cell, "--out", str(args.out), "--threads", n]
    cmd += [f"--set={s}" for s in args.set] + hint_flags(args)
    with (logs / f"{cell_name(cell).replace(':', '_')}.log").open("a") as log:
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=False).returncode


def hint_flags(args) -> list[str]:
    return [
        f"--collect-prompts={args.collect_prompts}",
        f"--hint-steps={args.hint_steps}",
        f"--hint-prompts={args.hint_prompts}",
        f"--heldout-per-task={args.heldout_per_task}",
        f"--mean-k={args.mean_k}",
    ]


def run(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cells = [tuple(c.split(":")) for c in args.only] if args.only else plan(args.seeds, args.hint_seeds)
    timings = out / "cell_times.jsonl"
    for cell in cells:
        if done_path(out, cell, args).exists():
            continue
        start = time.time()
        code = spawn(cell, args)
        record = {"cell": cell_name(cell), "exit": code, "wall_seconds": round(time.time() - start, 1)}
        record["loadavg"] = os.getloadavg()
        record["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with timings.open("a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)


def cell(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    kind = args.cell[0]
    if kind == "warm":
        warm_cell(out, int(args.cell[1]), args.set, args.threads)
        return
    import hint_transfer

    if kind == "readwarm":
        hint_transfer.train_reading_warm(out, args)
    elif kind == "collect":
        hint_transfer.collect(out, args, *args.cell[1:])
    elif kind == "hint":
        hint_transfer.run_arm(out, args.cell[1], int(args.cell[2]), args, *args.cell[3:])
    else:
        raise SystemExit(
            f"unknown cell kind {kind!r}: use warm, readwarm, collect or hint (it cells run through run)"
        )


def main() -> None:
    sys.path.insert(0, str(HERE.parent))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "cell", "aggregate"):
        p = sub.add_parser(name)
        p.add_argument("--out", required=True, help="where the cells write (outside the repository)")
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--set", action="append", default=[], help="config override for every cell")
        p.add_argument("--collect-prompts", type=int, default=800)
        p.add_argument("--hint-steps", type=int, default=20)
        p.add_argument("--hint-prompts", type=int, default=16)
        p.add_argument("--heldout-per-task", type=int, default=400)
        p.add_argument("--mean-k", type=int, default=16)
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
        p.add_argument("--hint-seeds", type=int, nargs="+", default=[0, 1, 2])
        if name == "run":
            p.add_argument(
                "--only", nargs="+", help="cells to run, e.g. it:grpo_it4:2 hint:a1:0 warm:3 hint:b:1:reading"
            )
        if name == "cell":
            p.add_argument("cell", nargs="+")
        if name == "aggregate":
            p.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    elif args.command == "cell":
        cell(args)
    else:
        from mechanisms_report import aggregate

        aggregate(Path(args.out), args)


if __name__ == "__main__":
    main()
