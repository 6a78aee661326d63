"""The aggregate step of experiments/mechanisms.py: DIR's finished cells -> mechanisms.json.

    python experiments/mechanisms.py aggregate --out DIR [--json experiments/results/mechanisms.json]

Rerun it whenever more cells have finished: a row or arm lists only the seeds it has, and the
file says which cells are still missing (`missing`), so a partial file is never mistaken for a
finished one.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from deepvideo_r1.metrics.stats import mean, paired_difference, t_interval

ITER_KEYS = ("clip_frac", "outside_clip_frac", "kl_to_rollout", "adv_logratio_corr", "grad_norm")


def _r(x, digits: int = 4):
    return None if x is None else round(float(x), digits)


def _interval(ci) -> list[float] | None:
    return [_r(ci[0]), _r(ci[1])] if ci else None


def _paired(values: dict[int, float], baseline: dict[int, float]) -> dict:
    m, ci, seeds = paired_difference(values, baseline)
    return {"seeds": seeds, "mean": _r(m) if seeds else None, "ci95": _interval(ci)}


def finished_runs(out: Path) -> dict[tuple[str, int], dict[int, dict]]:
    """(loss, num_iterations) -> seed -> result of every finished run under DIR/iterations/runs.

    Runs are recognised by their own row_config.yaml, not by the row key: the key hashes the whole
    resolved config, which changes whenever the code gains a config field, so a later checkout
    still reads cells made by an earlier one.
    """
    import yaml

    found: dict[tuple[str, int], dict[int, dict]] = {}
    for result in sorted((out / "iterations" / "runs").glob("*/seed*.json")):
        config = result.with_suffix("") / "row_config.yaml"
        if not config.exists():
            raise SystemExit(f"{result}: no {config} beside it to say which row it is")
        cfg = yaml.safe_load(config.read_text())
        if cfg["difficulty"]["enabled"]:
            continue  # not an iterations row
        seed = int(result.stem.removeprefix("seed"))
        found.setdefault((cfg["algo"]["loss"], int(cfg["algo"]["num_iterations"])), {})[seed] = json.loads(
            result.read_text()
        )
    return found


def iteration_rows(out: Path, args) -> tuple[list[dict], list[str]]:
    """One row per loss × num_iterations with its finished seeds; the missing cells."""
    from deepvideo_r1.ablations.rows import table_iterations

    runs = finished_runs(out)
    rows, missing, accuracy = [], [], {}
    for row in table_iterations().rows:
        loss, n = row.overrides["algo.loss"], row.overrides["algo.num_iterations"]
        results = {s: r for s, r in runs.get((loss, n), {}).items() if s in args.seeds}
        missing += [f"it:{row.name}:{s}" for s in args.seeds if s not in results]
        seeds = sorted(results)
        acc = {s: results[s]["accuracy"] for s in seeds}
        accuracy[row.name] = acc
        entry = {
            "name": row.name,
            "loss": loss,
            "num_iterations": n,
            "seeds": seeds,
            "accuracy": [_r(acc[s]) for s in seeds],
            "mean": _r(mean(list(acc.values()))) if seeds else None,
            "ci95": _interval(t_interval(list(acc.values()))),
            "wall_seconds": [_r(results[s]["wall_seconds"], 1) for s in seeds],
        }
        for key in ITER_KEYS:
            entry[key] = [_r(results[s].get(key), 6) for s in seeds]
        rows.append(entry)
    for entry in rows:  # Reg-GRPO against GRPO at the same num_iterations, paired over seeds
        if entry["loss"] == "reg_grpo":
            grpo = accuracy[f"grpo_it{entry['num_iterations']}"]
            entry["diff_vs_grpo"] = _paired(accuracy[entry["name"]], grpo)
    return rows, missing


def per_seed(result: dict, readouts: tuple[str, ...]) -> dict:
    """One arm cell's readouts, its training's rescue rate, steps and wall time."""
    out = {k: _r(result.get(k)) for k in (*readouts, "train_rescued_mean")}
    return out | {"wall_seconds": result["wall_seconds"], "steps": result["steps"]}


def first_step_accuracy(found: dict[int, dict]) -> float | None:
    """Mean accuracy of the arm's first rollouts (before any update) over its seeds."""
    firsts = [r["step_log"][0]["accuracy"] for r in found.values() if r.get("step_log")]
    return _r(mean(firsts)) if firsts else None


