"""Held-out evaluation: greedy decoding, accuracy overall and per category, resumable predictions.

Optionally K sampled completions per sample as well (`SampledDecoding`): mean@K (accuracy when
sampling), maj@K (score of the majority answer) and pass@K (best of K). Greedy accuracy stays the
headline number; maj@K and pass@K show how much an RL stage can gain by sharpening the sampled
distribution without learning anything new (maj@K above greedy means it can).

Categories come from the sample metadata: `level` (SEED-Bench-R1 L1/L2/L3), `duration_group`
(LongVideoBench), `type` (NExT-GQA), `task` (synthetic). Grounded QA reports choice accuracy and
mIoU separately. Predictions are appended to a jsonl per rank as they are made; a rerun skips the
samples already there, so an interrupted eval loses at most one batch. A record is reused only
when it was made for the same sample, prompt, model weights and settings (`evaluation/resume.py`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import gather_object
from torch import nn

from deepvideo_r1.data.prompts import build_question_text, format_answer
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.evaluation.fingerprint import (
    prediction_key_settings,
    prompt_fingerprint,
    record_key,
    sample_fingerprint,
)
from deepvideo_r1.evaluation.report import eval_header, mean_stderr
from deepvideo_r1.evaluation.resume import check_unique_ids, resume_records
from deepvideo_r1.metrics.logger import TrainProgress
from deepvideo_r1.metrics.stats import t_interval
from deepvideo_r1.models.adapter import ModelAdapter
from deepvideo_r1.models.media import MediaLoader, encode_sample, is_readable, skips_media
from deepvideo_r1.rewards import (
    accuracy_reward,
    extract_answer,
    format_reward,
    parse_choice,
    parse_predicted_span,
    temporal_iou,
)
from deepvideo_r1.rollout import HFRolloutEngine, RolloutEngine, SamplingOptions

logger = logging.getLogger(__name__)

CATEGORY_KEYS = ("level", "duration_group", "type", "task")


@dataclass
class EvalReport:
    """accuracy: mean score over labelled samples; miou for grounding types; per category."""

    n: int
    n_labelled: int
    accuracy: float
    format_rate: float
    ci95: list[float] | None = None
    """95 % interval of `accuracy` over samples (Student t on the per-sample scores);
    None below two samples."""
    miou: float | None = None
    per_category: dict[str, dict] = field(default_factory=dict)
    """Per category: n, accuracy, miou (grounding), and for multiple choice `choices` (how often
    each letter was answered, "none" when unparseable) and `top_choice_share`; with sampling also
    mean_at_k, maj_at_k, pass_at_k."""
    sampling: dict | None = None
    """The SampledDecoding used (num_samples, temperature, seed); None = greedy only."""
    mean_at_k: float | None = None
    maj_at_k: float | None = None
    pass_at_k: float | None = None
    n_skipped: int = 0
    """Samples left out because their media could not be read (data.on_error: skip); not in `n`."""
    accuracy_stderr: float = 0.0
    """Standard error of `accuracy` (sample std / sqrt(n_labelled)); `ci95` is its t-interval."""
    header: dict = field(default_factory=dict)
    """Model (path, weights fingerprint), data (path, sha256), versions, generation settings."""
    scores: dict[str, float] = field(default_factory=dict, repr=False)
    """Score per labelled sample id (for paired before/after comparisons; not in `to_json`)."""

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "scores"}

    def summary_lines(self) -> list[str]:
        """A few lines for a terminal: accuracy with its interval, format rate, per category."""
        pct = [100 * x for x in self.ci95] if self.ci95 is not None else None
        ci = f" (95 % interval {pct[0]:.1f}-{pct[1]:.1f})" if pct else ""
        lines = [f"accuracy {100 * self.accuracy:.1f} %{ci} on {self.n_labelled} of {self.n} samples"]
        lines.append(f"format rate {100 * self.format_rate:.1f} %, {self.n_skipped} skipped (bad media)")
        for name in ("miou", "mean_at_k", "maj_at_k", "pass_at_k"):
            if getattr(self, name) is not None:
                lines.append(f"{name} {100 * getattr(self, name):.1f} %")
        for cat, entry in self.per_category.items():
            lines.append(f"  {cat}: {100 * entry['accuracy']:.1f} % on {entry['n']}")
        return lines

    def metrics(self, prefix: str = "eval/") -> dict[str, float]:
        """Flat scalars for metrics.jsonl / TensorBoard: accuracy, format_rate, miou and the @K
        scores when present, and per category `accuracy/<category>` (and `miou/<category>`)."""
        out = {f"{prefix}accuracy": self.accuracy, f"{prefix}format_rate": self.format_rate}
        out[f"{prefix}accuracy_stderr"] = self.accuracy_stderr
        for name in ("miou", "mean_at_k", "maj_at_k", "pass_at_k"):
            if getattr(self, name) is not None:
                out[f"{prefix}{name}"] = float(getattr(self, name))
        for cat, entry in self.per_category.items():
            out[f"{prefix}accuracy/{cat}"] = float(entry["accuracy"])
            if "miou" in entry:
                out[f"{prefix}miou/{cat}"] = float(entry["miou"])
        return out


@dataclass(frozen=True)
class SampledDecoding:
    """K completions per sample at `temperature`, besides the greedy one."""

    num_samples: int
    temperature: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_samples < 1 or self.temperature <= 0:
            raise ValueError(f"sampled eval needs num_samples >= 1 and temperature > 0, got {self}")


@dataclass(frozen=True)
class EvalSettings:
    """How one evaluation decodes: the evaluate call, the predictions' key and the report header
    all read this one value."""

    max_new_tokens: int = 256
    batch_size: int = 8
    shared_prefix: bool = True
    engine: str = "hf"
    """Name of the engine that decodes (hf, vllm); part of the predictions' key when not hf."""
    sampled: SampledDecoding | None = None

    def describe(self) -> dict:
        """The report header's `generation` entry."""
        return {
            "decoding": "greedy",
            "max_new_tokens": self.max_new_tokens,
            "batch_size": self.batch_size,
            "engine": self.engine,
            "sampled": asdict(self.sampled) if self.sampled else None,
        }


