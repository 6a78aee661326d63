"""Does an augmentation give a vanished group reward variance? Calibrates the augmentation strength.

For one warm start (an SFT model and its synthetic data, e.g. a default run's directory) this
rolls out G = 8 completions at the rollout temperature for the first N training prompts, keeps
the groups whose rewards all agree (all-correct: all answers right; all-wrong: all answers
wrong), and re-rolls them:

- all-correct groups: plain (the control: fresh samples alone), frame noise at several
  stds (level 1, i.e. std = noise_std · l_perturb with l_perturb = 1) and frame masking;
- all-wrong groups: plain, and partial-trace hints of l_guide = 1, 2, 3 steps.

Per variant it reports the share of groups whose rewards now differ ("rescued") and the mean
accuracy. A rescue rate only means something against the plain re-roll, which rescues groups
by sampling alone.

    python experiments/augmentation_probe.py RUN_DIR [--prompts 192] [--threads 2]

Writes experiments/results/augmentation_probe.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from accelerate import Accelerator

from deepvideo_r1.config import load_config
from deepvideo_r1.difficulty.guidance import format_hint
from deepvideo_r1.difficulty.plan import NO_AUGMENTATION, mask_transform, noise_transform
from deepvideo_r1.models.media import encode_sample
from deepvideo_r1.pipeline import load_model, media_loader, prepare_data
from deepvideo_r1.rollout import SamplingOptions
from deepvideo_r1.rollout.hf import HFRolloutEngine
from deepvideo_r1.training.context import dataset_hints
from deepvideo_r1.training.groups import roll_out

RESULTS = Path(__file__).parent / "results" / "augmentation_probe.json"
NOISE_STDS = (0.1, 0.3, 0.6, 0.9)
MASK_FRACTIONS = (0.25, 0.5)
HINT_LEVELS = (1, 2, 3)


def roll(ctx: dict, samples: list, seed: int, transforms=None, hints=None) -> list[tuple[list, list]]:
    """(total rewards, accuracy rewards) of G completions per sample, 16 prompts per call."""
    cfg, adapter, media = ctx["cfg"], ctx["adapter"], ctx["media"]
    g = cfg.rollout.group_size
    out = []
    for start in range(0, len(samples), 16):
        chunk = samples[start : start + 16]
        prompts = [
            encode_sample(
                adapter,
                s,
                media(s),
                hint=hints[start + i] if hints else None,
                frame_transform=transforms[start + i] if transforms else None,
            )
            for i, s in enumerate(chunk)
        ]
        groups = roll_out(
            ctx["engine"], adapter, chunk, prompts, [NO_AUGMENTATION] * len(chunk), g,
            cfg.algo.reward_weights, seed + start,
        )  # fmt: skip
        total = groups.rewards.total.view(-1, g).tolist()
        accuracy = groups.rewards.components["accuracy"].view(-1, g).tolist()
        out += list(zip(total, accuracy, strict=True))
    return out


def summary(groups: list[tuple[list, list]]) -> dict:
    n = len(groups)
    rescued = sum(min(t) != max(t) for t, _ in groups)
    accuracy = sum(sum(a) / len(a) for _, a in groups) / n if n else None
    return {"groups": n, "rescued": rescued / n if n else None, "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory with config.yaml, sft_model/ and synth/")
    parser.add_argument("--prompts", type=int, default=192, help="training prompts rolled out first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.run / "config.yaml", [f"data.synth.dir={args.run / 'synth'}"])
    accelerator = Accelerator(cpu=True)
    data = prepare_data(cfg, accelerator)
    model, adapter = load_model(cfg, args.run / "sft_model", accelerator)
    sampling = SamplingOptions(cfg.rollout.max_new_tokens, temperature=cfg.rollout.temperature)
    engine = HFRolloutEngine(model, adapter, sampling, shared_prefix=cfg.model.shared_prefix)
    ctx = {"cfg": cfg, "adapter": adapter, "media": media_loader(cfg, adapter), "engine": engine}
    samples = data.train[: args.prompts]
    first = roll(ctx, samples, seed=0)
    agree = [s for s, (t, _) in zip(samples, first, strict=True) if min(t) == max(t)]
    by_id = dict(zip([s.id for s in samples], first, strict=True))
    right = [s for s in agree if min(by_id[s.id][1]) == 1]
    wrong = [s for s in agree if max(by_id[s.id][1]) == 0]
    rows = {"all-correct, plain re-roll": summary(roll(ctx, right, seed=100))}
    for std in NOISE_STDS:
        noise = [noise_transform(std, 1.0, 7 + i) for i in range(len(right))]
        rows[f"all-correct, noise std {std}"] = summary(roll(ctx, right, 100, transforms=noise))
    for fraction in MASK_FRACTIONS:
        masks = [mask_transform(fraction, 7 + i) for i in range(len(right))]
        rows[f"all-correct, mask {fraction} of frames"] = summary(roll(ctx, right, 100, transforms=masks))
    bank = dataset_hints(samples)
    rows["all-wrong, plain re-roll"] = summary(roll(ctx, wrong, seed=200))
    for level in HINT_LEVELS:
        hints = [format_hint(bank.get(s.id), level) for s in wrong]
        rows[f"all-wrong, hint l_guide {level}"] = summary(roll(ctx, wrong, 200, hints=hints))
    result = {
        "benchmark": "augmentation_probe",
        "run": str(args.run),
        "prompts": len(samples),
        "first_rollout": {
            "all_correct": len(right),
            "all_wrong": len(wrong),
            "other": len(samples) - len(agree),
        },
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{len(samples)} prompts: {len(right)} all-correct, {len(wrong)} all-wrong groups")
    print(f"{'variant':40s} {'groups':>6} {'rescued':>8} {'accuracy':>8}")
    for name, r in rows.items():
        rescued = "–" if r["rescued"] is None else f"{r['rescued']:.2f}"
        accuracy = "–" if r["accuracy"] is None else f"{r['accuracy']:.2f}"
        print(f"{name:40s} {r['groups']:>6} {rescued:>8} {accuracy:>8}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
