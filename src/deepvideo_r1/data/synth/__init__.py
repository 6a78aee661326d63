"""Synthetic video reasoning tasks: real h264 clips of moving shapes and verifiable questions.

knobs.py   difficulty knobs and presets
render.py  palette, object tracks, drawing, mp4 writing
tasks.py   task families: scene, question, answer, reasoning trace
config.py  SynthConfig (validated against the task registry)
dataset.py generate_synthetic_dataset: the train / held-out jsonl files and their clips
"""

from deepvideo_r1.data.synth.config import SynthConfig, SynthConfigError
from deepvideo_r1.data.synth.dataset import CONFIG_FILE, SynthError, SynthResult, generate_synthetic_dataset

__all__ = [
    "CONFIG_FILE",
    "SynthConfig",
    "SynthConfigError",
    "SynthError",
    "SynthResult",
    "generate_synthetic_dataset",
]
