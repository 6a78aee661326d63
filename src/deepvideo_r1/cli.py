"""Command-line interface: each command parses, loads config and calls the library."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

app = typer.Typer(
    name="deepvideo-r1",
    help="Reinforcement fine-tuning of video LLMs with Reg-GRPO and difficulty-aware augmentation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from deepvideo_r1 import __version__

        typer.echo(f"deepvideo-r1 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """deepvideo-r1 command line."""


config_app = typer.Typer(help="Show the resolved config or list every --set key.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@contextmanager
def _user_errors(*errors: type[Exception], label: str = "error") -> Iterator[None]:
    """The given user errors become one line on stderr and exit code 2, not a traceback."""
    try:
        yield
    except errors as e:
        typer.echo(f"{label}: {e}", err=True)
        raise typer.Exit(2) from None


@app.command("inspect-data")
def inspect_data(
    file: str = typer.Argument(..., help="Dataset file (jsonl or JSON list)."),
    format: str = typer.Option("auto", "--format", help="auto, jsonl, seedbench_r1, longvideobench, ..."),
    root: str = typer.Option(None, "--root", help="Media root (default: the file's directory)."),
    as_json: bool = typer.Option(False, "--json", help="One normalised sample per line on stdout."),
    check_media: bool = typer.Option(False, "--check-media", help="Fail (or skip) on missing media."),
    on_error: str = typer.Option("raise", "--on-error", help="raise | skip"),
    limit: int = typer.Option(None, "--limit", min=0, help="Show at most N samples."),
) -> None:
    """Load a dataset file, then print its normalised samples, counts per type and skipped records."""
    import json

    from rich.console import Console

    from deepvideo_r1.data import DataError, load_samples
    from deepvideo_r1.data.inspect import inspect_record, samples_table, summary_lines

    err = Console(stderr=True)
    if on_error not in ("raise", "skip"):
        err.print(f"error: --on-error must be raise or skip, got {on_error!r}", style="red", markup=False)
        raise typer.Exit(2)
    try:
        result = load_samples(file, format=format, root=root, on_error=on_error, check_media=check_media)
    except DataError as e:
        err.print(f"error: {e}", style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    shown = result.samples if limit is None else result.samples[:limit]
    if as_json:
        for sample in shown:
            typer.echo(json.dumps(inspect_record(sample), ensure_ascii=False))
        err.print("\n".join(summary_lines(result)), markup=False, highlight=False, soft_wrap=True)
        return
    out = Console()
    out.print(samples_table(shown, title=file))
    out.print("\n".join(summary_lines(result)), markup=False, highlight=False, soft_wrap=True)


@app.command("plot")
def plot(
    run_dir: str = typer.Argument(..., help="Run directory holding metrics.jsonl."),
    out: str = typer.Option(
        None, "--output-dir", "-o", "--out", help="Where PNGs go (default: RUN_DIR/plots)."
    ),
) -> None:
    """Write PNG curves (reward, accuracy, vanishing ratio, augmentation, loss) from metrics.jsonl."""
    from pathlib import Path

    from deepvideo_r1.metrics.logger import METRICS_FILE
    from deepvideo_r1.metrics.plots import plot_run

    if not (Path(run_dir) / METRICS_FILE).is_file():
        typer.echo(f"error: {Path(run_dir) / METRICS_FILE} does not exist", err=True)
        raise typer.Exit(2)
    report = plot_run(run_dir, out)
    for path in report.written:
        typer.echo(f"wrote {path}")
    for name, keys in report.skipped.items():
        typer.echo(f"skipped {name}: no {', '.join(keys)} in the metrics")


@app.command("synth")
def synth(
    out: str = typer.Option(
        ..., "--output-dir", "-o", "--out", help="Output directory (train.jsonl, eval.jsonl, videos/)."
    ),
    n: int = typer.Option(320, "--n", min=1, help="Training samples (as data.synth.n_train)."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives the same bytes."),
    tasks: list[str] = typer.Option(None, "--tasks", help="Task names, comma-separated or repeated."),
    difficulty: str = typer.Option("easy", "--difficulty", help="easy | medium | hard | mixed"),
    n_eval: int = typer.Option(80, "--n-eval", min=0, help="Held-out samples (as data.synth.n_eval)."),
    size: int = typer.Option(56, "--size", help="Frame side in pixels (multiple of 28)."),
    num_frames: int = typer.Option(8, "--num-frames", help="Frames per clip."),
    fps: float = typer.Option(4.0, "--fps", help="Frames per second."),
    force: bool = typer.Option(
        False, "--force/--no-force", help="Regenerate even if the config is unchanged."
    ),
) -> None:
    """Generate the synthetic video reasoning dataset (mp4 clips of coloured shapes + questions)."""
    from deepvideo_r1.data.synth import SynthError, generate_synthetic_dataset
    from deepvideo_r1.data.synth.config import SynthConfig, SynthConfigError

    chosen = tuple(t.strip() for arg in tasks or [] for t in arg.split(",") if t.strip())
    options = dict(
        n=n + n_eval, seed=seed, difficulty=difficulty, n_eval=n_eval, size=size, num_frames=num_frames
    )
    config = SynthConfig(**options, fps=fps, **({"tasks": chosen} if chosen else {}))
    with _user_errors(SynthConfigError, SynthError):
        result = generate_synthetic_dataset(out, config, force=force)
    verb = "reused" if result.reused else f"generated in {result.seconds:.1f} s"
    typer.echo(f"{verb}: {result.train_path} and {result.eval_path}")
    for split, counts in result.counts.items():
        typer.echo(f"{split}: " + ", ".join(f"{task}={k}" for task, k in counts.items()))


@app.command("make-tiny-model")
def make_tiny_model_cmd(
    out: str = typer.Option(..., "--output-dir", "-o", "--out", help="Output model directory."),
    family: str = typer.Option("qwen2.5-vl", "--family", help="qwen2-vl | qwen2.5-vl | qwen3-vl"),
    seed: int = typer.Option(0, "--seed", help="Weight-init seed; same seed gives the same files."),
    text_hidden: int = typer.Option(128, "--text-hidden", help="Text hidden size."),
    text_layers: int = typer.Option(4, "--text-layers", help="Text decoder layers."),
    text_heads: int = typer.Option(4, "--text-heads", help="Text attention heads."),
    vision_hidden: int = typer.Option(128, "--vision-hidden", help="Vision tower width."),
    vision_depth: int = typer.Option(2, "--vision-depth", help="Vision tower blocks."),
    vocab_size: int = typer.Option(1024, "--vocab-size", help="Target BPE vocabulary (before specials)."),
) -> None:
    """Write a random-init tiny Qwen-VL model and a locally trained tokenizer (loads with from_pretrained)."""
    from deepvideo_r1.models import UnknownFamilyError, make_tiny_model

    sizes = dict(text_hidden=text_hidden, text_layers=text_layers, text_heads=text_heads)
    sizes |= dict(vision_hidden=vision_hidden, vision_depth=vision_depth, vocab_size=vocab_size)
    with _user_errors(UnknownFamilyError):
        path = make_tiny_model(out, family=family, seed=seed, **sizes)
    typer.echo(f"wrote {family} tiny model to {path}")


def _run_errors(*errors: type[Exception]):
    """`_user_errors` for a run command: its own `errors`, plus preflight, data, media, model
    loading, shipped warm start and output-directory lock errors."""
    from deepvideo_r1.artifacts import DirectoryLockedError
    from deepvideo_r1.data import DataError
    from deepvideo_r1.models.adapter import ModelLoadError
    from deepvideo_r1.models.media import SampleMediaError
    from deepvideo_r1.preflight import PreflightError
    from deepvideo_r1.presets.warm_start import ShippedWarmStartError
    from deepvideo_r1.rollout.hf import NonFiniteLogitsError

    common = (PreflightError, DataError, SampleMediaError, ShippedWarmStartError, ModelLoadError)
    return _user_errors(*common, DirectoryLockedError, NonFiniteLogitsError, *errors)


def _run_config(config: str | None, overrides: list[str], flags: dict[str, object]):
    """Defaults (the tiny CPU preset when no --config) -> YAML -> --set overrides -> flags."""
    from deepvideo_r1.config import ConfigError, load_config
    from deepvideo_r1.presets import TINY_CPU

    sets = list(overrides) + [f"{k}={v}" for k, v in flags.items() if v is not None]
    with _user_errors(ConfigError, label="config error"):
        return load_config(config or TINY_CPU, sets)


_CONFIG = typer.Option(None, "--config", "-c", help="YAML config; default: the tiny CPU preset.")
_SET = typer.Option([], "--set", help="Dotted override, e.g. --set algo.beta=0.04 (repeatable).")


def _is_main_process() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0


LOG_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
"""ISO 8601 local time (`12/06/26` is read differently in different countries)."""


def _log_handler(stream):
    """Rich's handler on a terminal; outside one (a log file, a pipe) plain lines, one per record,
    never wrapped (rich wraps at 80 columns when it cannot see a terminal, which breaks grep)."""
    import logging

    if stream.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        return RichHandler(console=Console(stderr=True), show_path=False, log_time_format=LOG_TIME_FORMAT)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", LOG_TIME_FORMAT))
    return handler


def _setup_logging() -> None:
    """INFO on the main process, warnings only on the other ranks (no duplicated lines)."""
    import logging
    import sys

    from transformers.utils import logging as hf_logging

    level = logging.INFO if _is_main_process() else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", handlers=[_log_handler(sys.stderr)])
    hf_logging.disable_progress_bar()  # its shard/loading bars would interleave with ours


@app.command("train")
def train(
    config: str | None = _CONFIG,
    overrides: list[str] = _SET,
    output_dir: str | None = typer.Option(None, "--output-dir", "-o", help="Run directory."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="RL steps."),
    save_every: int | None = typer.Option(None, "--save-every", help="Checkpoint every N steps."),
    seed: int | None = typer.Option(None, "--seed", help="Run seed."),
    resume: str | None = typer.Option(None, "--resume", help="auto | none | a checkpoint path."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Clear a previous run's outputs from the run directory first."
    ),
    with_changes: bool = typer.Option(
        False, "--resume-with-changes", help="Resume from a checkpoint trained with other settings."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run/--no-dry-run", help="Check config, data and model directory, then stop."
    ),
    check_media: bool = typer.Option(
        False,
        "--check-media/--no-check-media",
        help="With --dry-run: decode the first frame of every video and image.",
    ),
) -> None:
    """SFT warm start (shipped or trained), eval, Reg-GRPO with difficulty-aware augmentation, eval."""
    from deepvideo_r1.checkpoints.integrity import CheckpointError
    from deepvideo_r1.evaluation import DuplicateIdError
    from deepvideo_r1.metrics.trackers import TrackerError
    from deepvideo_r1.pipeline import StaleModelError, run_training
    from deepvideo_r1.run_summary import summary_line
    from deepvideo_r1.training.guard import NonFiniteUpdateError
    from deepvideo_r1.training.resume import ResumeError

    flags = {"train.output_dir": output_dir, "train.max_steps": max_steps, "train.save_every": save_every}
    flags |= {"train.seed": seed, "train.resume": resume}
    if dry_run:
        _dry_run(_run_config(config, overrides, flags), check_media, overwrite, with_changes)
        return
    _setup_logging()
    cfg = _run_config(config, overrides, flags)
    errors = (StaleModelError, ResumeError, CheckpointError, DuplicateIdError, NonFiniteUpdateError)
    errors += (TrackerError,)
    with _run_errors(*errors):
        summary = run_training(cfg, overwrite=overwrite, resume_with_changes=with_changes)
    if _is_main_process():
        typer.echo(summary_line(summary, cfg.train.output_dir))


def _dry_run(cfg, check_media: bool, overwrite: bool, with_changes: bool) -> None:
    from deepvideo_r1.checkpoints.integrity import CheckpointError
    from deepvideo_r1.dryrun import dry_run
    from deepvideo_r1.metrics.trackers import TrackerError
    from deepvideo_r1.models.adapter import ModelLoadError
    from deepvideo_r1.pipeline import StaleModelError
    from deepvideo_r1.training.resume import ResumeError

    errors = (ModelLoadError, TrackerError, ResumeError, CheckpointError, StaleModelError)
    with _run_errors(*errors):
        lines = dry_run(cfg, check_media=check_media, overwrite=overwrite, with_changes=with_changes)
    typer.echo("\n".join([*lines, "dry run: config, data and model are usable; nothing was trained"]))


@app.command("sft")
def sft(
    config: str | None = _CONFIG,
    overrides: list[str] = _SET,
    output_dir: str | None = typer.Option(None, "--output-dir", "-o", help="Run directory."),
) -> None:
    """Supervised warm start only (the shipped one when sft.shipped fits); writes <output-dir>/sft_model."""
    from deepvideo_r1.metrics.trackers import TrackerError
    from deepvideo_r1.pipeline import StaleModelError, run_sft_only

    _setup_logging()
    with _run_errors(StaleModelError, TrackerError):
        path = run_sft_only(_run_config(config, overrides, {"train.output_dir": output_dir}))
    typer.echo(f"wrote {path}")


@app.command("eval")
def eval_cmd(
    model: str = typer.Option(..., "--model", help="Model directory (from_pretrained layout)."),
    data: str = typer.Option(..., "--data", help="Evaluation file."),
    fmt: str = typer.Option("auto", "--format", help="Data format (see inspect-data)."),
    root: str | None = typer.Option(None, "--root", help="Media root."),
    out: str = typer.Option(
        "eval_out", "--output-dir", "-o", "--out", help="Where predictions and the report go."
    ),
    num_samples: int = typer.Option(
        0, "--num-samples", min=0, help="Also draw K sampled completions per sample: mean/maj/pass@K."
    ),
    temperature: float = typer.Option(1.0, "--temperature", help="Temperature of the sampled completions."),
    sample_seed: int = typer.Option(0, "--sample-seed", help="Seed of the sampled completions."),
    config: str | None = _CONFIG,
    overrides: list[str] = _SET,
) -> None:
    """Greedy decoding on a dataset (+ K samples: mean/maj/pass@K): accuracy overall and per
    category; resumable predictions. A model inside a run directory (RUN/final_model) is evaluated
    with that run's config.yaml unless --config is given."""
    from pathlib import Path

    from deepvideo_r1.evaluation import DuplicateIdError, EvalResumeError, SampledDecoding
    from deepvideo_r1.pipeline import run_config_of, run_eval_only

    flags = {"model.path": model, "data.eval_file": data, "data.format": fmt, "data.root": root}
    _setup_logging()
    run_config = run_config_of(model) if config is None else None
    used = str(run_config or config or "") or None
    whose = " (the model's run)" if run_config else ""
    typer.echo(f"config: {used or 'the tiny CPU preset'}{whose}", err=True)
    sampled = SampledDecoding(num_samples, temperature, sample_seed) if num_samples else None
    with _run_errors(EvalResumeError, DuplicateIdError):
        report = run_eval_only(_run_config(used, overrides, flags), out, sampled=sampled)
    typer.echo("\n".join([*report.summary_lines(), f"report: {Path(out) / 'eval_report.json'}"]))


