"""DifficultyController: decisions, levels, options, state round trip."""

import json

import pytest
import torch

from deepvideo_r1.difficulty import DifficultyController, DifficultyDecision


def test_first_sample_compares_with_itself():
    ctrl = DifficultyController()
    d = ctrl.assess([1.0, 0.0])
    # empty buffer: r_ref = r_cur = .5 -> dR = 0 -> none
    assert (d.kind, d.delta, d.level, d.r_ref, d.r_cur) == ("none", 0.0, 0, 0.5, 0.5)
    assert list(ctrl.buffer) == [0.5]


def test_hard_then_easy_sample_levels():
    ctrl = DifficultyController()
    ctrl.assess([2.0, 2.0])  # buffer [2]
    hard = ctrl.assess([0.0, 1.0, 0.0, 1.0])
    # r_ref 2, r_cur .5 -> dR 1.5 -> decrease, l_guide = floor(1.5 + .5) + 1 = 3
    assert (hard.kind, hard.delta, hard.level) == ("decrease", 1.5, 3)
    assert isinstance(hard.level, int)
    easy = ctrl.assess([2.0, 2.0])
    # buffer [2, .5] -> r_ref 1.25, r_cur 2 -> dR -.75 -> increase, l_perturb = 1.75
    assert (easy.kind, easy.delta, easy.level) == ("increase", -0.75, 1.75)


@pytest.mark.parametrize(
    ("delta", "l_guide"),
    [(0.5, 2), (0.49, 1), (1.0, 2), (1.5, 3), (2.0, 3), (2.5, 4)],  # round half up, not banker's
)
def test_l_guide_rounds_half_up(delta, l_guide):
    ctrl = DifficultyController(reference="absolute", threshold=delta)
    d = ctrl.assess([0.0, 0.0])
    assert d.kind == "decrease" and d.level == l_guide


def test_compare_then_push_and_window_eviction():
    ctrl = DifficultyController(window=2)
    for r in (0.0, 1.0, 2.0):
        ctrl.assess([r, r])
    assert list(ctrl.buffer) == [1.0, 2.0]  # 0.0 evicted
    d = ctrl.assess([1.0, 1.0])
    # compared against mean(1, 2) = 1.5 (before pushing 1.0): dR = .5
    assert d.r_ref == 1.5 and d.delta == 0.5 and d.kind == "decrease"
    assert list(ctrl.buffer) == [2.0, 1.0]


def test_absolute_reference_ignores_buffer():
    ctrl = DifficultyController(reference="absolute", threshold=1.0)
    ctrl.assess([2.0, 2.0])
    d = ctrl.assess([1.5, 1.5])
    assert d.r_ref == 1.0 and d.delta == -0.5 and d.kind == "increase" and d.level == 1.5


def test_fixed_levels():
    ctrl = DifficultyController(reference="absolute", threshold=1.0, levels="fixed", fixed_level=3)
    dec, inc = ctrl.assess([0.0, 0.0]), ctrl.assess([2.0, 2.0])
    assert (dec.kind, dec.level, type(dec.level)) == ("decrease", 3, int)
    assert (inc.kind, inc.level, type(inc.level)) == ("increase", 3.0, float)


@pytest.mark.parametrize(
    ("kinds", "hard", "easy"),
    [("both", "decrease", "increase"), ("increase", "none", "increase"),
     ("decrease", "decrease", "none"), ("none", "none", "none")],
)  # fmt: skip
def test_kinds_filter(kinds, hard, easy):
    ctrl = DifficultyController(reference="absolute", threshold=1.0, kinds=kinds)
    h, e = ctrl.assess([0.0, 0.0]), ctrl.assess([2.0, 2.0])
    assert (h.kind, e.kind) == (hard, easy)
    assert h.delta == 1.0 and e.delta == -1.0  # dR is reported even when filtered
    assert (h.level == 0) == (hard == "none")


