"""Section 2 of experiments/mechanisms.py: does a gradient taken on a hinted prompt help the clean one?

Cells (see mechanisms.py for the design and the decision rule), on one of two warm starts, WARM:
`shipped` (the package's) or `reading` (trained once with hints in a share of its SFT prompts):
  readwarm            train the `reading` warm start (seed 0) and evaluate it greedily
  collect [WARM]      roll WARM out on the training prompts; split the all-wrong clips
  hint ARM S [WARM]   ARM in base / a1 / a2 / b / c at seed S: train (not base), then read out

Layout: DIR/hint/ for `shipped`, DIR/hint_reading/ for `reading`: warm/ (data seed 0 and the
installed warm start), collect.json, arms/<arm>_seed<S>.json (one per cell, written atomically
when it is done); the `reading` SFT model in DIR/hint_reading/sft/sft_model with warm_start.json.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

LEVELS = {"a1": 1, "a2": 2, "c": 2}
HINT_ARMS_ALL = ("base", "a1", "a2", "b", "c")
WARM_STARTS = ("shipped", "reading")
READING_SFT = ("sft.shipped=false", "sft.hint_fraction=0.5", "sft.hint_max_steps=2")
"""The hint-reading warm start: the preset's SFT recipe at seed 0, half of its examples hinted with
1 or 2 steps (the arms' levels); fixed before it was trained, never tuned on the arms."""


def root(out: Path, warm: str = "shipped") -> Path:
    if warm not in WARM_STARTS:
        raise SystemExit(f"unknown warm start {warm!r}: use {' or '.join(WARM_STARTS)}")
    return out / ("hint" if warm == "shipped" else "hint_reading")


def collect_path(out: Path, warm: str = "shipped") -> Path:
    return root(out, warm) / "collect.json"


def hint_result(out: Path, arm: str, seed: int, warm: str = "shipped") -> Path:
    return root(out, warm) / "arms" / f"{arm}_seed{seed}.json"


def reading_warm_path(out: Path) -> Path:
    """warm_start.json beside the `reading` SFT model: written when it is trained and evaluated."""
    return root(out, "reading") / "sft" / "warm_start.json"


def reading_model_dir(out: Path) -> Path:
    return root(out, "reading") / "sft" / "sft_model"


def write_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def config(out: Path, seed: int, args, warm: str = "shipped", *extra: str):
    """The preset at run seed `seed`, data seed 0 (the collection's), one synth / cache dir per warm
    start; `reading` loads its trained SFT model as model.path."""
    from deepvideo_r1.config import load_config
    from deepvideo_r1.presets import TINY_CPU

    where = root(out, warm) / "warm"
    own = [
        f"train.output_dir={where}",
        f"train.seed={seed}",
        "data.synth.seed=0",
        f"data.synth.dir={where / 'synth'}",
        f"video.cache_dir={where / 'cache'}",
        "difficulty.enabled=false",
        f"train.max_steps={args.hint_steps}",
    ]
    if warm == "reading":
        own += [f"model.path={reading_model_dir(out)}", "sft.steps=0", "sft.shipped=false"]
    return load_config(TINY_CPU, [*args.set, *own, *extra])


def train_reading_warm(out: Path, args) -> None:
    """The `reading` warm start: the preset's SFT at seed 0 with READING_SFT, then its greedy
    held-out evaluation (clean prompts) -> DIR/hint_reading/sft/warm_start.json."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from deepvideo_r1.config import load_config, save_config
    from deepvideo_r1.pipeline import eval_stage, load_model, prepare_data, warm_start_model
    from deepvideo_r1.presets import TINY_CPU

    start = time.time()
    where = reading_model_dir(out).parent
    own = [f"train.output_dir={where}", "train.seed=0", "data.synth.seed=0", *READING_SFT]
    own += [f"data.synth.dir={where / 'synth'}", f"video.cache_dir={where / 'cache'}"]
    cfg = load_config(TINY_CPU, [*args.set, *own])
    where.mkdir(parents=True, exist_ok=True)
    save_config(cfg, where / "warm_config.yaml")
    accelerator = Accelerator(cpu=True)
    set_seed(0)
    data = prepare_data(cfg, accelerator)
    model_dir = warm_start_model(cfg, data, accelerator)
    model, adapter = load_model(cfg, model_dir, accelerator)
    report = eval_stage(cfg, model, adapter, data, "eval_before", accelerator)
    losses = json.loads((model_dir / "sft_losses.json").read_text())
    info = {"settings": list(READING_SFT), "final_sft_loss": losses[-1], "sft_steps": len(losses)}
    info |= {
        "eval_accuracy": report.accuracy if report else None,
        "wall_seconds": round(time.time() - start, 1),
    }
    write_atomic(reading_warm_path(out), info)


def setup(out: Path, seed: int, args, warm: str = "shipped"):
    """(cfg, accelerator, data, model, adapter, media) with the warm start `warm` loaded."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from deepvideo_r1.pipeline import load_model, media_loader, prepare_data, warm_start_model

    if warm == "reading" and not reading_warm_path(out).exists():
        raise SystemExit(f"{reading_warm_path(out)} is missing: run the readwarm cell first")
    cfg = config(out, seed, args, warm)
    accelerator = Accelerator(cpu=True)
    set_seed(seed)
    data = prepare_data(cfg, accelerator)
    model, adapter = load_model(cfg, warm_start_model(cfg, data, accelerator), accelerator)
    return cfg, accelerator, data, model, adapter, media_loader(cfg, adapter)


def engine_for(cfg, model, adapter):
    from deepvideo_r1.rollout import SamplingOptions
    from deepvideo_r1.rollout.hf import HFRolloutEngine

    r = cfg.rollout
    sampling = SamplingOptions(r.max_new_tokens, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k or 0)
    return HFRolloutEngine(model, adapter, sampling, shared_prefix=cfg.model.shared_prefix)


def accuracy_rows(cfg, engine, adapter, media, samples: list, k: int, seed: int) -> list[list[float]]:
    """Accuracy reward of k samples per clip (clean prompts, rollout temperature), 16 clips a call."""
    from deepvideo_r1.difficulty.plan import NO_AUGMENTATION
    from deepvideo_r1.models.media import encode_sample
    from deepvideo_r1.training.groups import roll_out

    rows: list[list[float]] = []
    for start in range(0, len(samples), 16):
        chunk = samples[start : start + 16]
        prompts = [encode_sample(adapter, s, media(s)) for s in chunk]
        augs = [NO_AUGMENTATION] * len(chunk)
        groups = roll_out(engine, adapter, chunk, prompts, augs, k, cfg.algo.reward_weights, seed + start)
        rows += groups.rewards.components["accuracy"].view(-1, k).tolist()
    return rows


def collect(out: Path, args, warm: str = "shipped") -> None:
    """G = 8 rollouts per training prompt; the all-wrong clips (with a trace) split by clip."""
    start = time.time()
    cfg, _, data, model, adapter, media = setup(out, 0, args, warm)
    engine = engine_for(cfg, model, adapter)
    samples = data.train[: args.collect_prompts]
    g = cfg.rollout.group_size
    with torch.no_grad():
        rows = accuracy_rows(cfg, engine, adapter, media, samples, g, seed=0)
    wrong = sorted(s.id for s, r in zip(samples, rows, strict=True) if max(r) == 0 and s.reasoning)
    write_atomic(
        collect_path(out, warm),
        {
            "prompts": len(samples),
            "group_size": g,
            "all_wrong": len(wrong),
            "all_correct": sum(min(r) == 1 for r in rows),
            "rollout_accuracy": sum(map(sum, rows)) / (g * len(rows)),
            "train": wrong[0::2],
            "test": wrong[1::2],
            "wall_seconds": round(time.time() - start, 1),
        },
    )


@torch.no_grad()
def gold_logprobs(model, adapter, media, samples: list, batch: int = 32) -> dict[str, float]:
    """Teacher-forced log-probability (temperature 1) of each sample's gold target, clean prompt."""
    from deepvideo_r1.data.prompts import build_target_text
    from deepvideo_r1.models.media import encode_sample
    from deepvideo_r1.training.policy import PolicyModule

    policy = PolicyModule(model, temperature=1.0, shared_prefix=False)
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    for start in range(0, len(samples), batch):
        chunk = samples[start : start + batch]
        prompts = [encode_sample(adapter, s, media(s)) for s in chunk]
        targets = [adapter.encode_completion(build_target_text(s)) for s in chunk]
        seq = adapter.sft_batch(prompts, targets)
        logps = policy(seq).logps
        sums = (logps * seq.completion_mask.to(logps.dtype)).sum(dim=1)
        out |= {s.id: float(v) for s, v in zip(chunk, sums, strict=True)}
    model.train(was_training)
    return out


def heldout_clips(evals: list, per_task: int) -> list:
    """The first `per_task` held-out clips of each task (category), in file order."""
    from deepvideo_r1.evaluation.evaluate import category

    counts: dict[str | None, int] = {}
    picked = []
    for s in evals:
        c = category(s)
        if counts.get(c, 0) < per_task:
            counts[c] = counts.get(c, 0) + 1
            picked.append(s)
    return picked


def readout(cfg, model, adapter, media, halves: dict[str, list], heldout: list, k: int, seed: int) -> dict:
    """Mean gold log-prob per set (and per task on the held-out clips), mean@k on the halves."""
    from deepvideo_r1.evaluation.evaluate import category

    result: dict = {}
    for name, samples in {**halves, "heldout": heldout}.items():
        lp = gold_logprobs(model, adapter, media, samples)
        result[f"logprob_{name}"] = sum(lp.values()) / len(lp) if lp else math.nan
        result[f"n_{name}"] = len(lp)
        if name == "heldout":
            tasks: dict[str, list[float]] = {}
            for s in samples:
                tasks.setdefault(str(category(s)), []).append(lp[s.id])
            result["logprob_heldout_per_task"] = {t: sum(v) / len(v) for t, v in tasks.items()}
    engine = engine_for(cfg, model, adapter)
    model.eval()
    with torch.no_grad():
        for name, samples in halves.items():
            rows = accuracy_rows(cfg, engine, adapter, media, samples, k, seed=10_000 + seed)
            result[f"mean_at_{k}_{name}"] = sum(map(sum, rows)) / (k * len(rows)) if rows else math.nan
    return result


def shuffled_within_groups(advantages: torch.Tensor, g: int, seed: int) -> torch.Tensor:
    """The placebo: each group's advantages permuted among its G completions."""
    gen = torch.Generator().manual_seed(seed)
    rows = advantages.view(-1, g)
    perm = torch.stack([torch.randperm(g, generator=gen) for _ in range(rows.shape[0])])
    return torch.gather(rows, 1, perm).reshape(-1)


def train_arm(cfg, accelerator, model, adapter, media, train: list, arm: str, seed: int, args) -> list[dict]:
    """`hint_steps` on-policy steps of the preset loss on the train half; per-step metrics."""
    from deepvideo_r1.algos import group_advantages
    from deepvideo_r1.difficulty.guidance import format_hint
    from deepvideo_r1.difficulty.plan import NO_AUGMENTATION, Augmentation
    from deepvideo_r1.training.context import build_context
    from deepvideo_r1.training.step import build_groups, step_seed, update_policy

    ctx = build_context(cfg, accelerator, model, adapter, train, media)
    level = LEVELS.get(arm)
    log = []
    for step in range(1, args.hint_steps + 1):
        idx = ctx.sampler.next_batch(min(args.hint_prompts, len(train)))
        augs = [
            Augmentation("decrease", level, hint=format_hint(train[i].reasoning, level))
            if level
            else NO_AUGMENTATION
            for i in idx
        ]
        groups = build_groups(ctx, idx, augs, step_seed(seed, step, 0, 0))
        g = groups.group_size
        adv = group_advantages(groups.rewards.total, g, scale=ctx.advantage_scale, eps=cfg.algo.adv_eps)
        if arm == "c":
            adv = shuffled_within_groups(adv, g, step_seed(seed, step, 0, 7))
        metrics = update_policy(ctx, groups, adv)
        acc = groups.rewards.components["accuracy"].view(-1, g)
        total = groups.rewards.total.view(-1, g)
        rescued = float(((total.max(dim=1).values - total.min(dim=1).values) > 0).float().mean())
        log.append({"step": step, "accuracy": float(acc.mean()), "rescued": rescued} | metrics)
    return log


def run_arm(out: Path, arm: str, seed: int, args, warm: str = "shipped") -> None:
    """One arm at one seed on `warm`: train (unless `base`), read out, write arms/<arm>_seed<S>.json."""
    start = time.time()
    split = json.loads(collect_path(out, warm).read_text())
    cfg, accelerator, data, model, adapter, media = setup(out, seed, args, warm)
    by_id = {s.id: s for s in data.train}
    halves = {h: [by_id[i] for i in split[h]] for h in ("train", "test")}
    steps: list[dict] = []
    if arm != "base":
        if arm not in LEVELS and arm != "b":
            raise SystemExit(f"unknown arm {arm!r}: use base, a1, a2, b or c")
        steps = train_arm(cfg, accelerator, model, adapter, media, halves["train"], arm, seed, args)
    model = accelerator.unwrap_model(model)
    heldout = heldout_clips(data.eval, args.heldout_per_task)
    result = {"arm": arm, "seed": seed, "warm_start": warm, "level": LEVELS.get(arm), "steps": len(steps)}
    result |= readout(cfg, model, adapter, media, halves, heldout, args.mean_k, seed)
    result["train_accuracy_mean"] = sum(s["accuracy"] for s in steps) / len(steps) if steps else None
    result["train_rescued_mean"] = sum(s["rescued"] for s in steps) / len(steps) if steps else None
    result["step_log"] = steps
    result["wall_seconds"] = round(time.time() - start, 1)
    write_atomic(hint_result(out, arm, seed, warm), result)
