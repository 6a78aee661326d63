"""FSDP2 on two CPU processes (gloo): train, save gathered weights, resume exactly, export.

The two-process runs use a content-free learnable reward (share of digits) so that rewards,
losses and gradients are non-trivial from the first step.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from deepvideo_r1.config import ConfigError, load_config
from deepvideo_r1.distributed.sharding import (
    gathered_for_generation,
    is_sharded,
    shard_units,
    strip_prefix,
)
from deepvideo_r1.metrics.logger import read_metrics as _read_all
from deepvideo_r1.presets import TINY_CPU
from helpers import tiny_policy


def read_metrics(path: Path) -> list[dict]:
    """The RL step records of a metrics.jsonl (held-out eval records left out)."""
    return [r for r in _read_all(path) if "reward/mean" in r]


FAST = [
    "data.synth.n_train=8",
    "data.synth.n_eval=2",
    "sft.steps=0",
    "rollout.prompts_per_step=1",
    "rollout.group_size=4",
    "train.micro_batch_size=4",
    "rollout.max_new_tokens=8",
    "train.eval_batch_size=2",
    "train.report_to=[]",
    "train.lr=1e-2",
    "algo.beta=0.1",
    "train.fsdp=true",
    "difficulty.trigger=all",  # augmented re-rollouts on some ranks only: must not hang
    "difficulty.window=2",
    "model.tiny_sizes.text_layers=1",
    "model.tiny_sizes.vision_depth=1",
]
DIGIT_REWARD = """
def digit_share(completion, sample):
    return sum(c.isdigit() for c in completion) / max(1, len(completion))
"""


def _command(tmp_path: Path, run: Path, max_steps: int) -> list[str]:
    reward = tmp_path / "digits.py"
    reward.write_text(DIGIT_REWARD)
    sets = [*FAST, f"algo.reward_weights={{'{reward}:digit_share': 1.0}}"]
    port = str(random.randint(20000, 40000))  # parallel test sessions must not share 29500
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", port, "-m", "deepvideo_r1", "train", "-o", str(run),
        "--max-steps", str(max_steps), "--save-every", "1",
        *[arg for item in sets for arg in ("--set", item)],
    ]  # fmt: skip


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize("dtype", ["auto", pytest.param("bfloat16", marks=pytest.mark.slow)])
def test_fsdp_trains_saves_gathered_weights_and_exports(tmp_path, dtype):
    """bfloat16: FSDP2's MixedPrecisionPolicy over fp32 master weights; checkpoints keep the fp32
    weights (exact resume), final_model/ is bf16."""
    run = tmp_path / "run"
    _run([*_command(tmp_path, run, max_steps=2), "--set", f"model.dtype={dtype}"])
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["perf/grad_norm"] > 0 and r["loss/total"] == r["loss/total"] for r in records)
    assert sum(r["difficulty/increase"] + r["difficulty/decrease"] for r in records) > 0
    ckpt = load_file(str(run / "checkpoints" / "checkpoint-2" / "model.safetensors"))
    from deepvideo_r1.models.adapter import load_policy

    model, _ = load_policy(run / "final_model", dtype=torch.bfloat16 if dtype == "bfloat16" else None)
    state = model.state_dict()
    assert set(state) == set(ckpt)  # every tensor, each whole (not one rank's shard)
    assert ckpt["lm_head.weight"].dtype == torch.float32  # trained: fp32 (master) weights
    for name, tensor in state.items():
        assert tensor.shape == ckpt[name].shape, name
        torch.testing.assert_close(tensor, ckpt[name].to(tensor.dtype), rtol=0, atol=0)


@pytest.mark.slow
def test_fsdp_killed_run_resumes_with_the_same_rewards(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    _run(_command(tmp_path, full, max_steps=3))
    proc = subprocess.Popen(
        _command(tmp_path, killed, max_steps=3),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    marker = killed / "checkpoints" / "checkpoint-2" / "COMPLETE"
    deadline = time.time() + 600
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
    proc.wait()
    assert marker.exists()
    _run(_command(tmp_path, killed, max_steps=3))
    a = read_metrics(full / "metrics.jsonl")
    b = read_metrics(killed / "metrics.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b, strict=True):
        assert ra["reward/mean"] == rb["reward/mean"], ra["step"]
        assert ra["loss/total"] == pytest.approx(rb["loss/total"], rel=1e-5, abs=1e-7)


def test_shard_units_are_decoder_layers_and_vision_blocks(tmp_path):
    model, _ = tiny_policy(tmp_path / "m", "qwen2.5-vl")
    names = {type(m).__name__ for m in shard_units(model)}
    assert names == set(model._no_split_modules)
    layers = model.config.text_config.num_hidden_layers
    blocks = model.config.vision_config.depth
    assert len(shard_units(model)) == layers + blocks


def test_unsharded_modules_pass_through():
    layer = torch.nn.Linear(2, 2)
    assert not is_sharded(layer)
    with gathered_for_generation(layer):
        out = layer(torch.ones(1, 2))
    assert out.shape == (1, 2)


def test_strip_prefix_refuses_foreign_keys():
    t = torch.zeros(1)
    assert strip_prefix({"model.a": t, "model.b.c": t}, "model.") == {"a": t, "b.c": t}
    with pytest.raises(KeyError, match="other"):
        strip_prefix({"model.a": t, "other": t}, "model.")


def test_fsdp_with_lora_is_a_config_error():
    with pytest.raises(ConfigError, match=r"train.fsdp"):
        load_config(TINY_CPU, ["train.fsdp=true", "model.lora.enabled=true"])


ROOT_AFTER_GENERATION = """
import os, sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.utils.checkpoint import checkpoint

from deepvideo_r1.distributed.sharding import gathered_for_generation

os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1])
dist.init_process_group("gloo", rank=0, world_size=1)


@dataclass
class Output:  # like the policy's: a dataclass, which FSDP cannot hook for backward
    logps: torch.Tensor


class Root(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner, self.head = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        # the head recomputed in backward, as the chunked log-probs do
        return Output(checkpoint(self.head, self.inner(x), use_reentrant=False))


root = Root()
fully_shard(root.inner)
fully_shard(root)
with gathered_for_generation(root):
    root.inner(torch.ones(1, 4))  # generation runs the inner model


def reshards_after_forward(module):
    (group,) = module._get_fsdp_state()._fsdp_param_groups
    return group.post_forward_mesh_info is not None


# FSDP2's defaults again: units reshard after forward, the root keeps its parameters for backward
assert reshards_after_forward(root.inner) and not reshards_after_forward(root)
root(torch.ones(2, 4)).logps.sum().backward()
assert root.head.weight.grad is not None
dist.destroy_process_group()
print("ok")
"""


def test_root_keeps_its_parameters_for_backward_after_generation(tmp_path):
    """Leaving generation used to set every FSDP2 module, the root too, to reshard after forward:
    the root's parameters were then sharded when backward recomputed the head (a GPU failure:
    "aten.mm.default got mixed torch.Tensor and DTensor")."""
    script = tmp_path / "root.py"
    script.write_text(ROOT_AFTER_GENERATION)
    port = str(random.randint(20000, 40000))
    done = subprocess.run([sys.executable, str(script), port], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]
