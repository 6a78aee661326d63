"""Whole runs: data and model preparation, SFT warm start, eval before, RL (with an evaluation
every train.eval_every steps), eval after, summary.

With no model and no data in the config this is the embedded default: the synthetic
video tasks and the tiny Qwen2.5-VL are built into the run directory (and reused on later runs).
Every stage is resumable: SFT writes `sft_model/` once, eval predictions are appended as they are
made, and the RL loop resumes from its newest complete checkpoint.

One process per output directory (`artifacts.DirectoryLock`, taken by `train`, `sft` and `eval`),
and every model directory a run makes (tiny_model/, sft_model/, final_model/) gets a MANIFEST.json
of its files' sizes and sha256; a reused one is verified against it before use.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed

from deepvideo_r1.artifacts import (
    DamagedFileError,
    DirectoryLock,
    ManifestError,
    differing_keys,
    read_json_object,
    verify_manifest,
    write_manifest,
    write_text_atomic,
)
from deepvideo_r1.checkpoints.integrity import check_finite
from deepvideo_r1.config import RunConfig, save_config
from deepvideo_r1.data import load_samples
from deepvideo_r1.data.prompt_limits import check_prompt_lengths
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.distributed.sharding import (
    gather_policy_state,
    gathered_for_generation,
    is_sharded,
    strip_prefix,
)
from deepvideo_r1.evaluation.evaluate import EvalReport, EvalSettings, SampledDecoding, evaluate
from deepvideo_r1.evaluation.resume import check_unique_ids
from deepvideo_r1.metrics.trackers import build_trackers, start_trackers
from deepvideo_r1.models.adapter import ModelAdapter, load_policy
from deepvideo_r1.models.export import save_hf_model
from deepvideo_r1.models.media import MediaLoader, pixel_budget
from deepvideo_r1.models.precision import keep_fp32_master
from deepvideo_r1.preflight import preflight
from deepvideo_r1.presets.warm_start import (
    ANY_VALUE,
    INSTALLED_RECIPE,
    WEIGHT_NEUTRAL,
    check_installed,
    install_shipped,
    mismatch,
)
from deepvideo_r1.rollout import RolloutEngine
from deepvideo_r1.rollout.engine import sync_engine
from deepvideo_r1.run_summary import accuracy_change, finished_run_seconds
from deepvideo_r1.training.context import build_context, master_weights_path, trainable_model
from deepvideo_r1.training.engines import engine_for, start_engine
from deepvideo_r1.training.media_skips import media_skip_metrics
from deepvideo_r1.training.resume import EVAL_STEP_DIR, ResumePlan, plan_resume, train_file_bytes
from deepvideo_r1.training.sft import run_sft
from deepvideo_r1.training.trainer import train_loop

logger = logging.getLogger(__name__)

DONE_MARKER = "COMPLETE"
SFT_SETTINGS = "sft_settings.json"
TINY_SETTINGS = "tiny_settings.json"


class StaleModelError(RuntimeError):
    """A model directory the run would reuse (tiny_model/, sft_model/) was made with other settings."""


class StaleSftModelError(StaleModelError):
    """A run directory's sft_model/ was trained with other settings than this run's."""


@dataclass
class RunData:
    """The run's samples, and what was skipped under data.on_error: skip (records at load time,
    samples with unreadable media per stage), for summary.json."""

    train: list[Sample]
    eval: list[Sample]
    skipped: dict[str, int] = field(default_factory=dict)
    eval_file: str | None = None
    """Where `eval` came from (data.eval_file, or the synthetic eval.jsonl)."""


def _main_first(accelerator: Accelerator, fn):
    """Run `fn` on the main process, then on the others after it (which then find its files)."""
    result = fn() if accelerator.is_main_process else None
    accelerator.wait_for_everyone()
    return result if accelerator.is_main_process else fn()


@contextmanager
def output_lock(directory: str | Path, command: str, accelerator: Accelerator) -> Iterator[None]:
    """Hold `directory`'s DirectoryLock (on the main process) while the block runs; a refusal
    reaches every rank (the others would otherwise wait for rank 0 in a collective)."""
    lock, outcome = None, None
    if accelerator.is_main_process:
        try:
            lock = DirectoryLock(directory, command).acquire()
        except RuntimeError as e:
            outcome = e
    if accelerator.num_processes > 1:
        box = [outcome]
        broadcast_object_list(box, from_process=0)
        outcome = box[0]
    if outcome is not None:
        raise outcome
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def verified_model_dir(out: Path) -> Path:
    """`out` after checking its files against its MANIFEST.json; StaleModelError naming the file."""
    try:
        verify_manifest(out)
    except ManifestError as e:
        raise StaleModelError(str(e)) from e
    return out


def make_accelerator(cfg: RunConfig) -> Accelerator:
    """The run's Accelerator with the trackers of train.report_to (started by `start_run_trackers`)."""
    log_with = None
    if cfg.train.report_to:
        run_name = cfg.train.run_name or Path(cfg.train.output_dir).resolve().name
        log_with = build_trackers(cfg.train.report_to, cfg.train.project, run_name, cfg.train.output_dir)
    return Accelerator(cpu=not torch.cuda.is_available(), log_with=log_with)


