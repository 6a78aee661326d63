"""Checkpoints: exact resume, atomicity, pruning, RNG restore, pickle-free state, LoRA adapters."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from deepvideo_r1.checkpoints.checkpoint import (
    ADAPTER_FILE,
    COMPLETE_MARKER,
    MODEL_FILE,
    CheckpointError,
    capture_rng_state,
    find_latest_checkpoint,
    flatten_state,
    latest_intact_checkpoint,
    list_checkpoints,
    load_checkpoint,
    model_state_for_saving,
    restore_rng_state,
    save_checkpoint,
    unflatten_state,
)
from deepvideo_r1.checkpoints.integrity import NonFiniteWeightsError, remove_partial_checkpoints
from deepvideo_r1.config import RunConfig, load_config


def _setup(seed: int):
    """Small model with dropout (consumes torch RNG) + AdamW + LambdaLR warmup."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Dropout(0.3), nn.Tanh(), nn.Linear(16, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 3))
    return model, opt, sched


def _train(model, opt, sched, steps: int) -> None:
    for _ in range(steps):
        # data and dropout masks are drawn from the global RNGs, so they must be restored too
        x = torch.randn(8, 6) + float(np.random.rand()) + random.random()
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def test_resume_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    reference, opt, sched = _setup(1)
    rng0 = capture_rng_state()
    _train(reference, opt, sched, 6)

    restore_rng_state(rng0)
    model, opt, sched = _setup(1)
    _train(model, opt, sched, 3)
    path = save_checkpoint(
        tmp_path, 3, model_state=model.state_dict(), optimizer=opt, scheduler=sched,
        trainer_state={"buffer": [0.5, 1.5], "data_position": 24},
    )  # fmt: skip
    _train(model, opt, sched, 2)  # diverge the process state after saving

    fresh, opt2, sched2 = _setup(99)  # different init: everything must come from the checkpoint
    state = load_checkpoint(path, fresh, opt2, sched2)
    assert state == {"step": 3, "buffer": [0.5, 1.5], "data_position": 24}
    assert sched2.get_last_lr() == pytest.approx([1e-2])  # lambda(3) = min(1, 4/3) = 1
    _train(fresh, opt2, sched2, 3)
    for a, b in zip(reference.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_files_and_no_pickle(tmp_path):
    model, opt, sched = _setup(0)
    _train(model, opt, sched, 1)
    cfg = RunConfig()
    path = save_checkpoint(
        tmp_path, 7, model_state=model.state_dict(), optimizer=opt, scheduler=sched, config=cfg
    )
    names = {p.name for p in path.iterdir()}
    assert names == {
        MODEL_FILE, "optimizer.json", "optimizer.safetensors", "scheduler.json", "rng.json",
        "rng.safetensors", "trainer_state.json", "config.yaml", COMPLETE_MARKER,
    }  # fmt: skip
    marker = json.loads((path / COMPLETE_MARKER).read_text())
    assert {k: marker[k] for k in ("step", "weights", "format")} == {
        "step": 7,
        "weights": MODEL_FILE,
        "format": 2,
    }
    # the marker vouches for every other file: its size and sha256
    assert set(marker["files"]) == names - {COMPLETE_MARKER}
    config_bytes = (path / "config.yaml").read_bytes()
    assert marker["files"]["config.yaml"] == {
        "size": len(config_bytes), "sha256": hashlib.sha256(config_bytes).hexdigest()
    }  # fmt: skip
    assert load_config(path / "config.yaml") == cfg
    for p in path.glob("*.json"):  # every non-weight file is plain JSON or safetensors: no pickle
        json.loads(p.read_text())
    for p in path.glob("*.safetensors"):
        assert all(isinstance(t, torch.Tensor) for t in load_file(str(p)).values())
    assert not list(tmp_path.glob("*.tmp-*"))


def test_flatten_roundtrip_keeps_types():
    obj = {"state": {0: {"step": torch.tensor(3.0), "m": torch.ones(2)}}, "g": [{"betas": (0.9, 0.95)}],
           "a": np.arange(3, dtype=np.uint32), "n": None, "f": float("nan")}  # fmt: skip
    tensors: dict = {}
    tree = json.loads(json.dumps(flatten_state(obj, tensors)))
    back = unflatten_state(tree, tensors)
    assert list(back["state"]) == [0]  # int key survives JSON
    assert torch.equal(back["state"][0]["m"], torch.ones(2))
    assert back["g"][0]["betas"] == (0.9, 0.95) and isinstance(back["g"][0]["betas"], tuple)
    assert back["a"].dtype == np.uint32 and back["a"].tolist() == [0, 1, 2]
    assert back["n"] is None and np.isnan(back["f"])
    with pytest.raises(TypeError, match=r"s\.bad"):
        flatten_state({"bad": object()}, {})


def test_incomplete_and_tmp_dirs_are_ignored(tmp_path):
    model = nn.Linear(2, 2)
    save_checkpoint(tmp_path, 2, model_state=model.state_dict())
    (tmp_path / "checkpoint-9.tmp-12345").mkdir()  # crashed mid-write
    (tmp_path / "checkpoint-9.tmp-12345" / COMPLETE_MARKER).write_text("{}")
    (tmp_path / "checkpoint-5").mkdir()  # renamed but marker missing (foreign/corrupt)
    assert find_latest_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    with pytest.raises(CheckpointError, match="checkpoint-5"):
        load_checkpoint(tmp_path / "checkpoint-5", model)
    assert find_latest_checkpoint(tmp_path / "missing") is None


def test_prune_keeps_last_k_and_resave_same_step(tmp_path):
    model = nn.Linear(2, 2)
    for step in (1, 2, 10, 3):  # numeric order, not lexical: 10 is the newest
        save_checkpoint(tmp_path, step, model_state=model.state_dict(), keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-3", "checkpoint-10"]
    with torch.no_grad():
        model.weight.fill_(4.0)
    save_checkpoint(tmp_path, 10, model_state=model.state_dict(), trainer_state={"x": 1})
    other = nn.Linear(2, 2)
    assert load_checkpoint(tmp_path / "checkpoint-10", other)["x"] == 1
    assert torch.equal(other.weight, torch.full((2, 2), 4.0))


def test_rng_restore_repeats_draws():
    state = capture_rng_state()
    first = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    tensors: dict = {}
    tree = json.loads(json.dumps(flatten_state([state], tensors)))  # through the on-disk encoding
    restore_rng_state(unflatten_state(tree, tensors)[0])
    assert (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()) == first


def test_tied_weights_save_and_mismatch_error(tmp_path):
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False))
    model[1].weight = model[0].weight  # tied: shared storage
    path = save_checkpoint(tmp_path, 1, model_state=model.state_dict())
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(path, nn.Linear(3, 3))


