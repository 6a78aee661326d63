"""Trainer building blocks without a full run: sampler, schedule, augmentation plans, groups,
self-generated hints, loss options."""

from __future__ import annotations

import pytest
import torch

from deepvideo_r1.config import AlgoConfig, ConfigError, DifficultyConfig
from deepvideo_r1.data.sample import Sample, VideoRef
from deepvideo_r1.difficulty import DifficultyDecision, HintBank
from deepvideo_r1.difficulty.plan import plan_augmentation
from deepvideo_r1.difficulty.self_traces import generate_self_traces
from deepvideo_r1.models.media import SampleMedia
from deepvideo_r1.rewards import RewardBreakdown
from deepvideo_r1.rollout import RolloutResult
from deepvideo_r1.training.context import lr_lambda
from deepvideo_r1.training.groups import Groups, replace_groups
from deepvideo_r1.training.sampler import PromptSampler
from deepvideo_r1.training.step import loss_options, step_seed


def mc_sample(sid: str = "s1", reasoning=None, videos=True) -> Sample:
    return Sample(
        id=sid, question="Which way?", problem_type="multiple_choice", answer="B",
        options=["up", "down"], videos=[VideoRef("/v.mp4")] if videos else [], reasoning=reasoning,
    )  # fmt: skip


def test_sampler_covers_each_epoch_once_and_splits_ranks():
    s = PromptSampler(5, seed=3)
    first = s.next_global_batch(5)
    assert sorted(first) == [0, 1, 2, 3, 4]  # one epoch = one permutation
    a, b = PromptSampler(6, seed=1), PromptSampler(6, seed=1)
    r0, r1 = a.next_batch(2, rank=0, world_size=2), b.next_batch(2, rank=1, world_size=2)
    assert set(r0).isdisjoint(r1) and a.state_dict() == b.state_dict() == {
        "epoch": 0,
        "position": 4,
        "num_samples": 6,
    }
    c = PromptSampler(6, seed=1)
    c.load_state_dict(a.state_dict())
    assert c.next_global_batch(4) == a.next_global_batch(4)  # resumes mid-epoch, wraps the same way
    with pytest.raises(ValueError, match="same training file"):
        c.load_state_dict({"epoch": 0, "position": 0, "num_samples": 7})


def test_lr_schedule_warmup_then_cosine_or_constant():
    cos = lr_lambda(warmup=2, total=6, schedule="cosine")
    # warmup: (0+1)/2, (1+1)/2; then 0.5(1+cos(pi·(s-2)/4)) for s = 2..6
    assert [cos(0), cos(1)] == [0.5, 1.0]
    assert cos(2) == 1.0 and cos(4) == pytest.approx(0.5) and cos(6) == pytest.approx(0.0, abs=1e-12)
    const = lr_lambda(warmup=0, total=6, schedule="constant")
    assert {const(s) for s in range(6)} == {1.0}


def test_plan_augmentation_each_kind():
    cfg = DifficultyConfig(noise_std=0.1)
    hints = HintBank()
    hints.add("s1", ["It starts near the top.", "It ends near the bottom.", "So it moves down."], "dataset")
    hard = DifficultyDecision("decrease", delta=0.8, level=2, r_ref=1.0, r_cur=0.2, vanishing=False)
    plan = plan_augmentation(hard, mc_sample(), hints, cfg, seed=0)
    assert plan.kind == "decrease" and plan.frame_transform is None
    assert plan.hint == "Hint: Step 1: It starts near the top. Step 2: It ends near the bottom."
    # no trace for this sample: the decision is not applied, and says why
    assert plan_augmentation(hard, mc_sample("other"), hints, cfg, seed=0).unapplied == "no_trace"
    easy = DifficultyDecision("increase", delta=-1.0, level=2.0, r_ref=1.0, r_cur=2.0, vanishing=True)
    plan = plan_augmentation(easy, mc_sample(), hints, cfg, seed=5)
    frames = torch.full((4, 3, 8, 8), 0.5)
    noisy, again = plan.frame_transform(frames), plan.frame_transform(frames)
    assert torch.equal(noisy, again)  # seeded: the same draw every call (reproducible runs)
    assert 0.15 < float((noisy - 0.5).std()) < 0.25  # std = noise_std · l_perturb = 0.2
    assert plan_augmentation(easy, mc_sample(videos=False), hints, cfg, 0).unapplied == "no_video"
    masked = plan_augmentation(easy, mc_sample(), hints, DifficultyConfig(increase_mode="mask_frames"), 0)
    out = masked.frame_transform(frames)
    assert int((out.flatten(1).abs().sum(1) == 0).sum()) == 1  # round(0.25 · 4) frames zeroed


def _groups(texts: list[str], rewards: list[float], g: int, width: int) -> Groups:
    n = len(texts) // g
    ids = torch.arange(len(texts) * width).view(len(texts), width)
    return Groups(
        samples=[mc_sample(f"s{i}") for i in range(n)], prompts=[None] * n, augmentations=[None] * n,
        completion_ids=ids, completion_mask=torch.ones_like(ids), texts=texts,
        rewards=RewardBreakdown(total=torch.tensor(rewards), components={"accuracy": torch.tensor(rewards)}),
        group_size=g,
    )  # fmt: skip