def start_run_trackers(cfg: RunConfig, accelerator: Accelerator, checkpoint: Path | None = None) -> None:
    """Start the trackers with the resolved config; resuming from `checkpoint` (checkpoint-N),
    TensorBoard drops its events after step N (they are logged again) and W&B and MLflow
    continue the run's earlier tracker runs."""
    match = re.fullmatch(r"checkpoint-(\d+)", checkpoint.name) if checkpoint is not None else None
    purge = cfg.sft.steps + int(match.group(1)) + 1 if match else None
    start_trackers(
        accelerator,
        cfg.train.project,
        cfg.model_dump(mode="json"),
        purge_step=purge,
        run_dir=cfg.train.output_dir,
    )


def prepare_data(cfg: RunConfig, accelerator: Accelerator, require_labels: bool = True) -> RunData:
    """Load the configured files, or generate (once) the synthetic dataset.

    `require_labels`: a training sample without a gold label is a bad record (RL scores them all).
    """
    d = cfg.data
    skipped = {}
    if d.train_file is not None:
        loaded = load_samples(
            d.train_file, format=d.format, root=d.root, on_error=d.on_error, require_labels=require_labels
        )
        train, skipped["train_records"] = loaded.samples, len(loaded.skipped)
        evals = []
        if d.eval_file:
            loaded = load_samples(d.eval_file, format=d.format, root=d.root, on_error=d.on_error)
            evals, skipped["eval_records"] = loaded.samples, len(loaded.skipped)
        eval_file = d.eval_file
    else:
        from deepvideo_r1.data.synth import generate_synthetic_dataset

        s = d.synth
        out = Path(s.dir) if s.dir else Path(cfg.train.output_dir) / "synth"
        result = _main_first(accelerator, lambda: generate_synthetic_dataset(out, s.generator_config()))
        train = load_samples(result.train_path, format="jsonl").samples
        evals = load_samples(result.eval_path, format="jsonl").samples
        eval_file = str(result.eval_path)
    if d.max_eval_samples is not None:
        evals = evals[: d.max_eval_samples]
    check_unique_ids(evals, d.eval_file or "the synthetic eval split")
    return RunData(train=train, eval=evals, skipped=skipped, eval_file=eval_file)


def tiny_settings(cfg: RunConfig) -> dict:
    """What the built tiny model depends on; tiny_model/ is reused only when these are equal."""
    return {"family": cfg.model.family, "seed": cfg.train.seed, "tiny_sizes": dict(cfg.model.tiny_sizes)}


