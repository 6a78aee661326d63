"""Glue for accelerate's sharding plugins, checked without a GPU: what a DeepSpeed or FSDP2 launch
changes (the micro-batch accelerate cannot infer, parameters replaced by prepare, weights that must
be gathered before decoding)."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

from accelerate import Accelerator
from accelerate.utils import DistributedType
from torch import nn

import deepvideo_r1.pipeline as pipeline
from deepvideo_r1.config import RunConfig, load_config
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.distributed.sharding import is_deepspeed, set_deepspeed_micro_batch
from deepvideo_r1.models.media import SampleMedia
from deepvideo_r1.presets import TINY_CPU
from deepvideo_r1.training.context import build_context
from helpers import tiny_policy


def _accelerator(kind: DistributedType) -> SimpleNamespace:
    config = {"train_micro_batch_size_per_gpu": "auto"}
    plugin = SimpleNamespace(deepspeed_config=config)
    return SimpleNamespace(distributed_type=kind, state=SimpleNamespace(deepspeed_plugin=plugin))


def test_deepspeed_gets_the_micro_batch_before_prepare():
    acc = _accelerator(DistributedType.DEEPSPEED)
    assert is_deepspeed(acc)
    set_deepspeed_micro_batch(acc, 32)  # accelerate would refuse "auto" with no dataloader
    assert acc.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == 32


def test_other_launches_are_left_alone():
    for kind in (DistributedType.NO, DistributedType.MULTI_GPU, DistributedType.FSDP):
        acc = _accelerator(kind)
        assert not is_deepspeed(acc)
        set_deepspeed_micro_batch(acc, 32)
        assert acc.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == "auto"


class ReplacingAccelerator(Accelerator):
    """Replaces the policy's parameters in prepare, as accelerate's FSDP2 plugin does (its DTensor
    parameters are new objects; it points the optimizer at them)."""

    def prepare(self, policy, optimizer):
        new = {}
        for module in policy.modules():
            for name, param in list(module._parameters.items()):
                if param is not None:
                    new[param] = nn.Parameter(param.detach().clone(), requires_grad=param.requires_grad)
                    module._parameters[name] = new[param]
        for group in optimizer.param_groups:
            group["params"] = [new[p] for p in group["params"]]
        return policy, optimizer


def test_clipping_gets_the_parameters_prepare_returns(tmp_path):
    """accelerate's FSDP clipping matches the list it is given against the model's own parameters:
    the trainer must hand it the prepared policy's, not those it collected before prepare."""
    model, adapter = tiny_policy(tmp_path)
    cfg = RunConfig.model_validate({"rollout": {"group_size": 2, "prompts_per_step": 1}})
    sample = Sample(id="s", question="?", problem_type="multiple_choice", answer="A", options=["a", "b"])
    media = lambda s: SampleMedia(None, None, None, None)  # noqa: E731
    ctx = build_context(cfg, ReplacingAccelerator(cpu=True), model, adapter, [sample], media)
    held = [p for p in ctx.policy.parameters() if p.requires_grad]
    assert len(ctx.trainable_parameters) == len(held)
    assert all(a is b for a, b in zip(ctx.trainable_parameters, held, strict=True))


def test_every_evaluation_decodes_with_gathered_weights(tmp_path, monkeypatch):
    """ZeRO-3 partitions the weights at load: the evaluation before RL must gather them as the
    evaluation after RL does (gathering is a no-op for whole weights, so a CPU run shows only
    whether each evaluation ran inside it)."""
    depth, inside = [0], {}
    real_gather, real_eval = pipeline.gathered_for_generation, pipeline.eval_stage

    @contextlib.contextmanager
    def counting_gather(module):
        depth[0] += 1
        try:
            with real_gather(module):
                yield
        finally:
            depth[0] -= 1

    def recording_eval(cfg, model, adapter, data, name, *args, **kwargs):
        inside[name] = depth[0] > 0
        return real_eval(cfg, model, adapter, data, name, *args, **kwargs)

    monkeypatch.setattr(pipeline, "gathered_for_generation", counting_gather)
    monkeypatch.setattr(pipeline, "eval_stage", recording_eval)
    sizes = "{text_hidden: 64, text_layers: 1, vision_hidden: 32, vision_depth: 1, vocab_size: 512}"
    pipeline.run_training(load_config(TINY_CPU, [
        "data.synth.n_train=2", "data.synth.n_eval=2", "sft.steps=0", "rollout.group_size=2",
        "rollout.prompts_per_step=1", "rollout.max_new_tokens=4", "train.micro_batch_size=2",
        "train.max_steps=1", "train.report_to=[]", f"model.tiny_sizes={sizes}",
        f"train.output_dir={tmp_path / 'run'}",
    ]))  # fmt: skip
    assert inside == {"eval_before": True, "eval_after": True}


def test_sft_clips_the_parameters_prepare_returns(tmp_path):
    from deepvideo_r1.config import SftConfig
    from deepvideo_r1.training.sft import run_sft

    model, adapter = tiny_policy(tmp_path)
    accelerator, clipped = ReplacingAccelerator(cpu=True), []
    accelerator.clip_grad_norm_ = lambda params, norm: clipped.append(list(params))
    sample = Sample(id="s", question="?", problem_type="multiple_choice", answer="A", options=["a", "b"])
    media = lambda s: SampleMedia(None, None, None, None)  # noqa: E731
    run_sft(model, adapter, [sample], media, SftConfig(steps=1, batch_size=1), accelerator, seed=0)
    held = [p for p in model.parameters() if p.requires_grad]  # prepare replaced them in place
    assert len(clipped) == 1 and all(a is b for a, b in zip(clipped[0], held, strict=True))
