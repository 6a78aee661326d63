"""`accelerate launch --cpu --num_processes N` starts N processes.

accelerate's CPU launcher runs ONE process and expects MPI (`--mpirun_hostfile`) to start the
others; without MPI the run silently has world size 1. It does mark the case: the child gets
ACCELERATE_USE_CPU=True and MASTER_ADDR/MASTER_PORT (set only when N > 1) but no RANK or MPI
variables. `cpu_processes_requested` recognises that child and reads N from the launcher's own
command line (or its --config_file); `relaunch_with_torchrun` then replaces the process with
torchrun starting N ranks, which accelerate joins with the gloo backend.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

RELAUNCHED = "DEEPVIDEO_R1_RELAUNCHED"
# set by torchrun / MPI: the process already is one of several ranks
_RANK_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "PMI_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "MV2_COMM_WORLD_SIZE",
)


def _option(argv: Sequence[str], *names: str) -> str | None:
    """Value of `--name V` or `--name=V` in `argv` (the last one wins, as argparse does)."""
    value = None
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
    return value


def launcher_processes(argv: Sequence[str]) -> int | None:
    """num_processes that an `accelerate launch` command line asks for (flag, then --config_file)."""
    flag = _option(argv, "--num_processes", "--num-processes")
    if flag is not None:
        return int(flag)
    config = _option(argv, "--config_file", "--config-file")
    if config is not None and Path(config).is_file():
        value = (yaml.safe_load(Path(config).read_text()) or {}).get("num_processes")
        return int(value) if value is not None else None
    return None


def _parent_argv() -> list[str]:
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def cpu_processes_requested(env: Mapping[str, str], parent_argv: Sequence[str]) -> int | None:
    """N > 1 when this process is accelerate's single CPU child of `--num_processes N`, else None."""
    if env.get("ACCELERATE_USE_CPU", "").lower() not in ("true", "1") or "MASTER_ADDR" not in env:
        return None
    if env.get(RELAUNCHED) or any(k in env for k in _RANK_VARIABLES):
        return None
    if not any("accelerate" in Path(a).name for a in parent_argv[:3]):
        return None
    n = launcher_processes(parent_argv)
    return n if n is not None and n > 1 else None


def torchrun_command(n: int, env: Mapping[str, str], args: Sequence[str]) -> list[str]:
    """`python -m torch.distributed.run` starting `n` local ranks of `python -m deepvideo_r1 ARGS`."""
    return [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}", "--nnodes=1",
        f"--master_addr={env.get('MASTER_ADDR', '127.0.0.1')}",
        f"--master_port={env.get('MASTER_PORT', '29500')}",
        "-m", "deepvideo_r1", *args,
    ]  # fmt: skip


def relaunch_with_torchrun(args: Sequence[str]) -> None:
    """Replace this process with torchrun when accelerate's CPU launcher asked for N > 1 processes."""
    n = cpu_processes_requested(os.environ, _parent_argv())
    if n is None:
        return
    env = {**os.environ, RELAUNCHED: "1"}
    print(f"accelerate --cpu started one process for --num_processes {n}; starting {n} with torchrun")
    sys.stdout.flush()
    os.execve(sys.executable, torchrun_command(n, env, args), env)