def prepare_model_dir(cfg: RunConfig, accelerator: Accelerator) -> Path:
    """model.path, or the tiny preset built (once) into <output_dir>/tiny_model."""
    if cfg.model.path is not None:
        return Path(cfg.model.path)
    from deepvideo_r1.models.tiny import make_tiny_model

    out = Path(cfg.train.output_dir) / "tiny_model"
    settings = tiny_settings(cfg)

    def build() -> Path:
        if (out / "config.json").exists():
            check_settings(out, settings, TINY_SETTINGS, StaleModelError)
            return verified_model_dir(out)
        make_tiny_model(out, family=cfg.model.family, seed=cfg.train.seed, **cfg.model.tiny_sizes)
        (out / TINY_SETTINGS).write_text(json.dumps(settings, indent=2))
        write_manifest(out)
        return out

    return _main_first(accelerator, build)


def load_model(cfg: RunConfig, path: Path, accelerator: Accelerator):
    """(model, adapter) from a local directory, with dtype/attention from the config."""
    dtype = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16}[cfg.model.dtype]
    attn = None if cfg.model.attn_implementation == "auto" else cfg.model.attn_implementation
    if attn is None and cfg.model.shared_prefix:
        attn = "sdpa"  # the shared-prefix completion mask is 4-D, which flash_attention_2 cannot take
    return load_policy(
        path, device=accelerator.device, dtype=dtype, attn_implementation=attn, budget=pixel_budget(cfg.video)
    )


def check_prompts(cfg: RunConfig, adapter: ModelAdapter, samples: list[Sample], source: str | None) -> None:
    """data.max_prompt_tokens over `samples` with the model's tokenizer (PromptTooLongError)."""

    def count(text: str) -> int:
        return len(adapter.tokenizer(text, add_special_tokens=False)["input_ids"])

    check_prompt_lengths(samples, count, cfg.data.max_prompt_tokens, source or "the synthetic data")


def media_loader(cfg: RunConfig, adapter: ModelAdapter) -> MediaLoader:
    cache = Path(cfg.video.cache_dir) if cfg.video.cache_dir else Path(cfg.train.output_dir) / "cache"
    factor = adapter.family.patch_size * adapter.family.merge_size
    return MediaLoader(cfg.video, cache, factor=factor, on_error=cfg.data.on_error)


def save_model(
    model,
    adapter: ModelAdapter,
    out: Path,
    accelerator: Accelerator,
    policy=None,
    *,
    base_dir: Path | None = None,
) -> Path:
    """A complete HF model directory in `out` (LoRA merged, base_dir's processor files kept), then
    a completion marker.

    `policy`, the trained PolicyModule as prepared: when its parameters are sharded the full
    weights are gathered first (a collective) and rank 0 writes them.
    """
    full = None
    if policy is not None and is_sharded(policy):
        full = strip_prefix(gather_policy_state(accelerator, policy), "model.")
    if accelerator.is_main_process:
        check_finite(full if full is not None else model.state_dict(), str(out))
        save_hf_model(model, adapter.tokenizer, out, base_dir=base_dir, state_dict=full)
        write_manifest(out)
        (out / DONE_MARKER).write_text("ok")
    accelerator.wait_for_everyone()
    return out


NO_HINT_KEYS = {"hint_fraction", "hint_max_steps"}
"""Left out of sft_settings when no example is hinted (they change nothing then), so warm starts made
before these options existed, the shipped one among them, still match."""


def sft_settings(cfg: RunConfig) -> dict:
    """What the warm start depends on; a saved SFT model is reused only when these are equal."""
    settings = {
        "sft": cfg.sft.model_dump(mode="json", exclude=NO_HINT_KEYS if not cfg.sft.hint_fraction else None),
        "seed": cfg.train.seed,
        "max_grad_norm": cfg.train.max_grad_norm,
        "model": cfg.model.model_dump(mode="json"),
        "data": cfg.data.model_dump(mode="json", exclude={"eval_file", "max_eval_samples"}),
        "video": cfg.video.model_dump(mode="json", exclude={"cache_dir"}),
    }
    if cfg.data.train_file is not None:  # the same path with other content is other data
        settings["train_file_bytes"] = train_file_bytes(cfg.data.train_file)
    return settings


def check_sft_settings(out: Path, settings: dict) -> None:
    """Raise StaleSftModelError unless `out`/sft_settings.json records `settings` (WEIGHT_NEUTRAL
    keys aside: they do not change the trained weights)."""
    check_settings(out, settings, SFT_SETTINGS, StaleSftModelError, ignore=WEIGHT_NEUTRAL)