def hint_arms(out: Path, args, warm: str = "shipped") -> tuple[dict, list[str]]:
    """Per arm, per seed readouts; changes from `base`; a − b and a − c paired over seeds."""
    from hint_transfer import HINT_ARMS_ALL, collect_path, hint_result

    arms, missing = {}, []
    suffix = "" if warm == "shipped" else f":{warm}"
    sampled = tuple(f"mean_at_{args.mean_k}_{h}" for h in ("train", "test"))
    readouts = ("logprob_train", "logprob_test", "logprob_heldout", *sampled, "train_accuracy_mean")
    for arm in HINT_ARMS_ALL:
        seeds = [0] if arm == "base" else args.hint_seeds
        found = {}
        for s in seeds:
            path = hint_result(out, arm, s, warm)
            if path.exists():
                found[s] = json.loads(path.read_text())
            else:
                missing.append(f"hint:{arm}:{s}{suffix}")
        arms[arm] = {
            "seeds": sorted(found),
            "per_seed": {s: per_seed(v, readouts) for s, v in found.items()},
            "first_step_accuracy": first_step_accuracy(found),
        }
        arms[arm]["heldout_per_task"] = {s: v.get("logprob_heldout_per_task") for s, v in found.items()}
    comparisons = {}  # the decision rule reads the log-probabilities; mean@k is the second readout
    for key in ("logprob_test", "logprob_heldout", "logprob_train", *sampled):
        value = {a: {s: r[key] for s, r in arms[a]["per_seed"].items() if r[key] is not None} for a in arms}
        for a in ("a1", "a2"):
            for other in ("b", "c"):
                comparisons[f"{key}: {a} - {other}"] = _paired(value[a], value[other])
        base = value["base"].get(0)
        for a in ("a1", "a2", "b", "c"):  # the readout's change from the warm start, mean over seeds
            arms[a].setdefault("change_from_base", {})[key] = (
                _r(mean([v - base for v in value[a].values()])) if value[a] and base is not None else None
            )
    split = json.loads(collect_path(out, warm).read_text()) if collect_path(out, warm).exists() else None
    if split is None:
        missing.insert(0, f"collect{suffix}")
    collection = {k: v for k, v in (split or {}).items() if k not in ("train", "test")}
    collection |= {"train_clips": len(split["train"]), "test_clips": len(split["test"])} if split else {}
    return {"collection": collection, "arms": arms, "comparisons": comparisons}, missing


def cell_times(out: Path) -> list[dict]:
    path = out / "cell_times.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


ITER_COLUMNS = "| row | seeds | accuracy | mean [95 %] | Reg-GRPO − GRPO | clip | outside clip | KL | corr |"
READOUT_SCALE = {"logprob": (1, 2), "mean_at": (100, 1)}  # nats with 2 digits; points with 1


def _fmt(x, scale: float = 1.0, digits: int = 2, sign: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x * scale:+.{digits}f}" if sign else f"{x * scale:.{digits}f}"


def _scale(key: str) -> tuple[float, int]:
    return READOUT_SCALE["mean_at" if "mean_at" in key else "logprob"]


def _bracket(ci: list | None, scale: float, digits: int, sign: bool) -> str:
    """' [lo, hi]', or '' where there is no interval (fewer than two seeds)."""
    return f" [{_fmt(ci[0], scale, digits, sign)}, {_fmt(ci[1], scale, digits, sign)}]" if ci else ""


def _ci(c: dict, scale: float = 1.0, digits: int = 2) -> str:
    """'+1.23 [-0.40, +2.86] (n)' for a paired comparison over n seeds."""
    if not c["seeds"]:
        return "–"
    interval = _bracket(c["ci95"], scale, digits, True)
    return f"{_fmt(c['mean'], scale, digits, True)}{interval} ({len(c['seeds'])})"