def test_lora_adapter_only(tmp_path):
    from peft import LoraConfig, get_peft_model

    base = nn.Sequential()
    base.add_module("proj", nn.Linear(4, 4))
    torch.manual_seed(0)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["proj"], init_lora_weights=False))
    state = model_state_for_saving(peft_model, adapters_only=True)
    assert state and all("lora_" in k for k in state)
    path = save_checkpoint(tmp_path, 1, model_state=state, adapters_only=True)
    assert (path / ADAPTER_FILE).exists() and not (path / MODEL_FILE).exists()

    torch.manual_seed(1)
    base2 = nn.Sequential()
    base2.add_module("proj", nn.Linear(4, 4))
    base2.proj.load_state_dict(base.proj.base_layer.state_dict())
    other = get_peft_model(base2, LoraConfig(r=2, target_modules=["proj"], init_lora_weights=False))
    load_checkpoint(path, other)
    x = torch.randn(3, 4)
    assert torch.equal(other(x), peft_model(x))


def _saved(tmp_path, *steps: int):
    model = nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    return [save_checkpoint(tmp_path, s, model_state=model.state_dict(), optimizer=opt) for s in steps]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-10]), r"model\.safetensors has \d+ bytes, \d+ were saved"),
        (
            lambda p: p.write_bytes(p.read_bytes()[:-1] + b"x"),
            r"model\.safetensors does not match its saved sha256",
        ),
        (lambda p: p.unlink(), r"model\.safetensors is missing"),
    ],
)
def test_damaged_checkpoint_is_named_and_auto_resume_takes_the_previous_one(tmp_path, damage, message):
    first, second = _saved(tmp_path, 1, 2)
    damage(second / MODEL_FILE)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(second, nn.Linear(2, 2))  # an explicit path: a named error, not a SafetensorError
    assert latest_intact_checkpoint(tmp_path) == first  # auto: skip it, take the previous complete one
    damage(first / MODEL_FILE)
    with pytest.raises(CheckpointError, match="no intact checkpoint"):
        latest_intact_checkpoint(tmp_path)
    assert latest_intact_checkpoint(tmp_path / "none") is None


