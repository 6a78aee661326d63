"""HF rollout: G completions per prompt, masks at EOS and padding, shared vision, seeding."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import StaticLayer

from deepvideo_r1.rollout import HFRolloutEngine, SamplingOptions, completion_mask
from deepvideo_r1.rollout.hf import NonFiniteLogitsError
from helpers import random_image, random_video, tiny_policy

G = 3


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    model, ad = tiny_policy(tmp_path_factory.mktemp("roll"), "qwen2.5-vl")
    # a bias on <|im_end|> makes completions stop at varied points (random init almost never stops):
    # logit ≈ 6 vs ≈ 0 for ~1k others → p(stop) ≈ e^6 / (e^6 + 1000) ≈ 0.29 per step
    head = torch.nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[ad.stop_token_ids[0] if ad.stop_token_ids[0] != ad.pad_id else ad.stop_token_ids[1]] = 6.0
    model.lm_head = head
    return model, ad


def _batch(ad):
    prompts = [
        ad.build_prompt("Which colour is the square?", random_video(ad.family, seed=1)),
        ad.build_prompt(
            "How many shapes appear?", random_video(ad.family, t=2, h=4, w=6, seed=2), random_image(ad.family)
        ),
    ]
    return ad.collate(prompts)


def test_completion_mask_hand_example():
    ids = torch.tensor([[5, 9, 2, 2], [9, 2, 2, 2], [5, 6, 7, 8], [2, 2, 2, 2]])
    # stop ids {9}; pad 2 after the stop: rows stop at 1, 0, never, never
    assert completion_mask(ids, [9]).tolist() == [[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]


def test_group_rows_masks_and_text(policy):
    model, ad = policy
    engine = HFRolloutEngine(model, ad, SamplingOptions(max_new_tokens=12, temperature=1.0))
    out = engine.generate(_batch(ad), G, seed=0)
    assert out.completion_ids.shape[0] == 2 * G
    assert out.prompt_index.tolist() == [0, 0, 0, 1, 1, 1]
    stops = set(ad.stop_token_ids)
    lengths = out.completion_mask.sum(1).tolist()
    for row, mask, n in zip(out.completion_ids, out.completion_mask, lengths, strict=True):
        assert mask[:n].eq(1).all() and mask[n:].eq(0).all()  # ones then zeros
        hits = [i for i, t in enumerate(row.tolist()) if t in stops]
        if hits:
            assert n == hits[0] + 1  # mask includes the first stop token
            assert row[n:].eq(ad.pad_id).all()  # everything after it is padding
        else:
            assert n == row.numel()
    assert len(set(lengths)) > 1 and min(lengths) < 12  # some rows stopped early, at different points
    assert len(out.texts) == 2 * G and all("<|im_end|>" not in t for t in out.texts)
    assert out.timing["rollout/total_s"] > 0


def test_seeded_sampling_is_reproducible(policy):
    model, ad = policy
    engine = HFRolloutEngine(
        model, ad, SamplingOptions(max_new_tokens=8, temperature=1.0, top_k=50, top_p=0.95)
    )
    a = engine.generate(_batch(ad), G, seed=7).completion_ids
    b = engine.generate(_batch(ad), G, seed=7).completion_ids
    c = engine.generate(_batch(ad), G, seed=8).completion_ids
    assert torch.equal(a, b)
    assert a.shape != c.shape or not torch.equal(a, c)


def test_shared_vision_encodes_once_and_matches_naive_greedy(policy):
    model, ad = policy
    greedy = SamplingOptions(max_new_tokens=10, temperature=0.0)
    shared = HFRolloutEngine(model, ad, greedy).generate(_batch(ad), G)
    naive = HFRolloutEngine(model, ad, greedy, shared_vision=False, shared_prefix=False).generate(
        _batch(ad), G
    )
    assert torch.equal(shared.completion_ids, naive.completion_ids)
    assert torch.equal(shared.completion_mask, naive.completion_mask)
    # 2 prompts with 3 visual items (2 videos + 1 image): once each vs G = 3 times each
    assert shared.vision_items == 3
    assert naive.vision_items == 3 * G
    # greedy: the G rows of a group are identical
    assert torch.equal(shared.completion_ids[0], shared.completion_ids[G - 1])


def test_left_padding_does_not_change_greedy_output(policy):
    model, ad = policy
    greedy = SamplingOptions(max_new_tokens=6, temperature=0.0)
    engine = HFRolloutEngine(model, ad, greedy)
    short = ad.build_prompt("Q?", random_video(ad.family, seed=3))
    alone = engine.generate(ad.collate([short]), 1)
    long_p = ad.build_prompt("A much longer question about where the blue circle moves in the video?")
    padded = engine.generate(ad.collate([long_p, short]), 1)
    width = alone.completion_ids.shape[1]
    assert torch.equal(padded.completion_ids[1, :width], alone.completion_ids[0])


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen2.5-vl", "qwen3-vl"])
def test_shared_prefix_prefill_matches_repeated_rows(tmp_path, family):
    """Prefill once + cache repeated G times = prefill of the B repeated rows: greedy tokens equal,
    and sampled tokens under one seed too (the same [B, V] draws from the same distributions)."""
    model, ad = tiny_policy(tmp_path, family)
    prompts = [
        ad.build_prompt("Which colour is the square?", random_video(ad.family, seed=1)),
        ad.build_prompt("Q?", random_video(ad.family, t=2, h=4, w=6, seed=2), random_image(ad.family)),
        ad.build_prompt("A text-only question, longer than the others?"),
    ]
    batch = ad.collate(prompts)
    for sampling in (
        SamplingOptions(max_new_tokens=10, temperature=0.0),
        SamplingOptions(max_new_tokens=10, temperature=1.0, top_k=50, top_p=0.95),
    ):
        with _TokenCounter(model) as n_shared:
            shared = HFRolloutEngine(model, ad, sampling).generate(batch, G, seed=3)
        with _TokenCounter(model) as n_repeated:
            repeated = HFRolloutEngine(model, ad, sampling, shared_prefix=False).generate(batch, G, seed=3)
        assert torch.equal(shared.completion_ids, repeated.completion_ids)
        assert shared.vision_items == repeated.vision_items == 3
        # the decode steps are the same; the prefill saves (B - N)·(L - 1) tokens: (9 - 3)·(L - 1)
        assert n_repeated.tokens - n_shared.tokens == (3 * G - 3) * (batch.input_ids.shape[1] - 1)


class _TokenCounter:
    """Counts token ids through the decoder's embedding (every forward embeds its input_ids)."""

    def __init__(self, model):
        self.embed, self.tokens = model.get_input_embeddings(), 0

    def _hook(self, module, args):
        self.tokens += args[0].numel()

    def __enter__(self):
        self.handle = self.embed.register_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_shared_prefix_needs_shared_vision(policy):
    model, ad = policy
    with pytest.raises(ValueError, match="shared_vision"):
        HFRolloutEngine(model, ad, shared_vision=False)


