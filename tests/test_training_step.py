"""rl_step on a tiny model with a scripted rollout engine: gradient accumulation over rollout
batches equals one batch of all their prompts, with one optimizer step per iteration."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator

from deepvideo_r1.config import RunConfig
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.models.adapter import load_policy
from deepvideo_r1.models.media import SampleMedia
from deepvideo_r1.models.tiny import make_tiny_model
from deepvideo_r1.training.context import build_context
from deepvideo_r1.training.step import rl_step
from helpers import TEST_SIZES, scripted_result

TEXTS = [
    "<think>up</think><answer>A</answer>",
    "<think>it moves down and stays</think><answer>B</answer>",
    "no tags B",
    "<answer>A</answer>",
]


class PromptKeyedEngine:
    """G completions per prompt chosen by the prompt's tokens (not by call order or seed), so the
    same sample gets the same completions whatever batch it is rolled out in."""

    def __init__(self, adapter) -> None:
        self.adapter, self.calls = adapter, []

    def generate(self, batch, group_size, *, seed=None):
        self.calls.append(batch.num_prompts)
        texts = []
        for row, keep in zip(batch.input_ids, batch.attention_mask.bool(), strict=True):
            key = int(row[keep].sum())  # the prompt's own tokens, not its left padding
            texts += [TEXTS[(key + i) % len(TEXTS)] for i in range(group_size)]
        return scripted_result(self.adapter, texts, group_size)


def _samples() -> list[Sample]:
    questions = ["Which way?", "Where does the red square go?", "Count them.", "Is it fast?"]
    return [
        Sample(id=f"s{i}", question=q, problem_type="multiple_choice", answer="B", options=["up", "down"])
        for i, q in enumerate(questions)
    ]


def _gradients(model_dir, loss: str, prompts: int, accumulate: int, micro: int, iterations: int):
    """Gradients seen by each optimizer step of one rl_step, and the rollout batch sizes."""
    cfg = RunConfig.model_validate({
        "rollout": {"group_size": 2, "prompts_per_step": prompts, "max_new_tokens": 16},
        "algo": {"loss": loss, "beta": 0.1, "num_iterations": iterations},
        "difficulty": {"enabled": False},
        "train": {"micro_batch_size": micro, "grad_accumulation": accumulate, "max_grad_norm": 1e9,
                  "lr": 1e-2, "seed": 0},
    })  # fmt: skip
    model, adapter = load_policy(model_dir)
    media = lambda s: SampleMedia(None, None, None, None)  # noqa: E731
    ctx = build_context(cfg, Accelerator(cpu=True), model, adapter, _samples(), media)
    ctx.engine = PromptKeyedEngine(adapter)
    seen, step = [], ctx.optimizer.step

    def recording_step(*args, **kwargs):
        seen.append([p.grad.clone() for p in ctx.trainable_parameters])
        return step(*args, **kwargs)

    ctx.optimizer.step = recording_step
    backward, syncs = ctx.accelerator.backward, []

    def recording_backward(loss, **kwargs):
        syncs.append(ctx.accelerator.sync_gradients)  # DeepSpeed's engine steps only where True
        return backward(loss, **kwargs)

    ctx.accelerator.backward = recording_backward
    metrics = rl_step(ctx, 1).metrics
    assert syncs == ([False] * (len(syncs) // iterations - 1) + [True]) * iterations
    assert ctx.accelerator.sync_gradients  # left as accelerate expects outside the loop
    return seen, ctx.engine.calls, metrics


@pytest.mark.parametrize(("loss", "iterations"), [("dapo", 1), ("grpo", 2)])
def test_two_accumulated_rollout_batches_equal_one_batch_of_both(tmp_path, loss, iterations):
    model_dir = make_tiny_model(tmp_path / "m", seed=0, **TEST_SIZES)
    accumulated, calls, metrics = _gradients(model_dir, loss, 2, 2, micro=2, iterations=iterations)
    whole, whole_calls, whole_metrics = _gradients(model_dir, loss, 4, 1, micro=8, iterations=iterations)
    assert calls == [2, 2] and whole_calls == [4]  # rolled out one batch of N prompts at a time
    assert len(accumulated) == len(whole) == iterations  # one optimizer step per iteration
    assert any(float(g.abs().sum()) > 0 for g in whole[0])
    for step_grads, whole_grads in zip(accumulated, whole, strict=True):
        for g, w in zip(step_grads, whole_grads, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)  # fp32 sums in other orders
    # the logged loss is the whole batch's, however it was split and accumulated
    assert metrics["loss/total"] == pytest.approx(whole_metrics["loss/total"], rel=1e-4, abs=1e-7)
    assert metrics["reward/mean"] == whole_metrics["reward/mean"]
