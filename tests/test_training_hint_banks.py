"""Per-rank hint banks in a checkpoint: each rank resumes with its own self-generated traces."""

from __future__ import annotations

from types import SimpleNamespace

from deepvideo_r1.difficulty.guidance import HintBank
from deepvideo_r1.training.trainer import hints_for_rank, trainer_state


def _bank(**traces: str) -> dict:
    bank = HintBank()
    for sid, step in traces.items():
        bank.add(sid, [step], "self")
    return bank.state_dict()


def _ctx() -> SimpleNamespace:
    stateful = SimpleNamespace(state_dict=lambda: {})
    cfg = SimpleNamespace(data=SimpleNamespace(train_file=None))
    return SimpleNamespace(augment=SimpleNamespace(controller=stateful), sampler=stateful, cfg=cfg)


def test_one_process_keeps_the_single_bank_format():
    state = trainer_state(_ctx(), [_bank(a="x")])
    assert "hints_by_rank" not in state and state["hints"]["entries"]["a"]["steps"] == ["x"]
    assert hints_for_rank(state, 0, 1) == state["hints"]


def test_each_rank_resumes_with_its_own_bank():
    banks = [_bank(a="rank 0 trace"), _bank(b="rank 1 trace")]
    state = trainer_state(_ctx(), banks)
    assert state["hints"] == banks[0] and state["hints_by_rank"] == banks
    assert hints_for_rank(state, 1, 2) == banks[1]
    restored = HintBank()
    restored.load_state_dict(hints_for_rank(state, 1, 2))
    assert restored.get("b") == ["rank 1 trace"] and "a" not in restored


def test_a_changed_world_size_merges_every_rank_bank():
    state = trainer_state(_ctx(), [_bank(a="x"), _bank(b="y")])
    merged = hints_for_rank(state, 0, 4)
    assert set(merged["entries"]) == {"a", "b"}
    single = trainer_state(_ctx(), [_bank(a="x")])
    assert set(hints_for_rank(single, 1, 2)["entries"]) == {"a"}  # one saved bank serves every rank