def test_vanishing_trigger_only_augments_equal_reward_groups():
    ctrl = DifficultyController(trigger="vanishing")
    ctrl.assess([2.0, 2.0])
    mixed = ctrl.assess([0.0, 1.0])  # dR = 1.5 but rewards differ
    assert (mixed.kind, mixed.vanishing, mixed.delta) == ("none", False, 1.5)
    flat = ctrl.assess([0.0, 0.0])  # r_ref = mean(2, .5) = 1.25
    assert (flat.kind, flat.vanishing, flat.level) == ("decrease", True, 2)
    assert list(ctrl.buffer) == [2.0, 0.5, 0.0]  # r_cur pushed either way


def test_next_visit_defers_and_pops():
    ctrl = DifficultyController(timing="next_visit")
    ctrl.assess([2.0, 2.0], sample_id="a")  # none: not deferred
    ctrl.assess([0.0, 0.0], sample_id="b")
    assert ctrl.pop_pending("a") is None
    pending = ctrl.pop_pending("b")
    assert pending is not None and pending.kind == "decrease" and pending.delta == 2.0
    assert ctrl.pop_pending("b") is None
    same = DifficultyController()  # same_step never defers automatically
    same.assess([2.0, 2.0], "a")
    same.assess([0.0, 0.0], "b")
    assert same.pending == {}
    same.defer("b", pending)
    assert same.pop_pending("b") == pending


def test_window_in_steps_pushes_step_means():
    ctrl = DifficultyController(window_unit="steps")
    ctrl.assess([1.0, 1.0])
    d = ctrl.assess([0.0, 0.0])
    assert d.kind == "none" and len(ctrl.buffer) == 0  # still the first step: r_ref = r_cur
    ctrl.end_step()
    assert list(ctrl.buffer) == [0.5]
    assert ctrl.assess([2.0, 2.0]).delta == -1.5


def test_tensor_input_and_counts_metrics():
    ctrl = DifficultyController(reference="absolute", threshold=1.0)
    ctrl.assess(torch.tensor([0.0, 0.0]))
    ctrl.assess(torch.tensor([[2.0], [2.0]]))
    ctrl.assess([1.0, 1.0])
    m = ctrl.metrics()
    assert (m["difficulty/decrease"], m["difficulty/increase"], m["difficulty/none"]) == (1.0, 1.0, 1.0)
    assert m["difficulty/buffer_len"] == 3.0 and m["difficulty/r_ref"] == 1.0
    assert ctrl.metrics()["difficulty/decrease"] == 0.0  # reset after reading


def test_state_dict_json_round_trip():
    ctrl = DifficultyController(window=3, timing="next_visit")
    for i, r in enumerate([2.0, 0.0, 1.0, 2.0]):
        ctrl.assess([r, r], sample_id=f"s{i}")
    state = json.loads(json.dumps(ctrl.state_dict()))
    clone = DifficultyController(window=3, timing="next_visit")
    clone.load_state_dict(state)
    assert list(clone.buffer) == [0.0, 1.0, 2.0] and clone.counts == ctrl.counts
    assert clone.pending == ctrl.pending and isinstance(clone.pending["s1"].level, int)
    assert clone.assess([0.5, 0.5]) == ctrl.assess([0.5, 0.5])


def test_load_into_smaller_window_keeps_latest():
    ctrl = DifficultyController(window=4)
    for r in (0.0, 1.0, 2.0):
        ctrl.assess([r, r])
    small = DifficultyController(window=2)
    small.load_state_dict(ctrl.state_dict())
    assert list(small.buffer) == [1.0, 2.0]
    with pytest.raises(ValueError, match="malformed"):
        small.load_state_dict({"options": {}})


def test_invalid_options_and_input():
    with pytest.raises(ValueError, match="trigger"):
        DifficultyController(trigger="sometimes")
    with pytest.raises(ValueError, match="window"):
        DifficultyController(window=0)
    with pytest.raises(ValueError, match="empty"):
        DifficultyController().assess([])
    with pytest.raises(ValueError, match="finite"):
        DifficultyController().assess([float("nan"), 1.0])


def test_decision_dict_round_trip():
    d = DifficultyDecision("increase", -0.5, 1.5, 1.0, 1.5, True)
    assert DifficultyDecision.from_dict(json.loads(json.dumps(d.to_dict()))) == d
