"""Command-line interface: each command parses, loads config and calls the library."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="deepvideo-r1",
    help="Reinforcement fine-tuning of video LLMs with Reg-GRPO and difficulty-aware augmentation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """deepvideo-r1 command line."""


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
    out: str = typer.Option(None, "--out", help="Where PNGs go (default: RUN_DIR/plots)."),
) -> None:
    """Write PNG curves (reward, accuracy, vanishing ratio, augmentation, loss) from metrics.jsonl."""
    from pathlib import Path

    from deepvideo_r1.training.metrics import METRICS_FILE
    from deepvideo_r1.training.plots import plot_run

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
    out: str = typer.Option(..., "--out", help="Output directory (train.jsonl, eval.jsonl, videos/)."),
    n: int = typer.Option(400, "--n", help="Total samples, train + eval."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives the same bytes."),
    tasks: list[str] = typer.Option(None, "--tasks", help="Task names, comma-separated or repeated."),
    difficulty: str = typer.Option("easy", "--difficulty", help="easy | medium | hard | mixed"),
    n_eval: int = typer.Option(None, "--n-eval", help="Held-out samples (default 20 % of n)."),
    size: int = typer.Option(56, "--size", help="Frame side in pixels (multiple of 28)."),
    num_frames: int = typer.Option(8, "--num-frames", help="Frames per clip."),
    fps: float = typer.Option(4.0, "--fps", help="Frames per second."),
    force: bool = typer.Option(False, "--force", help="Regenerate even if the config is unchanged."),
) -> None:
    """Generate the synthetic video reasoning dataset (mp4 clips of coloured shapes + questions)."""
    from deepvideo_r1.data.synth import SynthError, generate_synthetic_dataset
    from deepvideo_r1.data.synth_config import SynthConfig, SynthConfigError

    chosen = tuple(t.strip() for arg in tasks or [] for t in arg.split(",") if t.strip())
    options = dict(n=n, seed=seed, difficulty=difficulty, n_eval=n_eval, size=size, num_frames=num_frames)
    config = SynthConfig(**options, fps=fps, **({"tasks": chosen} if chosen else {}))
    try:
        result = generate_synthetic_dataset(out, config, force=force)
    except (SynthConfigError, SynthError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    verb = "reused" if result.reused else f"generated in {result.seconds:.1f} s"
    typer.echo(f"{verb}: {result.train_path} and {result.eval_path}")
    for split, counts in result.counts.items():
        typer.echo(f"{split}: " + ", ".join(f"{task}={k}" for task, k in counts.items()))


def main() -> None:
    app()
