"""The tiny preset: files, loading with from_pretrained, determinism, tokenizer coverage."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from transformers import AutoConfig, AutoTokenizer

from deepvideo_r1.models.adapter import ModelLoadError, load_policy
from deepvideo_r1.models.families import SPECIAL_TOKENS, TAG_TOKENS
from deepvideo_r1.models.tiny import TinySizes, make_tiny_model
from helpers import TEST_SIZES


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), family="qwen2.5-vl", seed=3, **TEST_SIZES)


def test_directory_is_an_ordinary_model_dir(tiny_dir):
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ):
        assert (tiny_dir / name).is_file(), name
    config = AutoConfig.from_pretrained(tiny_dir)
    assert config.model_type == "qwen2_5_vl"
    assert config.text_config.hidden_size == 64
    assert config.vision_config.out_hidden_size == 64  # = text hidden
    assert sum(config.text_config.rope_parameters["mrope_section"]) == 64 // 4 // 2  # head_dim / 2
    meta = json.loads((tiny_dir / "tiny_preset.json").read_text())
    assert meta["seed"] == 3 and meta["family"] == "qwen2.5-vl"


def test_loads_and_token_ids_match_config(tiny_dir):
    model, ad = load_policy(tiny_dir)
    assert model.config.video_token_id == ad.video_token_id
    assert model.config.image_token_id == ad.image_token_id
    assert model.config.text_config.vocab_size >= len(ad.tokenizer)
    assert model.config.text_config.vocab_size % 64 == 0
    assert str(model.dtype) == "torch.float32"


def test_tokenizer_specials_tags_and_round_trip(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert 256 < len(tok) <= 4096
    for t in (*SPECIAL_TOKENS, *TAG_TOKENS):
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, t  # one id each
    text = "<think>The red square moves left at 2.5 seconds; ünïcödé ✓</think><answer>B</answer>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text  # byte-level BPE: any text round-trips
    words = tok("colour square circle triangle", add_special_tokens=False)["input_ids"]
    assert len(words) <= 8  # task words are whole or near-whole tokens, not bytes


def test_same_seed_same_files_other_seed_differs(tmp_path, tiny_dir):
    again = make_tiny_model(tmp_path / "a", family="qwen2.5-vl", seed=3, **TEST_SIZES)
    other = make_tiny_model(tmp_path / "b", family="qwen2.5-vl", seed=4, **TEST_SIZES)
    assert _digest(again / "model.safetensors") == _digest(tiny_dir / "model.safetensors")
    assert _digest(again / "tokenizer.json") == _digest(tiny_dir / "tokenizer.json")
    assert _digest(other / "model.safetensors") != _digest(tiny_dir / "model.safetensors")


def test_mrope_section_sums_to_half_head_dim():
    # head_dim 128/4 = 32 → 16 frequencies: hw = 16·3//8 = 6, t = 16 - 12 = 4
    assert TinySizes().mrope_section() == [4, 6, 6]


def test_load_errors_name_the_directory(tmp_path):
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_policy(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ModelLoadError, match=re.escape(str(tmp_path))):
        load_policy(tmp_path)


def test_built_whole_while_accelerate_runs_deepspeed_zero3(tmp_path):
    """Under a ZeRO-3 accelerate launch transformers partitions every sub-model it builds from a
    config (and needs deepspeed to do so); the tiny model must still be built and saved whole."""
    from safetensors.torch import load_file
    from transformers.integrations import deepspeed as hf_deepspeed

    class Zero3Config:  # what accelerate registers with transformers for a ZeRO-3 run
        def is_zero3(self) -> bool:
            return True

    config = Zero3Config()
    hf_deepspeed.set_hf_deepspeed_config(config)
    try:
        out = make_tiny_model(tmp_path / "m", **TEST_SIZES)
        assert hf_deepspeed.is_deepspeed_zero3_enabled()  # the launch's setting is back afterwards
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()
    weights = load_file(str(out / "model.safetensors"))
    assert weights and all(t.numel() > 0 for t in weights.values())


def test_an_oversized_safetensors_header_is_one_line(tmp_path):
    import struct

    from deepvideo_r1.models.adapter import ModelLoadError, load_policy

    path = make_tiny_model(
        tmp_path / "m", text_hidden=32, text_layers=1, vision_hidden=32, vision_depth=1, vocab_size=400
    )
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(struct.pack("<Q", 1 << 40) + data[8:])  # the header claims 1 TiB
    with pytest.raises(ModelLoadError, match=r"m: the weights cannot be read \(.*header too large") as err:
        load_policy(path)
    assert "\n" not in str(err.value)