def check_settings(
    out: Path, settings: dict, name: str, error: type[StaleModelError], ignore: tuple[str, ...] = ()
) -> None:
    """Raise `error` naming every differing key (but `ignore`) unless `out`/`name` records `settings`."""
    path = out / name
    if not path.exists():
        raise error(f"{out} has no {name} (made by an older version); delete it to rebuild it")
    try:
        saved = read_json_object(path)
    except DamagedFileError as e:
        raise error(f"{e}; delete {out} to rebuild it") from e
    differ = [k for k in differing_keys(saved, settings) if k not in ignore]
    if differ:
        raise error(
            f"{out} was made with other settings ({', '.join(differ)} differ, see {path}); "
            "use another --output-dir or delete it to rebuild it"
        )


def sft_stage(cfg: RunConfig, model_dir: Path, data: RunData, accelerator: Accelerator) -> Path:
    """Supervised warm start into <output_dir>/sft_model (skipped when complete with equal settings)."""
    out = Path(cfg.train.output_dir) / "sft_model"
    if (out / DONE_MARKER).exists():
        check_sft_settings(out, sft_settings(cfg))
        logger.info("SFT model found in %s; skipping the supervised stage", out)
        return verified_model_dir(out)
    model, adapter = load_model(cfg, model_dir, accelerator)
    check_prompts(cfg, adapter, data.train, cfg.data.train_file)
    model = trainable_model(model, cfg)
    if master_weights_path(cfg, accelerator, model):  # SFT is never sharded by train.fsdp: autocast
        keep_fp32_master(model, autocast=True)
    media = media_loader(cfg, adapter)
    losses = run_sft(
        model,
        adapter,
        data.train,
        media,
        cfg.sft,
        accelerator,
        seed=cfg.train.seed,
        max_grad_norm=cfg.train.max_grad_norm,
        run_dir=cfg.train.output_dir,
        log_every=cfg.train.log_every,
    )
    data.skipped["sft_media"] = int(media_skip_metrics(media, accelerator).get("data/media_skipped", 0))
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "sft_losses.json").write_text(json.dumps(losses))
        (out / SFT_SETTINGS).write_text(json.dumps(sft_settings(cfg), indent=2))
    return save_model(model, adapter, out, accelerator, base_dir=model_dir)


def shipped_fits(cfg: RunConfig) -> bool:
    """sft.shipped, and the shipped warm start is this run's recipe (if not, the log says why)."""
    if not cfg.sft.shipped:
        return False
    why_not = mismatch(sft_settings(cfg))
    if why_not:
        logger.info("sft.shipped: the shipped warm start does not fit this run (%s); not using it", why_not)
    return why_not is None


def shipped_sft_stage(cfg: RunConfig, accelerator: Accelerator) -> Path:
    """The shipped warm start, checked and installed into <output_dir>/sft_model."""
    out = Path(cfg.train.output_dir) / "sft_model"
    settings = sft_settings(cfg)

    def install() -> Path:
        if (out / DONE_MARKER).exists():  # installed by a run at any seed or data size: it serves them all
            check_settings(out, settings, SFT_SETTINGS, StaleSftModelError, ignore=ANY_VALUE)
            check_installed(out)  # the recipe's hashes, again: this copy is reported as the shipped one
            return verified_model_dir(out)
        install_shipped(out, settings)
        (out / SFT_SETTINGS).write_text(json.dumps(settings, indent=2))
        write_manifest(out)
        (out / DONE_MARKER).write_text("ok")
        return out

    return _main_first(accelerator, install)