def category(sample: Sample) -> str | None:
    for key in CATEGORY_KEYS:
        if key in sample.metadata and sample.metadata[key] not in (None, ""):
            return f"{key}={sample.metadata[key]}"
    return None


def _score(sample: Sample, completion: str) -> dict:
    """score, and the parsed `choice` (multiple choice) or `iou` (grounding) of one completion."""
    out: dict = {
        "score": accuracy_reward(
            completion, sample.answer, sample.problem_type, sample.options, segments=sample.timestamps
        )
    }
    answer = extract_answer(completion) or ""
    if sample.problem_type == "multiple_choice":
        out["choice"] = parse_choice(answer, sample.options)
    if sample.problem_type in ("grounded_qa", "temporal_grounding"):
        span = parse_predicted_span(answer)
        out["iou"] = temporal_iou(span, sample.timestamps) if span is not None else 0.0
        if sample.problem_type == "grounded_qa":
            out["score"] = round(2 * out["score"] - out["iou"], 6)  # reward = 0.5·choice + 0.5·IoU
    return out


def is_labelled(sample: Sample) -> bool:
    """Whether the sample has something to score against (an answer, or spans for grounding)."""
    return sample.labelled


def score_prediction(sample: Sample, completion: str) -> dict:
    """One prediction record: completion, format, and (when labelled) accuracy / IoU."""
    record: dict = {"id": sample.id, "completion": completion, "format": format_reward(completion)}
    record |= {"gold": format_answer(sample), "prompt": build_question_text(sample)}
    record["sample_fingerprint"] = sample_fingerprint(sample)
    record["category"] = category(sample)
    if is_labelled(sample):
        record.update(_score(sample, completion))
    return record


def answer_key(sample: Sample, completion: str) -> str | None:
    """What a completion votes for in maj@K: the choice letter, the number, or the answer text."""
    answer = (extract_answer(completion) or "").strip()
    if sample.problem_type == "multiple_choice":
        return parse_choice(answer, sample.options)
    if sample.problem_type == "numerical":
        try:
            return repr(float(answer))
        except ValueError:
            return None
    return answer.lower() or None


