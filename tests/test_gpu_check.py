"""acceptance/gpu_check.py's CPU dry run: the same code paths as on a GPU, at test widths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "acceptance" / "gpu_check.py"


def _run(tmp_path: Path, parts: str) -> dict:
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--parts", parts, "--json", str(out)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=1800, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(out.read_text())


def test_step_part_reports_throughput_and_mfu(tmp_path):
    report = _run(tmp_path, "step")
    assert report["device"] == "cpu" and set(report["versions"]) >= {"torch", "transformers", "accelerate"}
    step = report["parts"]["step"]
    assert step["ok"], step.get("traceback")
    # 8 completions of 16 new tokens each (random weights never stop early: no EOS).
    assert step["new_tokens"] == 8 * 16 and step["group_size"] == 8
    # Shared prefix (the reported path): P + G·C tokens; the repeated prompt: G·(P + C).
    assert step["trained_tokens"] == step["prompt_tokens"] + 8 * 16
    assert step["paths"]["repeated_prompt"]["trained_tokens"] == 8 * (step["prompt_tokens"] + 16)
    expected = 6 * step["trainable_parameters"] * step["trained_tokens"] / step["update_s"]
    assert report["mfu_update"] == pytest.approx(expected / step["matmul_bf16_flops"], rel=1e-2)


@pytest.mark.slow
def test_every_part_passes_in_the_cpu_dry_run(tmp_path):
    report = _run(tmp_path, "rl,step,sharded")
    parts = report["parts"]
    assert parts["rl"]["ok"] and parts["rl"]["resume_rewards_equal"]
    assert parts["step"]["ok"]
    assert parts["sharded"]["fsdp2"]["ok"], parts["sharded"]["fsdp2"]
    assert parts["sharded"]["deepspeed_zero3"]["skipped"]
