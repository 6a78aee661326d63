"""DeepSpeed glue that runs without DeepSpeed: the micro-batch accelerate cannot infer."""

from __future__ import annotations

from types import SimpleNamespace

from accelerate.utils import DistributedType

from deepvideo_r1.distributed.sharding import is_deepspeed, set_deepspeed_micro_batch


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
