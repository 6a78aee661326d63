"""Two "nodes" of one process each (torchrun --nnodes 2, gloo on 127.0.0.1) train together, save a
checkpoint and final_model/, and resume across both nodes after losing the last checkpoint; and
docs/gpu.md's multi-node recipe (accelerate config with num_machines, SLURM example) is checked."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepvideo_r1.config import load_config
from deepvideo_r1.metrics.logger import read_metrics
from deepvideo_r1.pipeline import run_training
from deepvideo_r1.presets import TINY_CPU

REPO = Path(__file__).resolve().parents[1]
GPU_DOC = REPO / "docs" / "gpu.md"
FAST = [
    "data.synth.n_train=6", "data.synth.n_eval=4", "sft.steps=0", "rollout.group_size=2",
    "rollout.prompts_per_step=2", "rollout.max_new_tokens=8", "train.micro_batch_size=2",
    "train.max_steps=2", "train.save_every=1", "train.report_to=[]", "difficulty.window=4",
    "model.tiny_sizes={text_hidden: 64, text_layers: 2, vision_hidden: 32, vision_depth: 1, vocab_size: 512}",
]  # fmt: skip


def _two_nodes(run: Path, tmp_path: Path) -> list[subprocess.CompletedProcess]:
    """The same torchrun command on node 0 and node 1 (each its own process group of one)."""
    port = str(random.randint(20000, 40000))
    sets = [arg for item in FAST for arg in ("--set", item)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for rank in (0, 1):
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(rank),
            "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", port,
            "-m", "deepvideo_r1", "train", "-o", str(run), *sets,
            "--set", f"video.cache_dir={tmp_path / f'node{rank}_cache'}",  # per node: local disk
        ]  # fmt: skip
        log = open(tmp_path / f"node{rank}.log", "w")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    done = []
    for proc, log in procs:
        proc.wait(timeout=900)
        log.close()
        done.append(proc)
    for rank, proc in enumerate(done):
        assert proc.returncode == 0, (tmp_path / f"node{rank}.log").read_text()[-4000:]
    return done


@pytest.mark.slow  # two processes, three short runs: 8 minutes on 2 busy cores (load 20)
def test_two_nodes_train_save_and_resume_across_nodes(tmp_path):
    run = tmp_path / "run"
    seed = load_config(TINY_CPU, [*FAST, f"train.output_dir={run}", "train.max_steps=1"])
    run_training(seed)  # synthetic data and the tiny model, built once (as on shared storage)
    for name in ("checkpoints", "metrics.jsonl", "summary.json", "final_model", "eval_before", "eval_after"):
        path = run / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

    _two_nodes(run, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2 and summary["resumed_from"] is None
    assert (run / "checkpoints" / "checkpoint-2" / "COMPLETE").is_file()
    assert (run / "final_model" / "config.json").is_file()
    first = [r for r in read_metrics(run) if "reward/mean" in r]
    assert [r["step"] for r in first] == [1, 2]

    shutil.rmtree(run / "checkpoints" / "checkpoint-2")  # lost: both nodes resume from step 1
    shutil.rmtree(run / "final_model")
    _two_nodes(run, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from"] == "checkpoint-1" and summary["world_size"] == 2
    again = [r for r in read_metrics(run) if "reward/mean" in r]
    assert [r["step"] for r in again] == [1, 2]
    assert again[0]["reward/mean"] == first[0]["reward/mean"]  # step 1 kept, not redone
    assert again[1]["reward/mean"] == first[1]["reward/mean"]  # step 2 redone exactly
    assert (run / "final_model" / "config.json").is_file()


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_gpu_doc_multi_node_recipe_is_a_valid_accelerate_config_and_slurm_script():
    from accelerate.commands.launch import launch_command_parser

    text = GPU_DOC.read_text(encoding="utf-8")
    configs = [yaml.safe_load(b) for b in _blocks(text, "yaml")]
    multi = [c for c in configs if isinstance(c, dict) and c.get("num_machines", 1) > 1]
    assert multi, "docs/gpu.md needs an accelerate config with num_machines > 1"
    for cfg in multi:
        assert cfg["num_processes"] % cfg["num_machines"] == 0 and cfg["distributed_type"] == "MULTI_GPU"
        shipped = yaml.safe_load((REPO / "configs" / "accelerate" / "multi_node_8gpu.yaml").read_text())
        assert cfg == shipped  # the page shows the shipped file as it is
    (slurm,) = [b for b in _blocks(text, "bash") if "#SBATCH" in b]
    assert "#SBATCH --nodes=2" in slurm and "srun" in slurm
    joined = slurm.replace("\\\n", " ")
    launch = next(line for line in joined.splitlines() if "accelerate launch" in line)
    argv = launch.split("accelerate launch", 1)[1].split()
    values = {"$SLURM_NODEID": "1", "$MAIN": "10.0.0.1"}  # what SLURM and the script fill in
    args = launch_command_parser().parse_args([values.get(a, a) for a in argv])  # options accelerate knows
    assert args.config_file == "configs/accelerate/multi_node_8gpu.yaml" and args.module
    assert "--machine_rank" in argv and "video.cache_dir=" in launch  # per node: the frame cache
    assert "shared storage" in text and "--output-dir" in launch