def warm_start_model(cfg: RunConfig, data: RunData, accelerator: Accelerator) -> Path:
    """The model RL starts from: model.path or the tiny preset after the SFT stage (the shipped
    warm start when sft.shipped and it fits, else trained when sft.steps > 0)."""
    s = cfg.sft
    if shipped_fits(cfg):
        stage("SFT", f"the shipped warm start ({s.steps} steps x {s.batch_size} samples, trained at seed 0)")
        return shipped_sft_stage(cfg, accelerator)
    model_dir = prepare_model_dir(cfg, accelerator)
    if s.steps > 0:
        done = (Path(cfg.train.output_dir) / "sft_model" / DONE_MARKER).exists()
        todo = f"{s.steps} steps x {s.batch_size} samples from {model_dir}"
        stage("SFT", "the complete sft_model/ of this run is reused" if done else todo)
        model_dir = sft_stage(cfg, model_dir, data, accelerator)
    return model_dir


def eval_settings_of(cfg: RunConfig, sampled: SampledDecoding | None = None) -> EvalSettings:
    """How this run's evaluations decode (one value: evaluate call, predictions' key, report header)."""
    return EvalSettings(
        max_new_tokens=cfg.rollout.max_new_tokens,
        batch_size=cfg.train.eval_batch_size,
        shared_prefix=cfg.model.shared_prefix,
        engine=cfg.rollout.engine,
        sampled=sampled,
    )


def eval_stage(
    cfg: RunConfig,
    model,
    adapter,
    data: RunData,
    name: str,
    accelerator: Accelerator,
    *,
    model_path: Path | None = None,
    engine: RolloutEngine | None = None,
) -> EvalReport | None:
    """Greedy eval into <output_dir>/<name>; `model_path` is what the report header names; `engine`:
    the run's rollout engine (synced to `model` first), None = HF generate on `model`."""
    if not data.eval:
        return None
    sync_engine(engine, model)  # vLLM holds its own copy of the weights; HF: nothing to do
    report = evaluate_with_config(
        cfg,
        model,
        adapter,
        data.eval,
        Path(cfg.train.output_dir) / name,
        accelerator,
        engine=engine,
        restart_if_stale=True,  # the run owns this directory: stale predictions are redone
        model_path=model_path,
        data_path=data.eval_file,
    )
    ci = "" if report.ci95 is None else f" (95 % interval {report.ci95[0]:.3f}-{report.ci95[1]:.3f})"
    logger.info("%s: accuracy %.3f%s on %d samples", name, report.accuracy, ci, report.n_labelled)
    data.skipped[f"{name}_media"] = report.n_skipped
    return report


def evaluate_with_config(
    cfg: RunConfig,
    model,
    adapter: ModelAdapter,
    samples: list[Sample],
    out: Path,
    accelerator,
    engine: RolloutEngine | None = None,
    sampled: SampledDecoding | None = None,
    **options,
) -> EvalReport:
    """`evaluate` with the run's evaluation settings, video settings and rollout engine (`engine`,
    already synced; None = HF generate on `model`)."""
    if engine is not None:
        options["make_engine"] = engine_for(engine, model, adapter, cfg.model.shared_prefix)
    return evaluate(
        model,
        adapter,
        samples,
        media_loader(cfg, adapter),
        out,
        eval_settings_of(cfg, sampled),
        accelerator=accelerator,
        **options,
    )


def eval_dir_name(step: int, max_steps: int) -> str:
    """Where the evaluation after RL step `step` >= 1 writes: eval_after (last) or eval_step_<N>."""
    return "eval_after" if step == max_steps else EVAL_STEP_DIR.format(step=step)


class PeriodicEval:
    """step -> eval/* metrics of the current policy, for `train_loop` (step 0: the `before` report).

    Predictions are resumable, so a step evaluated before an interruption is summarised again, not
    decoded again (while the weights are the same). `reports` keeps each report made here, so the
    evaluation after RL (train_loop evaluates the last step) is not run a second time.
    """

    def __init__(
        self,
        cfg: RunConfig,
        ctx,
        adapter,
        data: RunData,
        before: EvalReport | None,
        engine: RolloutEngine | None = None,
    ) -> None:
        self.cfg, self.ctx, self.adapter, self.data, self.before = cfg, ctx, adapter, data, before
        self.engine = engine  # the run's rollout engine (None: HF generate on the policy)
        self.reports: dict[int, EvalReport | None] = {}

    def __call__(self, step: int) -> dict[str, float]:
        if step == 0:
            return self.before.metrics() if self.before else {}
        name = eval_dir_name(step, self.cfg.train.max_steps)
        path = Path(self.cfg.train.output_dir) / "final_model" if name == "eval_after" else None
        with gathered_for_generation(self.ctx.policy):  # sharded weights are whole while it decodes
            report = eval_stage(
                self.cfg,
                self.ctx.model,
                self.adapter,
                self.data,
                name,
                self.ctx.accelerator,
                model_path=path,
                engine=self.engine,
            )
        self.reports[step] = report
        return report.metrics() if report else {}