def score_samples(sample: Sample, completions: list[str]) -> dict:
    """K sampled completions -> completions and, when labelled, scores, votes, mean / maj / best.

    maj is the score of the first completion giving the most frequent answer (ties: the answer
    seen first); 0 when no completion has a parseable answer.
    """
    if not is_labelled(sample):
        return {"completions": completions}
    scores = [_score(sample, c)["score"] for c in completions]
    keys = [answer_key(sample, c) for c in completions]
    votes = Counter(k for k in keys if k is not None)
    maj = scores[keys.index(votes.most_common(1)[0][0])] if votes else 0.0
    return {
        "completions": completions,
        "scores": scores,
        "answers": keys,
        "mean": sum(scores) / len(scores),
        "maj": maj,
        "best": max(scores),
    }


def predict(
    model: nn.Module,
    adapter: ModelAdapter,
    samples: list[Sample],
    media: MediaLoader,
    out_path: Path,
    settings: EvalSettings = EvalSettings(),
    *,
    restart_if_stale: bool = False,
    progress: bool = False,
    make_engine: Callable[[SamplingOptions], RolloutEngine] | None = None,
) -> list[dict]:
    """Greedy predictions for `samples` (plus K sampled completions each when `settings.sampled` is
    given), appended to `out_path`; returns all records (old + new).

    Records already in `out_path` are reused only when made for the same sample, prompt, model
    weights, decoding and video settings; otherwise EvalResumeError, or with `restart_if_stale`
    the file is evaluated again from scratch. `progress`: a bar with ETA (samples). `make_engine`
    (decoding settings -> engine) decodes; default HF generate on `model`.
    """
    if make_engine is None:

        def make_engine(options: SamplingOptions) -> RolloutEngine:
            return HFRolloutEngine(model, adapter, options, shared_prefix=settings.shared_prefix)

    sampled, batch_size = settings.sampled, settings.batch_size
    engine = make_engine(SamplingOptions(max_new_tokens=settings.max_new_tokens, temperature=0.0))
    sampler = None
    if sampled:
        sampler = make_engine(SamplingOptions(settings.max_new_tokens, temperature=sampled.temperature))
    decoding = asdict(sampled) if sampled else None
    generation = engine.generation_options()
    shared = prediction_key_settings(model, adapter, media, settings.max_new_tokens, generation)
    if settings.engine != "hf":  # another engine's predictions are not this one's (HF keys stay as they were)
        shared["rollout_engine"] = settings.engine
    keys = {s.id: record_key(shared, prompt_fingerprint(adapter, s)) for s in samples}
    done = resume_records(out_path, samples, decoding, {**keys, "__settings__": shared}, restart_if_stale)
    todo = [s for s in samples if s.id not in done and is_readable(media, s)]  # unreadable: skipped
    bar = TrainProgress(
        len(samples), len(done), enabled=progress, log_every=batch_size, keys=(), label="eval"
    )
    with open(out_path, "a", encoding="utf-8") as f, bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            prompts = [encode_sample(adapter, s, media(s)) for s in chunk]
            batch = adapter.collate(prompts)
            result = engine.generate(batch, 1)
            drawn = (
                sampler.generate(batch, sampled.num_samples, seed=_chunk_seed(sampled.seed, chunk))
                if sampler
                else None
            )
            for i, (sample, text) in enumerate(zip(chunk, result.texts, strict=True)):
                rec = score_prediction(sample, text)
                rec["eval_key"] = keys[sample.id]
                if drawn is not None:
                    k = sampled.num_samples
                    rec["decoding"] = decoding
                    rec["sampled"] = score_samples(sample, drawn.texts[i * k : (i + 1) * k])
                done[sample.id] = rec
                f.write(json.dumps(rec) + "\n")
            f.flush()
            bar.update(len(done))
    return [done[s.id] for s in samples if s.id in done]


