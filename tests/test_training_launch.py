"""accelerate's CPU launcher child is recognised and relaunched with torchrun (distributed/launch.py)."""

from __future__ import annotations

import sys

from deepvideo_r1.distributed.launch import (
    RELAUNCHED,
    cpu_processes_requested,
    launcher_processes,
    torchrun_command,
)

CHILD_ENV = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29511"}
LAUNCHER = ["/usr/bin/python", "/usr/bin/accelerate", "launch", "--cpu", "--num_processes", "2", "-m", "x"]


def test_launcher_processes_reads_flag_forms_and_config(tmp_path):
    assert launcher_processes(["accelerate", "launch", "--num_processes", "3"]) == 3
    assert launcher_processes(["accelerate", "launch", "--num-processes=4"]) == 4
    cfg = tmp_path / "cpu.yaml"
    cfg.write_text("distributed_type: MULTI_CPU\nuse_cpu: true\nnum_processes: 2\n")
    assert launcher_processes(["accelerate", "launch", "--config_file", str(cfg)]) == 2
    # the flag wins over the file, as in accelerate
    assert (
        launcher_processes(["accelerate", "launch", "--config_file", str(cfg), "--num_processes", "1"]) == 1
    )
    assert launcher_processes(["accelerate", "launch", "--cpu"]) is None


def test_cpu_child_of_multi_process_launch_is_recognised():
    assert cpu_processes_requested(CHILD_ENV, LAUNCHER) == 2
    module_form = ["/usr/bin/python", "-m", "accelerate.commands.launch", "--cpu", "--num_processes=3"]
    assert cpu_processes_requested(CHILD_ENV, module_form) == 3


def test_other_processes_are_left_alone():
    assert (
        cpu_processes_requested({**CHILD_ENV, "RANK": "0", "WORLD_SIZE": "2"}, LAUNCHER) is None
    )  # torchrun
    assert cpu_processes_requested({**CHILD_ENV, "PMI_SIZE": "2"}, LAUNCHER) is None  # mpirun
    assert cpu_processes_requested({**CHILD_ENV, RELAUNCHED: "1"}, LAUNCHER) is None  # no loop
    no_master = {k: v for k, v in CHILD_ENV.items() if k != "MASTER_ADDR"}
    assert cpu_processes_requested(no_master, LAUNCHER) is None  # accelerate set N = 1
    assert cpu_processes_requested({**CHILD_ENV, "ACCELERATE_USE_CPU": "False"}, LAUNCHER) is None
    assert cpu_processes_requested(CHILD_ENV, ["/bin/bash", "run.sh", "--num_processes", "2"]) is None
    one = [*LAUNCHER[:-3], "1", "-m", "x"]
    assert cpu_processes_requested(CHILD_ENV, one) is None


def test_torchrun_command_keeps_master_and_arguments():
    args = ["train", "-o", "runs/x", "--set", "train.max_steps=2"]
    cmd = torchrun_command(2, CHILD_ENV, args)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc_per_node=2" in cmd and "--master_port=29511" in cmd and "--master_addr=127.0.0.1" in cmd
    assert cmd[-7:] == ["-m", "deepvideo_r1", *args]
