"""bf16 compute over fp32 master weights: a bf16 model at lr 1e-6 moves as far as an fp32 one,
is saved in bf16, and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate import Accelerator
from safetensors import safe_open

from deepvideo_r1.config import RunConfig
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.models.adapter import load_policy
from deepvideo_r1.models.export import save_hf_model
from deepvideo_r1.models.media import SampleMedia
from deepvideo_r1.models.precision import master_weights
from deepvideo_r1.models.tiny import make_tiny_model
from deepvideo_r1.training.context import build_context
from deepvideo_r1.training.step import rl_step
from deepvideo_r1.training.trainer import restore, save
from helpers import TEST_SIZES, scripted_result

TEXTS = ["<think>up</think><answer>A</answer>", "<answer>B</answer>", "no tags", "<think>x</think>"]
LR = 1e-6


class ScriptedEngine:
    """Fixed completions (the same in every dtype), so runs differ only in their arithmetic."""

    def __init__(self, adapter) -> None:
        self.adapter = adapter

    def generate(self, batch, group_size, *, seed=None):
        texts = [TEXTS[(n + i) % len(TEXTS)] for n in range(batch.num_prompts) for i in range(group_size)]
        return scripted_result(self.adapter, texts, group_size)


def _samples() -> list[Sample]:
    return [
        Sample(id=f"s{i}", question=q, problem_type="multiple_choice", answer="B", options=["up", "down"])
        for i, q in enumerate(["Which way?", "Where does it go?", "Count them.", "Is it fast?"])
    ]


def _context(model_dir, out_dir, dtype: torch.dtype, master: bool):
    cfg = RunConfig.model_validate({
        "rollout": {"group_size": 2, "prompts_per_step": 2, "max_new_tokens": 16},
        "algo": {"loss": "grpo", "beta": 0.1},
        "difficulty": {"enabled": False},
        "train": {"micro_batch_size": 4, "max_grad_norm": 1e9, "lr": LR, "seed": 0,
                  "output_dir": str(out_dir), "fp32_master_weights": master, "report_to": []},
    })  # fmt: skip
    model, adapter = load_policy(model_dir, dtype=dtype)
    media = lambda s: SampleMedia(None, None, None, None)  # noqa: E731
    ctx = build_context(cfg, Accelerator(cpu=True), model, adapter, _samples(), media)
    ctx.engine = ScriptedEngine(adapter)
    return ctx


def _step_deltas(ctx) -> torch.Tensor:
    """Every trainable weight's change over one rl_step, flattened, in float32."""
    before = [p.detach().float().clone() for p in ctx.trainable_parameters]
    rl_step(ctx, 1)
    after = ctx.trainable_parameters
    return torch.cat([(p.detach().float() - b).flatten() for p, b in zip(after, before, strict=True)])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("m"), seed=0, **TEST_SIZES)


def test_bf16_model_with_master_weights_moves_like_fp32_adamw(model_dir, tmp_path):
    fp32 = _step_deltas(_context(model_dir, tmp_path / "a", torch.float32, master=True))
    master_ctx = _context(model_dir, tmp_path / "b", torch.bfloat16, master=True)
    assert {p.dtype for p in master_ctx.trainable_parameters} == {torch.float32}
    mixed = _step_deltas(master_ctx)
    plain = _step_deltas(_context(model_dir, tmp_path / "c", torch.bfloat16, master=False))
    # AdamW's first step moves each weight by lr·g/(|g| + eps) ≈ ±1e-6 wherever the gradient is not tiny
    # (rows of the embedding no prompt uses get no gradient and stay put)
    moved = (fp32.abs() > 0.5 * LR).float().mean()
    assert moved > 0.5
    assert (mixed.abs() > 0.5 * LR).float().mean() == pytest.approx(float(moved), abs=0.02)
    assert mixed.abs().mean() == pytest.approx(float(fp32.abs().mean()), rel=0.05)
    both = (fp32.abs() > 0.5 * LR) & (mixed.abs() > 0.5 * LR)
    assert (torch.sign(fp32[both]) == torch.sign(mixed[both])).float().mean() > 0.9  # bf16 grads, same signs
    # bf16 weights stepped directly: a 1e-6 step is below half a bf16 ulp of nearly every weight
    assert (plain != 0).float().mean() < 0.1


def test_final_model_is_saved_in_the_loaded_dtype(model_dir, tmp_path):
    ctx = _context(model_dir, tmp_path / "run", torch.bfloat16, master=True)
    assert master_weights(ctx.model).compute == torch.bfloat16
    rl_step(ctx, 1)
    out = save_hf_model(ctx.model, ctx.adapter.tokenizer, tmp_path / "final")
    with safe_open(out / "model.safetensors", "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    assert dtypes == {torch.bfloat16}
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    loaded, _ = load_policy(out, dtype=torch.bfloat16)
    trained = {k: v.to(torch.bfloat16) for k, v in ctx.model.state_dict().items()}
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, trained[k]), k


def test_resume_restores_the_fp32_master_weights_exactly(model_dir, tmp_path):
    a = _context(model_dir, tmp_path / "run", torch.bfloat16, master=True)
    rl_step(a, 1)
    path = save(a, 1)
    rl_step(a, 2)
    b = _context(model_dir, tmp_path / "run", torch.bfloat16, master=True)
    assert restore(b, path) == 1
    rl_step(b, 2)
    for p, q in zip(a.trainable_parameters, b.trainable_parameters, strict=True):
        assert p.dtype == torch.float32 and torch.equal(p, q)
