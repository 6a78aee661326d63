"""Table 8's fixed row uses the configured fixed levels, the guidance builder gets
several traces where there are, and each step logs which task its augmented groups came from."""

from __future__ import annotations

import math

import torch

from deepvideo_r1.ablations.rows import FIXED_GUIDE_LEVEL, FIXED_PERTURB_LEVEL, table_8
from deepvideo_r1.config import DifficultyConfig, load_config
from deepvideo_r1.data.sample import Sample, VideoRef
from deepvideo_r1.difficulty import DifficultyController, DifficultyDecision, HintBank
from deepvideo_r1.difficulty.options import build_controller
from deepvideo_r1.difficulty.plan import Augmentation, plan_augmentation
from deepvideo_r1.presets import TINY_CPU
from deepvideo_r1.rewards import RewardBreakdown
from deepvideo_r1.training.groups import Groups
from deepvideo_r1.training.step import dataset_tasks, rollout_metrics


def _sample(sid: str, task: str = "count") -> Sample:
    return Sample(
        id=sid, question="How many?", problem_type="multiple_choice", answer="B", options=["1", "2"],
        videos=[VideoRef("/v.mp4")], metadata={"task": task},
    )  # fmt: skip


def test_the_run_controller_uses_the_configured_fixed_levels():
    row = table_8().row("levels_fixed")
    cfg = load_config(TINY_CPU, [f"{k}={v}" for k, v in row.overrides.items()])
    ctrl = build_controller(cfg.difficulty)  # before the fix: always level 1
    assert ctrl.options["levels"] == "fixed"
    ctrl.options["reference"], ctrl.options["threshold"] = "absolute", 1.0
    hard, easy = ctrl.assess([0.0] * 8), ctrl.assess([2.0] * 8)
    assert (hard.kind, hard.level) == ("decrease", FIXED_GUIDE_LEVEL) and isinstance(hard.level, int)
    assert (easy.kind, easy.level) == ("increase", FIXED_PERTURB_LEVEL)
    # the two rows of Table 8 differ only in adaptivity and the fixed levels themselves
    adaptive = table_8().row("levels_adaptive").overrides
    differ = {k for k in row.overrides.keys() | adaptive.keys() if row.overrides.get(k) != adaptive.get(k)}
    assert differ == {"difficulty.levels", "difficulty.fixed_guide_level", "difficulty.fixed_perturb_level"}


def test_fixed_levels_per_kind_and_their_default():
    ctrl = DifficultyController(reference="absolute", levels="fixed", fixed_level=2, fixed_perturb_level=1.5)
    assert ctrl.assess([0.0, 0.0]).level == 2 and ctrl.assess([2.0, 2.0]).level == 1.5
    same = DifficultyController(reference="absolute", levels="fixed", fixed_level=3)
    assert same.assess([2.0, 2.0]).level == 3.0  # no perturb level given: the guide level, as before


def test_answer_and_traces_shows_several_paths_when_the_bank_has_them():
    bank = HintBank()
    bank.add("s", ["Two shapes.", "So 2."], "dataset")
    cfg = DifficultyConfig(guidance="answer_and_traces")

    def hint(level: int) -> str:
        decision = DifficultyDecision("decrease", 1.0, level, 1.0, 0.0, True)
        return plan_augmentation(decision, _sample("s"), bank, cfg, seed=0).hint

    assert hint(2) == hint(1)  # one trace: nothing more to show at level 2
    assert bank.add_alternative("s", ["I count a red and a blue shape.", "That is 2."], "self")
    assert not bank.add_alternative("s", ["Two shapes.", "So 2."], "self")  # the same path again
    assert hint(1) == "Hint: The answer is B. Reasoning 1: Step 1: Two shapes. Step 2: So 2."
    assert hint(2) == hint(1) + " Reasoning 2: Step 1: I count a red and a blue shape. Step 2: That is 2."
    assert hint(3) == hint(2)
    restored = HintBank()
    restored.load_state_dict(bank.state_dict())
    assert restored.traces("s") == bank.traces("s") and restored.get("s") == ["Two shapes.", "So 2."]
    # partial-trace hints keep using the first (preferred) trace
    plain = plan_augmentation(DifficultyDecision("decrease", 1.0, 2, 1.0, 0.0, True), _sample("s"), bank,
                              DifficultyConfig(), seed=0).hint  # fmt: skip
    assert plain == "Hint: Step 1: Two shapes. Step 2: So 2."


def _groups(samples: list[Sample], augs: list[Augmentation], g: int = 2) -> Groups:
    n = len(samples) * g
    ids = torch.zeros(n, 1, dtype=torch.long)
    return Groups(
        samples=samples, prompts=[None] * len(samples), augmentations=augs, completion_ids=ids,
        completion_mask=torch.ones_like(ids), texts=[""] * n,
        rewards=RewardBreakdown(total=torch.zeros(n), components={}), group_size=g,
    )  # fmt: skip


def test_step_metrics_count_augmented_groups_by_task_and_their_mean_level():
    samples = [
        _sample("a", "count"),
        _sample("b", "count"),
        _sample("c", "direction"),
        _sample("d", "direction"),
    ]
    augs = [
        Augmentation("decrease", 2),
        Augmentation("decrease", 3),
        Augmentation("increase", 1.5),
        Augmentation(),
    ]
    tasks = dataset_tasks([*samples, _sample("e", "which_moves")])
    assert tasks == ("task=count", "task=direction", "task=which_moves")
    out = rollout_metrics(_groups(samples, augs), tasks)
    assert out["augment/hinted/task=count"] == 2 and out["augment/hinted/task=direction"] == 0
    assert out["augment/noised/task=direction"] == 1 and out["augment/noised/task=which_moves"] == 0
    assert out["augment/decrease_level_mean"] == 2.5 and out["augment/increase_level_mean"] == 1.5
    none = rollout_metrics(_groups(samples[:1], [Augmentation()]), tasks)
    assert math.isnan(none["augment/decrease_level_mean"])  # no hinted group: no level, not 0


class _Engine:
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def generate(self, batch, group_size, *, seed=None):
        from deepvideo_r1.rollout import RolloutResult

        b = len(self.texts)
        ones = torch.ones(b, 1, dtype=torch.long)
        return RolloutResult(ones * 0, ones, list(self.texts), torch.arange(b) // group_size, group_size)


class _Adapter:
    def encode_prompt(self, *args, **kwargs):
        return None

    def collate(self, prompts):
        return prompts


def test_self_traces_keep_every_correct_reasoning_path_best_first():
    from deepvideo_r1.difficulty.self_traces import generate_self_traces
    from deepvideo_r1.models.media import SampleMedia

    texts = [
        "<think>One shape.</think><answer>A</answer>",  # wrong
        "<think>A red shape.\nA blue shape.</think><answer>B</answer>",
        "<think>Two shapes move.</think><answer>B</answer>",
    ]
    bank = HintBank()
    media = lambda s: SampleMedia(None, None, None, None)  # noqa: E731
    assert generate_self_traces([_sample("x")], media, _Adapter(), _Engine(texts), bank, k=3, seed=0) == 1
    assert bank.traces("x") == [["A red shape.", "A blue shape."], ["Two shapes move."]]
