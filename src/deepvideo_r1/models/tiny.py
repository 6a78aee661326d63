"""Tiny preset: a random-init model of a real Qwen-VL architecture and a locally trained tokenizer,
saved as an ordinary model directory (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json, chat template, generation and processor configs) that `from_pretrained`
loads like any real checkpoint.

The tokenizer is a byte-level BPE (any text round-trips) trained on an in-package corpus of the words
the synthetic tasks use, plus the family's special tokens and the reasoning tags as single tokens.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, PreTrainedTokenizerFast

from deepvideo_r1.models.export import write_processor_configs
from deepvideo_r1.models.families import (
    END_OF_TEXT,
    IM_END,
    IMAGE_PAD,
    SPECIAL_TOKENS,
    TAG_TOKENS,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    ModelFamily,
    get_family,
)

_WORDS = (
    "red green blue yellow orange purple pink white black gray brown cyan magenta colour color "
    "square circle triangle star rectangle shape shapes object objects ball box dot "
    "left right up down top bottom middle centre center moves moving move moved direction toward away "
    "first second third last before after then next order appear appears appeared appearance disappear "
    "when time seconds second frame frames video image start end begin during between at in on of "
    "how many count number total one two three four five six seven eight nine ten zero "
    "which what where who why is are was were the a an and or not it its this that these there "
    "question answer options option choose choice select letter correct best following "
    "A B C D E F think reasoning step steps so because therefore first then finally hint "
    "let me look see watch observe scene screen each every only also yes no true false"
)
_SENTENCES = (
    "Which colour is the square? A. red B. green C. blue D. yellow",
    "In which direction does the circle move: left, right, up or down?",
    "How many shapes appear in the video? Answer with a number.",
    "Which object appears first? Options: A. the red square B. the blue circle",
    "At what time (in seconds) does the triangle appear? 0.5 1.0 1.5 2.0 2.5 3.0 10 12.5",
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.",
    "<think>The square is red. It moves to the left.</think> <answer>A</answer>",
    "<think>I count three shapes: 1, 2, 3.</think><answer>3</answer>",
    "You are a helpful assistant. Please think step by step, then answer.",
    "Hint: first look at frame 1, then frame 2. (B) [C] {D} - + * / = % # @ ! ? : ; , . ' \"",
)


def tiny_corpus() -> list[str]:
    """The fixed training text for the tiny tokenizer (words, sentences, digits, punctuation)."""
    lines = list(_SENTENCES) + _WORDS.split()
    lines += [" ".join(_WORDS.split()[i : i + 12]) for i in range(0, len(_WORDS.split()), 12)]
    lines += [str(n) for n in range(0, 101)] + [f"{n / 10:.1f}" for n in range(0, 100)]
    return lines * 4


def train_tiny_tokenizer(family: ModelFamily, vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on `tiny_corpus()` with the Qwen special tokens and a chat template.

    Deterministic: the corpus is fixed and BPE training breaks ties by byte order.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(tiny_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=END_OF_TEXT,
        additional_special_tokens=list(SPECIAL_TOKENS),
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )
    fast.add_tokens(list(TAG_TOKENS))
    fast.chat_template = family.chat_template()
    return fast


@dataclass(frozen=True)
class TinySizes:
    """Widths of the tiny preset. mrope sections must sum to head_dim/2 = text_hidden/text_heads/2."""

    text_hidden: int = 128
    text_layers: int = 4
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 256
    vision_hidden: int = 128
    vision_depth: int = 2
    vision_heads: int = 4
    vision_intermediate: int = 256
    vocab_size: int = 1024

    def mrope_section(self) -> list[int]:
        """Split head_dim/2 rotary frequencies over (t, h, w) like the real [16, 24, 24] of 64."""
        half = self.text_hidden // self.text_heads // 2
        hw = (half * 3) // 8
        return [half - 2 * hw, hw, hw]


def _vision_config(family: ModelFamily, s: TinySizes) -> dict:
    common = {"depth": s.vision_depth, "num_heads": s.vision_heads, "patch_size": family.patch_size}
    if family.model_type == "qwen2_vl":
        return {**common, "embed_dim": s.vision_hidden, "hidden_size": s.text_hidden, "mlp_ratio": 2}
    base = {
        **common,
        "hidden_size": s.vision_hidden,
        "intermediate_size": s.vision_intermediate,
        "out_hidden_size": s.text_hidden,
    }
    if family.model_type == "qwen2_5_vl":
        return {
            **base,
            "fullatt_block_indexes": [s.vision_depth - 1],
            "window_size": 112,
            "tokens_per_second": 2,
        }
    return {**base, "num_position_embeddings": 256, "deepstack_visual_indexes": [0]}


def tiny_config(family: ModelFamily, tokenizer: PreTrainedTokenizerFast, sizes: TinySizes):
    """The family's config at tiny widths, with token ids taken from `tokenizer`."""
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (IMAGE_PAD, VIDEO_PAD, VISION_START, VISION_END)}
    vocab = -(-len(tokenizer) // 64) * 64  # round up to a multiple of 64, as real checkpoints do
    rope: dict = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": sizes.mrope_section()}
    if family.model_type == "qwen3_vl":
        rope["mrope_interleaved"] = True
    text = {
        "vocab_size": vocab,
        "hidden_size": sizes.text_hidden,
        "intermediate_size": sizes.text_intermediate,
        "num_hidden_layers": sizes.text_layers,
        "num_attention_heads": sizes.text_heads,
        "num_key_value_heads": sizes.text_kv_heads,
        "head_dim": sizes.text_hidden // sizes.text_heads,
        "max_position_embeddings": 32768,
        "rope_parameters": rope,
        "eos_token_id": tokenizer.convert_tokens_to_ids(IM_END),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.pad_token_id,
    }
    return family.config_cls()(
        text_config=text,
        vision_config=_vision_config(family, sizes),
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=False,
    )


@contextlib.contextmanager
def _whole_under_zero3() -> Iterator[None]:
    """Build and save a whole model even when accelerate runs DeepSpeed ZeRO-3: transformers would
    otherwise partition the sub-models it builds from config and save their empty shards."""
    from transformers.integrations import deepspeed as hf_deepspeed

    ref = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = ref


def make_tiny_model(out_dir: str | Path, family: str = "qwen2.5-vl", seed: int = 0, **sizes: int) -> Path:
    """Write a random-init tiny model + tokenizer to `out_dir`; returns the directory.

    `sizes` override `TinySizes` fields (text_hidden, text_layers, vision_hidden, vocab_size, …).
    Same family, seed and sizes give identical files.
    """
    fam = get_family(family)
    size_cfg = TinySizes(**sizes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tiny_tokenizer(fam, vocab_size=size_cfg.vocab_size)
    config = tiny_config(fam, tokenizer, size_cfg)
    with torch.random.fork_rng(devices=[]), _whole_under_zero3():
        torch.manual_seed(seed)
        model = fam.model_cls()(config)
        model.generation_config = GenerationConfig(
            eos_token_id=[tokenizer.convert_tokens_to_ids(IM_END), tokenizer.pad_token_id],
            pad_token_id=tokenizer.pad_token_id,
            do_sample=False,
        )
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_processor_configs(out, fam)
    (out / "tiny_preset.json").write_text(
        json.dumps({"family": fam.name, "seed": seed, **asdict(size_cfg)}, indent=2)
    )
    return out
