"""data.max_prompt_tokens: a sample with an oversized question is an error naming it at load time;
settings that do not change a warm start's weights do not make it stale."""

from __future__ import annotations

import json

import pytest

from deepvideo_r1.config import load_config
from deepvideo_r1.data.prompt_limits import PromptTooLongError, check_prompt_lengths
from deepvideo_r1.data.sample import Sample
from deepvideo_r1.pipeline import StaleSftModelError, check_sft_settings, sft_settings
from deepvideo_r1.presets import TINY_CPU


def _sample(sample_id: str, question: str) -> Sample:
    return Sample(id=sample_id, question=question, problem_type="numerical", answer="3")


def test_a_too_long_prompt_names_the_sample_and_short_ones_are_not_tokenized():
    counted = []

    def words(text: str) -> int:  # a stand-in tokenizer: one token per word
        counted.append(text)
        return len(text.split())

    short, long = _sample("short", "How many?"), _sample("long", "word " * 5000)
    check_prompt_lengths([short], words, 1000, "d.jsonl")
    assert counted == []  # < 1000 bytes (question + instruction) cannot hold 1000 byte-level tokens
    with pytest.raises(PromptTooLongError, match=r"d.jsonl: sample 'long' has a 50\d\d-token prompt"):
        check_prompt_lengths([short, long], words, 200, "d.jsonl")
    check_prompt_lengths([long], words, 6000, "d.jsonl")  # 25 kB of text, but ~5,000 tokens


def test_eval_refuses_an_oversized_question_before_decoding(tmp_path):
    from typer.testing import CliRunner

    from deepvideo_r1.cli import app
    from deepvideo_r1.models.tiny import make_tiny_model

    model = make_tiny_model(
        tmp_path / "m", text_hidden=32, text_layers=1, vision_hidden=32, vision_depth=1, vocab_size=512
    )
    record = {"id": "huge", "problem_type": "numerical", "question": "How many? " * 20000, "answer": "3"}
    (tmp_path / "d.jsonl").write_text(json.dumps(record) + "\n")
    args = ["eval", "--model", str(model), "--data", str(tmp_path / "d.jsonl"), "-o", str(tmp_path / "e")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "sample 'huge' has a" in result.output and "data.max_prompt_tokens=8192" in result.output
    assert not (tmp_path / "e" / "predictions.jsonl").exists()


def test_sft_model_is_reused_when_only_weight_neutral_settings_change(tmp_path):
    cfg = load_config(TINY_CPU, ["model.shared_prefix=true", "model.gradient_checkpointing=true"])
    (tmp_path / "sft_settings.json").write_text(json.dumps(sft_settings(cfg)))
    same_weights = ["model.shared_prefix=false", "model.gradient_checkpointing=false"]
    same_weights += ["data.max_prompt_tokens=9"]
    check_sft_settings(tmp_path, sft_settings(load_config(TINY_CPU, same_weights)))  # reused
    with pytest.raises(StaleSftModelError, match=r"sft.lr differ"):
        check_sft_settings(tmp_path, sft_settings(load_config(TINY_CPU, ["sft.lr=0.5"])))
