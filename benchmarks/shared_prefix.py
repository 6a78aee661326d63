"""Shared prefix (each group's prompt through the decoder once) vs the prompt repeated per completion:
rollout, update (forward + backward of one rollout batch) and old/ref log-probs, on CPU.

Shapes: (a) video-like — 2 prompts of 1,688 tokens (1,568 video), G = 8, 256 new tokens, the tiny
model widened to text 384×4 (6 heads, 2 kv heads, MLP 1024), vision 128×2; (b) the embedded default
(tiny_cpu preset: default tiny widths, 16 prompts of 8 frames at 56 px, G = 8, 64 new tokens, micro-
batches of 4 groups, vision trained). Each timing is the median of alternated repeats in one process
(repeated, shared, shared, repeated, …) so machine contention hits both paths alike; peak RSS is the
high-water mark (VmHWM) of a fresh subprocess per path that loads the model and runs one update.

    python benchmarks/shared_prefix.py [--json OUT] [--repeats 3] [--shapes a b]

Writes benchmarks/results/shared_prefix.json (rollout_speedup, update_speedup, logprob_speedup at
shape a; max_abs_logprob_diff; max_rel_grad_diff; shapes: the full table) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from deepvideo_r1.models import load_policy, make_tiny_model
from deepvideo_r1.models.batch import SequenceBatch, join_completions
from deepvideo_r1.models.logprobs import completion_logprobs
from deepvideo_r1.models.prefix import tokens_per_group
from deepvideo_r1.models.trainable import prepare_trainable
from deepvideo_r1.rollout import HFRolloutEngine, SamplingOptions

# the tests' tiny-model helpers (random vision tensors of the right shapes)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import max_rel_grad_diff, random_video

RESULTS = Path(__file__).parent / "results" / "shared_prefix.json"
QUESTION = (
    "Watch the clip. In which direction does the red square move, and does it pass the blue circle? "
    "Options: (A) left, passes it (B) right, passes it (C) up, stops before it (D) down, never meets it. "
    "Think first, then give the letter in <answer></answer>."
)


@dataclass
class Shape:
    """One benchmark shape: N prompts, G, T new tokens, video grid (t, h, w) in patches."""

    prompts: int
    group: int
    new_tokens: int
    grid: tuple[int, int, int]
    micro_groups: int
    train_vision: str
    sizes: dict[str, int] = field(default_factory=dict)


SHAPES = {
    "a": Shape(
        2,
        8,
        256,
        (8, 28, 28),
        2,
        "none",
        {
            "text_hidden": 384,
            "text_layers": 4,
            "text_heads": 6,
            "text_kv_heads": 2,
            "text_intermediate": 1024,
        },
    ),
    "b": Shape(16, 8, 64, (4, 4, 4), 4, "all"),
}


def _peak_rss_mb() -> float:
    """This process's resident-memory high-water mark (VmHWM). Not ru_maxrss: Linux carries that
    over from the parent across fork + exec, so a child would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def build(shape: Shape, tmp: str):
    """(trainable model, adapter, PromptBatch) for a shape."""
    model, ad = load_policy(make_tiny_model(tmp, family="qwen2.5-vl", seed=0, **shape.sizes))
    model = prepare_trainable(model, shape.train_vision)
    prompts = [
        ad.build_prompt(f"{i}: {QUESTION}", random_video(ad.family, *shape.grid, seed=i))
        for i in range(shape.prompts)
    ]
    return model, ad, ad.collate(prompts)


def micro_batches(prompts, completions, shape: Shape) -> list[SequenceBatch]:
    """Whole groups per micro-batch, as the trainer cuts them."""
    (ids, mask), g, out = completions, shape.group, []
    for s in range(0, shape.prompts, shape.micro_groups):
        which = list(range(s, min(s + shape.micro_groups, shape.prompts)))
        lo, hi = which[0] * g, (which[-1] + 1) * g  # rows of these groups
        out.append(join_completions(prompts_subset(prompts, which), ids[lo:hi], mask[lo:hi], g))
    return out


def prompts_subset(prompts, which: list[int]):
    """The prompts `which` of a single-video-per-prompt batch (pixels sliced by grid sizes)."""
    sizes = prompts.video_grid_thw.prod(-1).tolist()
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    pix = torch.cat([prompts.pixel_values_videos[starts[i] : starts[i] + sizes[i]] for i in which])
    return type(prompts)(
        input_ids=prompts.input_ids[which],
        attention_mask=prompts.attention_mask[which],
        mm_token_type_ids=prompts.mm_token_type_ids[which],
        videos_per_prompt=[1] * len(which),
        images_per_prompt=[0] * len(which),
        pixel_values_videos=pix,
        video_grid_thw=prompts.video_grid_thw[which],
        second_per_grid_ts=prompts.second_per_grid_ts[which],
    )


def update(model, batches: list[SequenceBatch], shared: bool) -> tuple[torch.Tensor, dict]:
    """Forward + backward of every micro-batch (a fixed-weight surrogate loss); (logps, grads)."""
    model.zero_grad(set_to_none=True)
    logps = []
    for b in batches:
        out = completion_logprobs(model, b, shared_prefix=shared)
        weights = torch.linspace(-1, 1, out.logps.numel()).view_as(out.logps)
        ((out.logps * weights).sum() / b.completion_mask.sum() + 0.01 * out.entropy.mean()).backward()
        logps.append(out.logps.detach())
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return torch.cat(logps), grads