def run_training(cfg: RunConfig, *, overwrite: bool = False, resume_with_changes: bool = False) -> dict:
    """The whole run; returns (and writes to <output_dir>/summary.json) the summary.

    Where it resumes from is decided first (`training.resume.plan_resume`): `overwrite` clears a
    previous run's outputs, `resume_with_changes` accepts a checkpoint trained with other settings.
    """
    preflight(cfg, "train")
    start = time.time()
    accelerator = make_accelerator(cfg)
    with output_lock(cfg.train.output_dir, "train", accelerator):
        resume = plan_resume(cfg, accelerator, overwrite=overwrite, with_changes=resume_with_changes)
        start_run_trackers(cfg, accelerator, resume.checkpoint)
        try:
            summary = _run_stages(cfg, accelerator, resume)
        finally:
            accelerator.end_training()  # closes the tracker runs (W&B, MLflow) even after an error
        summary = _finish_summary(cfg, accelerator, summary, start, resume)
    return summary


def _finish_summary(cfg: RunConfig, accelerator: Accelerator, summary: dict, start: float, resume) -> dict:
    """The summary with this process's wall time and the checkpoint resumed from, written atomically."""
    summary["wall_seconds"] = round(time.time() - start, 1)  # of this process only
    summary["resumed_from"] = resume.checkpoint.name if resume.checkpoint else None
    summary["wall_seconds"] = finished_run_seconds(cfg, resume) or summary["wall_seconds"]
    if accelerator.is_main_process:
        write_text_atomic(Path(cfg.train.output_dir) / "summary.json", json.dumps(summary, indent=2))
    return summary


def stage(name: str, detail: str) -> None:
    """A banner line between stages: what starts and its size."""
    logger.info("── %s: %s", name, detail)


def _run_stages(cfg: RunConfig, accelerator: Accelerator, resume: ResumePlan) -> dict:
    set_seed(cfg.train.seed)
    out = Path(cfg.train.output_dir)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    stage("data", cfg.data.train_file or "synthetic video tasks (generated once into the run directory)")
    data = prepare_data(cfg, accelerator)
    sizes = f"{len(data.train)} train / {len(data.eval)} eval samples"
    stage("model", f"{sizes}; {cfg.model.path or 'tiny preset'}")
    model_dir = warm_start_model(cfg, data, accelerator)
    model, adapter = load_model(cfg, model_dir, accelerator)
    check_prompts(cfg, adapter, data.train, cfg.data.train_file)
    check_prompts(cfg, adapter, data.eval, data.eval_file)
    stage("eval before RL", f"{len(data.eval)} samples, greedy, {cfg.rollout.max_new_tokens} new tokens")
    engine = start_engine(cfg, model_dir, adapter, accelerator.process_index)  # None for hf
    with gathered_for_generation(model):  # ZeRO-3 partitions the weights at load
        before = eval_stage(
            cfg, model, adapter, data, "eval_before", accelerator, model_path=model_dir, engine=engine
        )
    r = cfg.rollout
    rl = f"{cfg.train.max_steps} steps x {r.prompts_per_step} prompts x G={r.group_size} ({cfg.algo.loss})"
    stage("RL", rl)
    ctx = build_context(cfg, accelerator, model, adapter, data.train, media_loader(cfg, adapter), engine)
    evaluate_at = PeriodicEval(cfg, ctx, adapter, data, before, engine)
    last = train_loop(ctx, resume=resume, evaluate=evaluate_at)  # logs step 0 and the last step's eval
    data.skipped["train_media"] = int(media_skip_metrics(ctx.media, accelerator).get("data/media_skipped", 0))
    final = out / "final_model"
    if cfg.train.max_steps in evaluate_at.reports:
        after = evaluate_at.reports[cfg.train.max_steps]
    else:  # resumed from the last checkpoint: its evaluation was logged; summarise it again
        stage("eval after RL", f"{len(data.eval)} samples")
        with gathered_for_generation(ctx.policy):
            after = eval_stage(
                cfg, ctx.model, adapter, data, "eval_after", accelerator, model_path=final, engine=engine
            )
    stage("save", f"the final model to {final}")
    save_model(ctx.model, adapter, final, accelerator, policy=ctx.policy, base_dir=model_dir)
    summary = {
        "eval_accuracy_before": before.accuracy if before else None,
        "eval_accuracy_after": after.accuracy if after else None,
        "eval_change": accuracy_change(before, after),
        "eval_before": before.to_json() if before else None,
        "eval_after": after.to_json() if after else None,
        "steps": cfg.train.max_steps,
        "world_size": accelerator.num_processes,
        "shipped_warm_start": (model_dir / INSTALLED_RECIPE).exists(),
        "last_metrics": last,
        "skipped": data.skipped,
    }
    if accelerator.is_main_process:
        from deepvideo_r1.metrics.plots import plot_run

        plot_run(out)
        logger.info("plots written to %s", out / "plots")
    accelerator.wait_for_everyone()
    return summary


