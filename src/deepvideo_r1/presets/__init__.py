"""Config presets shipped with the package (the embedded default run)."""

from pathlib import Path

TINY_CPU = str(Path(__file__).with_name("tiny_cpu.yaml"))