def test_replace_groups_swaps_whole_groups_and_pads():
    base = _groups(["a0", "a1", "b0", "b1"], [0.0, 0.0, 1.0, 0.0], g=2, width=3)
    new = _groups(["c0", "c1"], [2.0, 1.0], g=2, width=5)
    out = replace_groups(base, [0], new, pad_id=-1)
    assert out.texts == ["c0", "c1", "b0", "b1"]
    assert out.rewards.total.tolist() == [2.0, 1.0, 1.0, 0.0]
    assert out.completion_ids.shape == (4, 5)
    assert out.completion_ids[2].tolist()[3:] == [-1, -1] and out.completion_mask[2].tolist() == [
        1,
        1,
        1,
        0,
        0,
    ]
    assert torch.equal(out.completion_ids[:2], new.completion_ids)


class ScriptedEngine:
    """A rollout engine returning fixed texts (the interface the trainer depends on)."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def generate(self, batch, group_size, *, seed=None):
        b = len(self.texts)
        return RolloutResult(torch.zeros(b, 1, dtype=torch.long), torch.ones(b, 1, dtype=torch.long),
                             list(self.texts), torch.arange(b) // group_size, group_size)  # fmt: skip


class NullAdapter:
    def encode_prompt(self, *args, **kwargs):
        return None

    def collate(self, prompts):
        return prompts


def test_self_generated_traces_keep_the_best_correct_completion():
    samples = [mc_sample("x"), mc_sample("y")]
    texts = [
        "<think>It goes up.</think><answer>A</answer>",  # x: wrong
        "<think>It starts near the top.\nIt ends near the bottom.</think><answer>B</answer>",  # x: best
        "no tags at all",  # y: no answer
        "<think>Hmm.</think><answer>A</answer>",  # y: wrong
    ]
    bank = HintBank()
    media = lambda s: SampleMedia(None, None, None, None)  # noqa: E731
    added = generate_self_traces(samples, media, NullAdapter(), ScriptedEngine(texts), bank, k=2, seed=0)
    assert added == 1 and bank.source("x") == "self" and "y" not in bank
    assert bank.get("x") == ["It starts near the top.", "It ends near the bottom."]


def test_loss_options_follow_each_loss_signature():
    assert loss_options("reg_grpo", AlgoConfig(epsilon=0.5), 64) == {
        "epsilon": 0.5, "std_eps": 1e-4, "ratio_normalization": "std", "length_normalize": False,
    }  # fmt: skip
    algo = AlgoConfig(clip_high=0.3)
    assert loss_options("dr_grpo", algo, 64) == {"clip_high": 0.3, "max_completion_length": 64}
    assert loss_options("grpo", AlgoConfig(), 64) == {}  # None values keep the loss's own defaults
    assert loss_options("rebel", AlgoConfig(eta=0.5), 64) == {"eta": 0.5}
    # a setting the loss does not take is reported, not dropped
    with pytest.raises(ConfigError, match=r"algo\.epsilon=0\.5 has no effect under algo\.loss=dr_grpo"):
        loss_options("dr_grpo", AlgoConfig(epsilon=0.5), 64)


def test_step_seeds_are_distinct_and_stable():
    seeds = {step_seed(0, s, r, p) for s in range(50) for r in range(4) for p in range(3)}
    assert len(seeds) == 600 and all(0 <= x < 2**31 - 1 for x in seeds)
    # base·1_000_003 + step·1_009 + rank·101 + phase = 7_000_021 + 3_027 + 101 + 2 (mod 2^31 - 1)
    assert step_seed(7, 3, 1, 2) == 7_003_151
    # another run seed draws none of these (its seeds start at 1_000_003 > 49·1_009 + 3·101 + 2)
    assert seeds.isdisjoint(step_seed(1, s, r, p) for s in range(50) for r in range(4) for p in range(3))


def test_parameter_groups_give_the_vision_tower_its_own_lr(tmp_path):
    from deepvideo_r1.models.adapter import load_policy
    from deepvideo_r1.models.tiny import make_tiny_model
    from deepvideo_r1.models.vision import vision_tower
    from deepvideo_r1.training.context import make_optimizer, parameter_groups
    from helpers import TEST_SIZES

    model, _ = load_policy(make_tiny_model(tmp_path / "m", seed=0, **TEST_SIZES), device="cpu")
    model.requires_grad_(True)
    vision = {id(p) for p in vision_tower(model).parameters()}
    trainable = sum(1 for _ in model.parameters())
    assert len(parameter_groups(model, 1e-4, None)) == 1
    lang, vis = parameter_groups(model, 1e-4, 1e-3)
    assert (lang["lr"], vis["lr"]) == (1e-4, 1e-3)
    assert {id(p) for p in vis["params"]} == vision and len(lang["params"]) + len(vis["params"]) == trainable
    optimizer, _ = make_optimizer([lang, vis], 1e-4, 0.0, warmup=2, total=4, schedule="constant")
    assert [g["lr"] for g in optimizer.param_groups] == [0.5e-4, 0.5e-3]  # warmup step 0: ×(0+1)/2
    vision_tower(model).requires_grad_(False)  # frozen tower: one group, nothing at vision_lr
    assert [len(g["params"]) for g in parameter_groups(model, 1e-4, 1e-3)] == [trainable - len(vision)]


def test_overwrite_clears_intermediate_evaluations_and_keeps_reusable_assets(tmp_path):
    from deepvideo_r1.training.resume import EVAL_STEP_DIR, clear_run

    for name in (EVAL_STEP_DIR.format(step=5), EVAL_STEP_DIR.format(step=10), "eval_after", "sft_model"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions.jsonl").write_text("{}\n")
    clear_run(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft_model"]


def test_sft_follows_its_schedule_and_gives_the_vision_tower_its_lr(tmp_path, monkeypatch):
    import json

    from accelerate import Accelerator

    import deepvideo_r1.training.sft as sft
    from deepvideo_r1.config import SftConfig
    from deepvideo_r1.models.vision import vision_tower
    from helpers import tiny_policy

    model, adapter = tiny_policy(tmp_path)
    model.requires_grad_(True)
    seen = []
    real = sft.make_optimizer
    monkeypatch.setattr(sft, "make_optimizer", lambda groups, *a: seen.append(groups) or real(groups, *a))
    sample = Sample(id="s", question="?", problem_type="multiple_choice", answer="A", options=["a", "b"])
    cfg = SftConfig(steps=4, batch_size=1, lr=1e-3, vision_lr=3e-3, warmup_steps=1, schedule="cosine")
    media = lambda s: SampleMedia(None, None, None, None)  # noqa: E731
    sft.run_sft(model, adapter, [sample], media, cfg, Accelerator(cpu=True), seed=0, run_dir=tmp_path)
    lang, vis = seen[0]
    assert (lang["lr"], vis["lr"]) == (1e-3, 3e-3)
    assert {id(p) for p in vis["params"]} == {id(p) for p in vision_tower(model).parameters()}
    rows = [json.loads(line) for line in (tmp_path / sft.SFT_METRICS_FILE).read_text().splitlines()]
    # warmup 1 step, then cosine over the 3 others: 1, cos 0, cos π/3, cos 2π/3 → ×1, 1, 0.75, 0.25
    assert [r["sft/lr"] for r in rows] == pytest.approx([1e-3, 1e-3, 7.5e-4, 2.5e-4])


def test_sft_hints_are_drawn_per_example_and_reach_the_prompt(tmp_path, monkeypatch):
    import json

    from accelerate import Accelerator

    import deepvideo_r1.training.sft as sft
    from deepvideo_r1.config import SftConfig
    from deepvideo_r1.difficulty.guidance import format_hint
    from helpers import tiny_policy

    steps = ["the ball is red", "red is option A", "so A"]
    traced = Sample(
        id="t", question="?", problem_type="multiple_choice", answer="A", options=["a", "b"], reasoning=steps
    )
    plain = Sample(id="p", question="?", problem_type="multiple_choice", answer="B", options=["a", "b"])
    assert sft.sft_hint(plain, 0.99, 2, "k") is None  # no trace: nothing to hint
    assert {sft.sft_hint(traced, 0.0, 2, str(k)) for k in range(50)} == {None}
    drawn = [sft.sft_hint(traced, 0.5, 2, f"0:{k}:0") for k in range(2000)]
    assert drawn == [sft.sft_hint(traced, 0.5, 2, f"0:{k}:0") for k in range(2000)]  # the key decides
    assert set(drawn) == {None, format_hint(steps, 1), format_hint(steps, 2)}
    assert sum(h is not None for h in drawn) / len(drawn) == pytest.approx(0.5, abs=0.04)
    assert drawn.count(format_hint(steps, 1)) == pytest.approx(drawn.count(format_hint(steps, 2)), rel=0.15)

    model, adapter = tiny_policy(tmp_path)
    model.requires_grad_(True)
    seen: list[str | None] = []
    real = sft.encode_sample
    monkeypatch.setattr(
        sft, "encode_sample", lambda a, s, m, hint=None: seen.append(hint) or real(a, s, m, hint=hint)
    )
    cfg = SftConfig(steps=6, batch_size=2, lr=1e-4, hint_fraction=0.5, hint_max_steps=1)
    media = lambda s: SampleMedia(None, None, None, None)  # noqa: E731
    sft.run_sft(model, adapter, [traced, plain], media, cfg, Accelerator(cpu=True), seed=3, run_dir=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / sft.SFT_METRICS_FILE).read_text().splitlines()]
    assert [r["sft/hinted"] for r in rows] == [
        sum(h is not None for h in seen[2 * k : 2 * k + 2]) for k in range(6)
    ]
    assert set(seen) == {None, format_hint(steps, 1)}  # hinted at least once, never the untraced sample