def run_sft_only(cfg: RunConfig) -> Path:
    """`deepvideo-r1 sft`: prepare data and model, run the supervised stage; returns sft_model/."""
    preflight(cfg, "sft")
    accelerator = make_accelerator(cfg)
    with output_lock(cfg.train.output_dir, "sft", accelerator):
        start_run_trackers(cfg, accelerator)
        try:
            set_seed(cfg.train.seed)
            data = prepare_data(cfg, accelerator, require_labels=False)  # SFT leaves unlabelled samples out
            if shipped_fits(cfg):
                return shipped_sft_stage(cfg, accelerator)
            return sft_stage(cfg, prepare_model_dir(cfg, accelerator), data, accelerator)
        finally:
            accelerator.end_training()


def run_config_of(model_dir: str | Path) -> Path | None:
    """The config.yaml of the run a model directory sits in (RUN/final_model, RUN/sft_model), or None."""
    parent = Path(model_dir).resolve().parent
    config = parent / "config.yaml"
    return config if config.is_file() and (parent / "metrics.jsonl").exists() else None


def run_eval_only(cfg: RunConfig, out_dir: str | Path, sampled: SampledDecoding | None = None) -> EvalReport:
    """`deepvideo-r1 eval`: greedy (+ optionally sampled) evaluation of model.path on
    data.eval_file into `out_dir`."""
    preflight(cfg, "eval")
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    with output_lock(out_dir, "eval", accelerator):
        return _eval_only(cfg, out_dir, accelerator, sampled)


def _eval_only(cfg: RunConfig, out_dir, accelerator: Accelerator, sampled: SampledDecoding | None):
    d = cfg.data
    samples = load_samples(d.eval_file, format=d.format, root=d.root, on_error=d.on_error).samples
    if d.max_eval_samples is not None:
        samples = samples[: d.max_eval_samples]
    check_unique_ids(samples, d.eval_file)
    model, adapter = load_model(cfg, Path(cfg.model.path), accelerator)
    check_prompts(cfg, adapter, samples, d.eval_file)
    engine = start_engine(cfg, Path(cfg.model.path), adapter, accelerator.process_index)
    sync_engine(engine, model)  # vLLM holds its own copy of the weights; HF: nothing to do
    return evaluate_with_config(
        cfg,
        model,
        adapter,
        samples,
        out_dir,
        accelerator,
        engine=engine,
        sampled=sampled,
        model_path=cfg.model.path,
        data_path=d.eval_file,
    )