def test_greedy_ignores_the_model_directorys_generation_config(policy):
    """Greedy means argmax of π_θ: repetition_penalty / no_repeat_ngram_size from the model
    directory's generation_config.json must not apply (Qwen2.5-VL-Instruct ships 1.05)."""
    model, ad = policy
    engine = HFRolloutEngine(model, ad, SamplingOptions(max_new_tokens=12, temperature=0.0))
    saved_bias, saved_config = model.lm_head.bias.detach().clone(), model.generation_config
    edited = saved_config.__class__(**saved_config.to_dict())
    edited.repetition_penalty, edited.no_repeat_ngram_size = 50.0, 1
    try:
        with torch.no_grad():  # argmax is token 100 at every position: no stop, only repeats
            model.lm_head.bias.zero_()
            model.lm_head.bias[100] = 50.0
        plain = engine.generate(_batch(ad), 1).completion_ids
        assert plain.eq(100).all()  # the edited config (no token twice) would change this
        model.generation_config = edited
        again = engine.generate(_batch(ad), 1).completion_ids
        assert model.generation_config is edited  # restored after the call
    finally:
        model.generation_config = saved_config
        with torch.no_grad():
            model.lm_head.bias.copy_(saved_bias)
    assert torch.equal(plain, again)
    assert engine.generation_options() == {
        "do_sample": False, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
    }  # fmt: skip


def test_non_finite_logits_stop_generation_with_one_line(policy):
    model, ad = policy
    engine = HFRolloutEngine(model, ad, SamplingOptions(max_new_tokens=4, temperature=1.0))
    saved = model.lm_head.bias.detach().clone()
    with torch.no_grad():
        model.lm_head.bias[5] = float("inf")  # as after an exploding update
    try:
        with pytest.raises(
            NonFiniteLogitsError, match=r"non-finite logits while generating \(token position"
        ):
            engine.generate(_batch(ad), G, seed=0)
    finally:
        with torch.no_grad():
            model.lm_head.bias.copy_(saved)


@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl"])
def test_static_cache_decodes_the_same_tokens(tmp_path, family, monkeypatch):
    """The prefill copied into a bucketed static cache (compile off) decodes what the dynamic cache
    does, greedy and sampled under one seed; with compile=True (not compiled on CPU) the rows are
    also padded to a power of two, and greedy tokens stay the same."""
    model, ad = tiny_policy(tmp_path, family)
    prompts = [
        ad.build_prompt("Which colour is the square?", random_video(ad.family, seed=1)),
        ad.build_prompt("A text-only question, longer than the others?"),
    ]
    batch = ad.collate(prompts)
    greedy = SamplingOptions(max_new_tokens=10, temperature=0.0)
    sampled = SamplingOptions(max_new_tokens=10, temperature=1.0, top_k=50, top_p=0.95)
    writes, update = [], StaticLayer.update
    counted = lambda self, *a, **k: writes.append(1) or update(self, *a, **k)  # noqa: E731
    monkeypatch.setattr(StaticLayer, "update", counted)
    for sampling in (greedy, sampled):
        dynamic = HFRolloutEngine(model, ad, sampling).generate(batch, G, seed=3)
        assert not writes
        static = HFRolloutEngine(model, ad, sampling, static_cache=True).generate(batch, G, seed=3)
        assert len(writes) >= 10 * len(model.model.language_model.layers)  # decoded into the static cache
        writes.clear()
        assert torch.equal(static.completion_ids, dynamic.completion_ids)
        assert torch.equal(static.completion_mask, dynamic.completion_mask)
    padded = HFRolloutEngine(model, ad, greedy, compile=True).generate(batch, G)  # 6 rows -> 8
    assert padded.completion_ids.shape[0] == 2 * G
    unpadded = HFRolloutEngine(model, ad, greedy).generate(batch, G)
    assert torch.equal(padded.completion_ids, unpadded.completion_ids)


def test_cache_and_batch_buckets():
    from deepvideo_r1.models.static_cache import batch_bucket, cache_bucket, pad_rows

    assert [cache_bucket(n) for n in (1, 256, 257, 1038)] == [256, 256, 512, 1280]
    assert [batch_bucket(n) for n in (1, 2, 6, 8, 9, 64)] == [1, 2, 8, 8, 16, 64]
    assert pad_rows(torch.tensor([[1], [2]]), 4).flatten().tolist() == [1, 2, 2, 2]