def _chunk_seed(seed: int, chunk: list[Sample]) -> int:
    """Sampling seed of one batch: the same seed and sample ids give the same completions."""
    key = json.dumps([seed, [s.id for s in chunk]]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") & 0x7FFFFFFF


def _sampled_means(records: list[dict]) -> dict[str, float]:
    """mean_at_k, maj_at_k, pass_at_k over the records that carry sampled scores ({} if none)."""
    rs = [r["sampled"] for r in records if "scores" in r.get("sampled", {})]
    if not rs:
        return {}
    n = len(rs)
    return {
        "mean_at_k": sum(r["mean"] for r in rs) / n,
        "maj_at_k": sum(r["maj"] for r in rs) / n,
        "pass_at_k": sum(r["best"] for r in rs) / n,
    }


def accuracy_interval(scores: list[float]) -> list[float] | None:
    """95 % t-interval of the mean score, clipped to [0, 1]; at n = 1,000 and accuracy 0.5 it is
    about ±0.031 (1.96 · sqrt(0.25 / 1000))."""
    ci = t_interval(scores)
    return None if ci is None else [max(0.0, ci[0]), min(1.0, ci[1])]


def summarize(records: list[dict]) -> EvalReport:
    """Aggregate prediction records into an EvalReport."""
    labelled = [r for r in records if "score" in r]
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for r in labelled:
        if r.get("category"):
            by_cat[r["category"]].append(r)
    ious = [r["iou"] for r in labelled if "iou" in r]

    def mean(xs: list[float]) -> float:
        return float(sum(xs) / len(xs)) if xs else 0.0

    per_category = {}
    for cat, rs in sorted(by_cat.items()):
        entry = {"n": len(rs), "accuracy": mean([r["score"] for r in rs])}
        if any("iou" in r for r in rs):
            entry["miou"] = mean([r["iou"] for r in rs if "iou" in r])
        choices = Counter(r["choice"] or "none" for r in rs if "choice" in r)
        if choices:
            # A policy that answers one letter everywhere scores chance; this shows it at a glance.
            entry["choices"] = dict(sorted(choices.items()))
            entry["top_choice_share"] = max(choices.values()) / sum(choices.values())
        entry.update(_sampled_means(rs))
        per_category[cat] = entry
    scores = [r["score"] for r in labelled]
    return EvalReport(
        n=len(records),
        n_labelled=len(labelled),
        accuracy=mean(scores),
        accuracy_stderr=mean_stderr(scores),
        ci95=accuracy_interval(scores),
        format_rate=mean([r["format"] for r in records]),
        miou=mean(ious) if ious else None,
        per_category=per_category,
        sampling=next((r["decoding"] for r in records if r.get("decoding")), None),
        scores={str(r["id"]): float(r["score"]) for r in labelled},
        **_sampled_means(labelled),
    )


def evaluate(
    model: nn.Module,
    adapter: ModelAdapter,
    samples: list[Sample],
    media: MediaLoader,
    out_dir: str | Path,
    settings: EvalSettings = EvalSettings(),
    *,
    accelerator: Accelerator | None = None,
    restart_if_stale: bool = False,
    model_path: str | Path | None = None,
    data_path: str | Path | None = None,
    make_engine: Callable[[SamplingOptions], RolloutEngine] | None = None,
) -> EvalReport:
    """Evaluate on `samples` (sharded over ranks); predictions land in out_dir/predictions*.jsonl.

    Duplicate sample ids are a DuplicateIdError; stale predictions see `predict`. The report's
    header names `model_path`, `data_path` (with its sha256), the versions and `settings`.
    """
    check_unique_ids(samples)
    rank = accelerator.process_index if accelerator else 0
    world = accelerator.num_processes if accelerator else 1
    out_dir = Path(out_dir)
    shard = samples[rank::world]
    name = "predictions.jsonl" if world == 1 else f"predictions.rank{rank}.jsonl"
    records = predict(
        model,
        adapter,
        shard,
        media,
        out_dir / name,
        settings,
        restart_if_stale=restart_if_stale,
        progress=rank == 0,
        make_engine=make_engine,
    )
    skipped = [s.id for s in shard if skips_media(media) and s.id in media.skipped]
    if world > 1:
        records = [r for part in gather_object([records]) for r in part]
        skipped = [i for part in gather_object([skipped]) for i in part]
    report = summarize(records)
    report.n_skipped = len(skipped)
    report.header = eval_header(model, model_path, data_path, settings.describe())
    if rank == 0:
        (out_dir / "eval_report.json").write_text(json.dumps(report.to_json(), indent=2))
    return report
