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


def main() -> None:
    app()
