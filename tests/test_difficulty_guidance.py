"""Reasoning-step splitting, hint formatting and the HintBank (decrease difficulty)."""

import json

import pytest

from deepvideo_r1.data.reasoning import split_reasoning_steps
from deepvideo_r1.difficulty import HintBank, format_answer_and_traces_hint, format_hint


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("<think>Step 1: find the red square. Step 2: it moves left.</think><answer>B</answer>",
         ["find the red square.", "it moves left."]),
        ("Let me see. step 1) count\nthe circles STEP 2: there are 3",
         ["Let me see.", "count the circles", "there are 3"]),
        ("1. first\n2) second\ncontinued\n(3) third", ["first", "second continued", "third"]),
        ("- look at frame 1\n\n* then frame 2\n", ["look at frame 1", "then frame 2"]),
        ("The cube moves left. It is 3.5 cm wide! Then it stops?  Done",
         ["The cube moves left.", "It is 3.5 cm wide!", "Then it stops?", "Done"]),
        ("I count two objects. <answer>2</answer>", ["I count two objects."]),
        ("<think>  </think>", []),
    ],
)  # fmt: skip
def test_split_reasoning_steps(text, steps):
    assert split_reasoning_steps(text) == steps


def test_format_hint_reveals_first_level_steps():
    steps = ["the square is red", "it moves to the left", "so the answer is B"]
    assert format_hint(steps, 1) == "Hint: Step 1: the square is red"
    assert format_hint(steps, 2) == "Hint: Step 1: the square is red Step 2: it moves to the left"
    assert format_hint(steps, 9).endswith("Step 3: so the answer is B")  # all steps if fewer


def test_partial_hint_does_not_state_the_answer():
    steps = split_reasoning_steps("<think>1. the ball is blue\n2. it bounces twice</think><answer>C</answer>")
    hint = format_hint(steps, 2)
    assert "C" not in hint and "answer" not in hint.lower()


def test_format_hint_replaces_existing_step_markers_and_validates():
    assert format_hint(["Step 1: look", "step 2. count"], 2) == "Hint: Step 1: look Step 2: count"
    with pytest.raises(ValueError, match=">= 1"):
        format_hint(["a"], 0)
    with pytest.raises(ValueError, match="empty"):
        format_hint(["  "], 1)


def test_answer_and_traces_hint():
    traces = [["look", "count"], ["scan"], ["other"]]
    assert format_answer_and_traces_hint("B", traces, 2) == (
        "Hint: The answer is B. Reasoning 1: Step 1: look Step 2: count Reasoning 2: Step 1: scan"
    )
    assert format_answer_and_traces_hint(" 3 ", [], 1) == "Hint: The answer is 3."
    with pytest.raises(ValueError, match="ground-truth answer"):
        format_answer_and_traces_hint("", traces, 1)


def test_hint_bank_sources_and_round_trip():
    bank = HintBank()
    assert bank.add("v1", ["a", " ", "b  c"], "self")
    assert bank.get("v1") == ["a", "b c"] and bank.source("v1") == "self"
    assert bank.add("v1", ["d"], "dataset")  # dataset replaces self
    assert not bank.add("v1", ["e"], "self")  # self never replaces dataset
    assert bank.get("v1") == ["d"]
    bank.add("v2", ["x"], "self")
    assert "v2" in bank and "v3" not in bank and len(bank) == 2 and bank.get("v3") is None
    clone = HintBank()
    clone.load_state_dict(json.loads(json.dumps(bank.state_dict())))
    assert clone.get("v1") == ["d"] and clone.source("v2") == "self" and len(clone) == 2


def test_hint_bank_errors():
    bank = HintBank()
    with pytest.raises(ValueError, match="source"):
        bank.add("v", ["a"], "web")
    with pytest.raises(ValueError, match="empty"):
        bank.add("v", [], "dataset")
    with pytest.raises(ValueError, match="malformed"):
        bank.load_state_dict({"entries": {"v": {"steps": ["a"]}}})
    with pytest.raises(ValueError, match="unknown trace sources"):
        bank.load_state_dict({"entries": {"v": {"steps": ["a"], "source": "web"}}})