@torch.no_grad()
def logprobs(model, batches: list[SequenceBatch], shared: bool) -> torch.Tensor:
    return torch.cat([completion_logprobs(model, b, shared_prefix=shared).logps for b in batches])


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def measure(name: str, shape: Shape, repeats: int) -> dict:
    """Alternated repeats of rollout / update / log-probs on both paths; medians and diffs."""
    with tempfile.TemporaryDirectory() as tmp:
        model, ad, prompts = build(shape, tmp)
    greedy = SamplingOptions(max_new_tokens=shape.new_tokens, temperature=0.0)
    engines = {
        p: HFRolloutEngine(model, ad, greedy, shared_prefix=p == "shared") for p in ("repeated", "shared")
    }
    times = {p: {"rollout_s": [], "update_s": [], "logprob_s": []} for p in engines}
    results: dict[str, dict] = {p: {} for p in engines}
    for r in range(repeats):
        for path in ("repeated", "shared") if r % 2 == 0 else ("shared", "repeated"):
            shared = path == "shared"
            t, roll = _timed(engines[path].generate, prompts, shape.group)
            times[path]["rollout_s"].append(t)
            results[path]["tokens"] = roll.completion_ids
            batches = micro_batches(prompts, (roll.completion_ids, roll.completion_mask), shape)
            t, (lp, grads) = _timed(update, model, batches, shared)
            times[path]["update_s"].append(t)
            t, fixed = _timed(logprobs, model, batches, shared)
            times[path]["logprob_s"].append(t)
            results[path] |= {"logps": lp, "grads": grads, "fixed": fixed}
    rep, sh = results["repeated"], results["shared"]
    length = prompts.input_ids.shape[1]
    row = {
        "prompt_tokens": length,
        "video_tokens": int(torch.tensor(shape.grid).prod()) // 4,
        "same_rollout_tokens": bool(torch.equal(rep["tokens"], sh["tokens"])),
        "max_abs_logprob_diff": max(
            float((rep["logps"] - sh["logps"]).abs().max()), float((rep["fixed"] - sh["fixed"]).abs().max())
        ),
        "max_rel_grad_diff": max_rel_grad_diff(sh["grads"], rep["grads"]),
        **{k: v for k, v in asdict(shape).items() if k != "sizes"},
        "widths": shape.sizes or "tiny preset defaults",
    }
    for path, shared in (("repeated", False), ("shared", True)):
        row[path] = {k: round(statistics.median(v), 3) for k, v in times[path].items()}
        row[path]["tokens_per_group"] = tokens_per_group(length, shape.new_tokens, shape.group, shared)
        row[path]["peak_rss_mb"] = peak_rss(name, shared)
    for k in ("rollout_s", "update_s", "logprob_s"):
        row[k.replace("_s", "_speedup")] = round(row["repeated"][k] / row["shared"][k], 3)
    return row


def peak_rss(name: str, shared: bool) -> float:
    """Peak RSS (MB) of a fresh subprocess: model load + one update (forward + backward)."""
    cmd = [sys.executable, __file__, "--peak", name, "--shared" if shared else "--repeated"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def peak_child(name: str, shared: bool) -> None:
    shape = SHAPES[name]
    with tempfile.TemporaryDirectory() as tmp:
        model, _, prompts = build(shape, tmp)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 900, (shape.prompts * shape.group, shape.new_tokens), generator=gen)
    batches = micro_batches(prompts, (ids, torch.ones_like(ids)), shape)
    update(model, batches, shared)
    print(round(_peak_rss_mb(), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shapes", nargs="+", default=["a", "b"], choices=sorted(SHAPES))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier when shared)")
    parser.add_argument("--peak", choices=sorted(SHAPES), help=argparse.SUPPRESS)
    parser.add_argument("--shared", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeated", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.peak:
        peak_child(args.peak, args.shared)
        return
    shapes = {name: measure(name, SHAPES[name], args.repeats) for name in args.shapes}
    head = shapes.get("a", next(iter(shapes.values())))
    report = {
        "rollout_speedup": head["rollout_speedup"],
        "update_speedup": head["update_speedup"],
        "logprob_speedup": head["logprob_speedup"],
        "max_abs_logprob_diff": max(s["max_abs_logprob_diff"] for s in shapes.values()),
        "max_rel_grad_diff": max(s["max_rel_grad_diff"] for s in shapes.values()),
        "shapes": shapes,
        "method": f"median of {args.repeats} alternated repeats in one process; fp32 CPU, "
        f"{args.threads} torch thread(s), machine shared with other jobs; greedy rollout",
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print("| shape | path | tokens/group | rollout s | update s | log-prob s | peak RSS MB (load + update) |")
    print("|---|---|---|---|---|---|---|")
    for name, s in shapes.items():
        for path in ("repeated", "shared"):
            p = s[path]
            print(
                f"| {name} | {path} | {p['tokens_per_group']} | {p['rollout_s']} | {p['update_s']} "
                f"| {p['logprob_s']} | {p['peak_rss_mb']} |"
            )
        print(
            f"| {name} | speedup | | {s['rollout_speedup']}× | {s['update_speedup']}× "
            f"| {s['logprob_speedup']}× | |"
        )
    print(
        f"max |Δlogp| {report['max_abs_logprob_diff']:.2e}; max rel Δgrad {report['max_rel_grad_diff']:.2e}"
    )


if __name__ == "__main__":
    main()
