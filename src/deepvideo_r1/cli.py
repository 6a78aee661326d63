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


def main() -> None:
    app()