@app.command("ablate")
def ablate(
    table: list[str] = typer.Option(
        ..., "--table", help="4, 5, 7, 8, mechanism, iterations or all (repeatable, a,b)."
    ),
    seeds: str = typer.Option("0,1,2,3,4", "--seeds", help="Seeds a,b,c (own data, warm start)."),
    out: str = typer.Option(
        ..., "--output-dir", "-o", "--out", help="Output directory (resumable: finished row x seed kept)."
    ),
    rows: str | None = typer.Option(None, "--rows", help="Only these rows (a,b); baselines are kept."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Runs at once."),
    threads: int = typer.Option(
        1, "--threads", min=1, help="Torch threads per run (part of the settings: results depend on it)."
    ),
    report_only: bool = typer.Option(
        False, "--report-only", help="Run nothing: rewrite the report from the finished results in OUT."
    ),
    config: str | None = _CONFIG,
    overrides: list[str] = _SET,
) -> None:
    """The paper's ablation tables: one SFT warm start per seed, every row's RL stage, then
    OUT/ablations.json, OUT/ablations.md and plots."""
    from deepvideo_r1.ablations import AblationError, BaseSpec, build_tables, run_ablations
    from deepvideo_r1.ablations.rows import UnknownRowError
    from deepvideo_r1.artifacts import DirectoryLockedError
    from deepvideo_r1.config import ConfigError

    _setup_logging()
    names = [t.strip() for arg in table for t in arg.split(",") if t.strip()]
    with _user_errors(UnknownRowError, AblationError, ConfigError, ValueError, DirectoryLockedError):
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        chosen = build_tables(names, [r.strip() for r in rows.split(",")] if rows else None)
        base = BaseSpec(config, tuple(overrides), threads)
        base.load()  # a config mistake fails here, before any run starts
        report = run_ablations(base, chosen, seed_list, out, jobs=jobs, report_only=report_only)
    for key, entry in report["tables"].items():
        done = sum(len(r["seeds"]) for r in entry["rows"])
        typer.echo(f"table {key}: {done} row x seed results")
    typer.echo(f"wrote {out}/ablations.json and {out}/ablations.md")


@config_app.command("show")
def config_show(config: str | None = _CONFIG, overrides: list[str] = _SET) -> None:
    """Print the resolved config (defaults -> YAML -> --set) as YAML."""
    import yaml

    cfg = _run_config(config, overrides, {})
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).rstrip())