def test_missing_optimizer_file_is_named(tmp_path):
    (path,) = _saved(tmp_path, 3)
    (path / "optimizer.safetensors").unlink()  # used to raise KeyError: 's.state.0.step'
    opt = torch.optim.AdamW(nn.Linear(2, 2).parameters())
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors is missing"):
        load_checkpoint(path, None, opt)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "checkpoint-4")


def test_checkpoint_without_optimizer_state_refuses_an_optimizer_resume(tmp_path):
    model = nn.Linear(2, 2)  # DeepSpeed runs save weights but no optimizer state
    path = save_checkpoint(tmp_path, 1, model_state=model.state_dict())
    opt = torch.optim.AdamW(nn.Linear(2, 2).parameters())
    with pytest.raises(CheckpointError, match="checkpoint-1: holds no optimizer state"):
        load_checkpoint(path, None, opt)
    load_checkpoint(path, nn.Linear(2, 2))  # the weights alone still load


def dead_pid() -> int:
    """The PID of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_partial_checkpoint_folders_are_removed_unless_their_process_runs(tmp_path):
    (kept,) = _saved(tmp_path, 1)
    gone = dead_pid()
    live = f"checkpoint-3.tmp-{os.getppid()}"  # a live process (our parent) is saving step 3 right now
    for name in (f"checkpoint-2.tmp-{gone}", f"checkpoint-1.old-{gone}", live):
        (tmp_path / name).mkdir()
        (tmp_path / name / MODEL_FILE).write_bytes(b"partial")
    removed = remove_partial_checkpoints(tmp_path)
    assert sorted(p.name for p in removed) == [f"checkpoint-1.old-{gone}", f"checkpoint-2.tmp-{gone}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept.name, live]


def test_a_kill_between_the_two_renames_of_a_resave_keeps_a_complete_copy(tmp_path):
    _, second = _saved(tmp_path, 1, 2)
    gone = dead_pid()
    # re-saving step 2 was killed after moving the old copy aside and before the new one moved in
    os.replace(second, tmp_path / f"checkpoint-2.old-{gone}")
    (new,) = _saved(tmp_path / "elsewhere", 2)
    os.replace(new, tmp_path / f"checkpoint-2.tmp-{gone}")
    remove_partial_checkpoints(tmp_path)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-1", "checkpoint-2"]
    assert latest_intact_checkpoint(tmp_path) == second  # the new (complete) save, verified
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1", "checkpoint-2", "elsewhere"]


def test_pruning_a_symlinked_checkpoint_removes_the_link_not_its_target(tmp_path):
    elsewhere = tmp_path / "kept"
    (target,) = _saved(elsewhere, 1)
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint-1").symlink_to(target, target_is_directory=True)
    _saved(run, 2, 3)
    save_checkpoint(run, 4, model_state=nn.Linear(2, 2).state_dict(), keep_last=2)
    assert [p.name for p in list_checkpoints(run)] == ["checkpoint-3", "checkpoint-4"]
    assert (target / COMPLETE_MARKER).is_file()  # the linked directory itself is untouched


def test_non_finite_weights_are_never_saved(tmp_path):
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.bias[1] = float("nan")
    with pytest.raises(NonFiniteWeightsError, match=r"checkpoint-1: non-finite or exploding .* in bias \("):
        save_checkpoint(tmp_path, 1, model_state=model.state_dict())
    assert list(tmp_path.iterdir()) == []


def test_exploding_weights_are_never_saved(tmp_path):
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = 1e30  # finite, as after one step at train.lr=1e30
    with pytest.raises(NonFiniteWeightsError, match=r"exploding .* in weight \(max \|w\| 1e\+30\)"):
        save_checkpoint(tmp_path, 1, model_state=model.state_dict())
    assert list(tmp_path.iterdir()) == []
    model.weight.data.fill_(1e5)  # large but sane weights are saved
    save_checkpoint(tmp_path, 1, model_state=model.state_dict())


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_earlier_checkpoints(tmp_path, monkeypatch):
    (first,) = _saved(tmp_path, 1)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("deepvideo_r1.checkpoints.checkpoint.save_file", full)
    with pytest.raises(
        CheckpointError, match=r"checkpoint-2 could not be written \(\[Errno 28\] No space left"
    ):
        save_checkpoint(tmp_path, 2, model_state=nn.Linear(2, 2).state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]  # no partial folder left
    assert latest_intact_checkpoint(tmp_path) == first