def _mean_of(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return mean(present) if present else None


def iteration_lines(rows: list[dict]) -> list[str]:
    lines = ["## Iterations: held-out accuracy (%) after 40 RL steps; drift means over seeds", ""]
    lines += [ITER_COLUMNS, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = " / ".join(_fmt(a, 100, 1) for a in r["accuracy"])
        diff = _ci(r["diff_vs_grpo"], 100, 1) if "diff_vs_grpo" in r else ""
        drift = [_fmt(_mean_of(r[k]), 1, 4) for k in ITER_KEYS[:4]]
        mean_ci = _fmt(r["mean"], 100, 1) + _bracket(r["ci95"], 100, 1, False)
        cells = [r["name"], str(r["seeds"]), acc, mean_ci, diff, *drift]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def hint_lines(name: str, h: dict) -> list[str]:
    lines = ["", f"## {name}: each arm's change from the warm start (log-prob in nats, mean@k in points)", ""]
    if "warm_start" in h:
        lines += [f"Warm start: {json.dumps(h['warm_start'])}", ""]
    lines += [f"Collection: {json.dumps(h['collection'])}", ""]
    keys = list(h["arms"]["a1"].get("change_from_base", {}))
    lines += [
        "| arm | seeds | first-step accuracy | " + " | ".join(keys) + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    for arm, a in h["arms"].items():
        if arm != "base":
            vals = [_fmt(a["change_from_base"][k], *_scale(k), True) for k in keys]
            lines.append(
                f"| {arm} | {a['seeds']} | {_fmt(a['first_step_accuracy'])} | " + " | ".join(vals) + " |"
            )
    lines += ["", "| paired over seeds | mean [95 %] (seeds) |", "|---|---|"]
    return lines + [f"| {k} | {_ci(c, *_scale(k))} |" for k, c in h["comparisons"].items()]


def markdown(result: dict) -> str:
    """The results file's tables as markdown (what docs/results.md quotes)."""
    state = "complete" if result["complete"] else f"{len(result['missing'])} cells missing"
    lines = [f"# Mechanisms ({state}): `python experiments/mechanisms.py aggregate`", ""]
    lines += iteration_lines(result["iterations"])
    lines += hint_lines("hint_transfer (shipped warm start)", result["hint_transfer"])
    lines += hint_lines("hint_transfer_reading (hint-reading warm start)", result["hint_transfer_reading"])
    return "\n".join(lines) + "\n"


def aggregate(out: Path, args) -> None:
    from hint_transfer import READING_SFT, reading_warm_path
    from mechanisms import DECISION_RULE

    iterations, miss_it = iteration_rows(out, args)
    hints, miss_hint = hint_arms(out, args)
    reading, miss_reading = hint_arms(out, args, "reading")
    warm = reading_warm_path(out)
    reading["warm_start"] = json.loads(warm.read_text()) if warm.exists() else {"settings": list(READING_SFT)}
    if not warm.exists():
        miss_reading.insert(0, "readwarm")
    result = {
        "benchmark": "mechanisms",
        "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "complete": not (miss_it or miss_hint or miss_reading),
        "missing": miss_hint + miss_it + miss_reading,
        "decision_rule": DECISION_RULE,
        "design": {
            "seeds": args.seeds,
            "hint_seeds": args.hint_seeds,
            "threads": args.threads,
            "sets": args.set,
            "collect_prompts": args.collect_prompts,
            "hint_steps": args.hint_steps,
            "hint_prompts": args.hint_prompts,
            "heldout_per_task": args.heldout_per_task,
            "mean_k": args.mean_k,
            "python": platform.python_version(),
        },
        "hint_transfer": hints,
        "hint_transfer_reading": reading,
        "iterations": iterations,
        "cell_times": cell_times(out),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    args.json.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {args.json}: {len(result['missing'])} cells missing")