@config_app.command("keys")
def config_keys() -> None:
    """Every --set key with its type, default and description."""
    from deepvideo_r1.config import describe_fields

    for row in describe_fields():
        typer.echo(f"{row['name']}  ({row['type']}, default {row['default']})  {row['description']}")


@app.command("export")
def export(
    checkpoint: str = typer.Argument(..., help="A <output_dir>/checkpoints/checkpoint-N directory."),
    out: str = typer.Argument(..., help="Output model directory."),
    merge_lora: bool = typer.Option(
        True, "--merge-lora/--no-merge-lora", help="Merge LoRA into the weights, or keep a peft adapter."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty OUT directory."),
) -> None:
    """Write a checkpoint as a complete Hugging Face model directory (weights, tokenizer, processor)."""
    from deepvideo_r1.checkpoints.checkpoint import CheckpointError
    from deepvideo_r1.config import ConfigError
    from deepvideo_r1.export import export_checkpoint
    from deepvideo_r1.models.adapter import ModelLoadError
    from deepvideo_r1.models.export import ExportError
    from deepvideo_r1.models.progress import hf_progress_bars_off

    errors = (ExportError, CheckpointError, ConfigError, ModelLoadError, OSError)
    with _user_errors(*errors), hf_progress_bars_off():
        path = export_checkpoint(checkpoint, out, merge_lora=merge_lora, overwrite=overwrite)
    typer.echo(f"wrote {path}")


def main() -> None:
    import sys

    if len(sys.argv) > 1 and sys.argv[1] in ("train", "sft"):
        from deepvideo_r1.distributed.launch import relaunch_with_torchrun

        relaunch_with_torchrun(sys.argv[1:])  # accelerate launch --cpu --num_processes N (N > 1)
    app()
