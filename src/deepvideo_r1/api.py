"""Python API: the functions the command line calls, for notebooks and scripts.

    from deepvideo_r1 import evaluate, load_config, train

    cfg = load_config("my.yaml", ["train.max_steps=2"])  # = --config my.yaml --set train.max_steps=2
    summary = train(cfg)                                 # = deepvideo-r1 train
    report = evaluate(cfg, "eval_out")                   # = deepvideo-r1 eval (model.path, data.eval_file)

docs/api.md has a complete example.
"""

from __future__ import annotations

from pathlib import Path

from deepvideo_r1.config import RunConfig
from deepvideo_r1.evaluation.evaluate import EvalReport, SampledDecoding


def train(cfg: RunConfig) -> dict:
    """The whole run of `deepvideo-r1 train` (SFT, eval before, RL, eval after); returns the summary
    also written to <train.output_dir>/summary.json."""
    from deepvideo_r1.models.progress import hf_progress_bars_off
    from deepvideo_r1.pipeline import run_training

    with hf_progress_bars_off():
        return run_training(cfg)


def sft(cfg: RunConfig) -> Path:
    """The supervised stage of `deepvideo-r1 sft`; returns <train.output_dir>/sft_model."""
    from deepvideo_r1.models.progress import hf_progress_bars_off
    from deepvideo_r1.pipeline import run_sft_only

    with hf_progress_bars_off():
        return run_sft_only(cfg)


def evaluate(cfg: RunConfig, output_dir: str | Path, sampled: SampledDecoding | None = None) -> EvalReport:
    """`deepvideo-r1 eval`: greedy (+ optionally K sampled) evaluation of model.path on
    data.eval_file; predictions and eval_report.json go to `output_dir`."""
    from deepvideo_r1.models.progress import hf_progress_bars_off
    from deepvideo_r1.pipeline import run_eval_only

    with hf_progress_bars_off():
        return run_eval_only(cfg, output_dir, sampled=sampled)
