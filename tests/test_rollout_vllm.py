"""vLLM rollout engine on the shipped warm start (head_dim 32, which vLLM's CPU attention takes).

Runs in the environment scripts/make_vllm_cpu_env.sh builds (`DIR/bin/python -m pytest -m vllm`);
skipped, with the reason, where vllm is not installed.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vllm is not installed (build its environment with scripts/make_vllm_cpu_env.sh DIR)",
    ),
]

from deepvideo_r1.models import load_policy  # noqa: E402
from deepvideo_r1.models.adapter import sft_inputs  # noqa: E402
from deepvideo_r1.models.batch import join_completions  # noqa: E402
from deepvideo_r1.presets.warm_start import SHIPPED_DIR  # noqa: E402
from deepvideo_r1.rollout import HFRolloutEngine, SamplingOptions  # noqa: E402

GREEDY = SamplingOptions(max_new_tokens=32, temperature=0.0)
# |trainer - vLLM| log-prob of the sampled tokens, fp32 on CPU (vision tokens suppressed on both sides):
# measured max 1.4e-6 on the seven prompts; with vLLM's dtype "auto" (bfloat16 on CPU) it was 0.064
LOGPROB_TOL = 1e-5
# Perturbed weights flatten the distribution: past a dozen tokens greedy paths meet near-ties where
# fp32 kernels may pick either token, so the synced-weights checks compare 12 tokens.
SHORT = SamplingOptions(max_new_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def policy():
    """The warm start with the embedded default's pixel budget (56x56 frames, what it was trained on)."""
    from deepvideo_r1.config import load_config
    from deepvideo_r1.models.media import pixel_budget
    from deepvideo_r1.presets import TINY_CPU

    return load_policy(SHIPPED_DIR, budget=pixel_budget(load_config(TINY_CPU, []).video))


@pytest.fixture(scope="module")
def engine(policy):
    from deepvideo_r1.rollout.vllm_engine import VLLMRolloutEngine, VLLMSettings

    model, adapter = policy
    threads = torch.get_num_threads()
    eng = VLLMRolloutEngine.start(SHIPPED_DIR, adapter, GREEDY, VLLMSettings(seed=0, max_num_seqs=128))
    THREADS["before"], THREADS["after"] = threads, torch.get_num_threads()
    eng.sync_weights(model)
    return eng


THREADS: dict[str, int] = {}


def test_the_engine_start_keeps_torch_threads(engine):
    """vLLM's CPU start-up would drop the whole process (trainer included) to one thread."""
    assert THREADS["after"] == THREADS["before"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Held-out synthetic clips of the warm start's kind (8 frames, 56x56)."""
    from deepvideo_r1.data.synth.config import SynthConfig
    from deepvideo_r1.data.synth.dataset import generate_synthetic_dataset

    out = tmp_path_factory.mktemp("clips")
    generate_synthetic_dataset(out, SynthConfig(n=12, n_eval=6, seed=7, size=56, num_frames=8))
    return out


@pytest.fixture(scope="module")
def prompts(policy, clips):
    """Text; three videos (one also at 4 fps: second_per_grid_ts 0.5); a frame as an image; video +
    image — built from held-out clips as the trainer builds them."""
    from deepvideo_r1.config import load_config
    from deepvideo_r1.data import load_samples
    from deepvideo_r1.data.prompts import build_question_text
    from deepvideo_r1.models.media import encode_sample
    from deepvideo_r1.pipeline import media_loader
    from deepvideo_r1.presets import TINY_CPU

    _, adapter = policy
    samples = load_samples(clips / "eval.jsonl").samples
    media = media_loader(load_config(TINY_CPU, [f"train.output_dir={clips / 'run'}"]), adapter)
    loaded = [media(s) for s in samples[:4]]
    question = build_question_text(samples[3])
    frame = loaded[3].frames[0]
    return [
        adapter.build_prompt(question),
        *[encode_sample(adapter, s, m) for s, m in zip(samples[:3], loaded[:3], strict=True)],
        adapter.encode_prompt(samples[0], loaded[0].frames, None, sample_fps=4.0),
        adapter.encode_prompt(samples[3], None, frame),
        adapter.encode_prompt(samples[3], loaded[3].frames, frame),
    ]


def _greedy_ids(model, adapter, batch, sampling: SamplingOptions = SHORT) -> list[list[int]]:
    out = HFRolloutEngine(model, adapter, sampling).generate(batch, 1)
    return [row[m.bool()].tolist() for row, m in zip(out.completion_ids, out.completion_mask, strict=True)]


def _engine_ids(out) -> list[list[int]]:
    return [row[m.bool()].tolist() for row, m in zip(out.completion_ids, out.completion_mask, strict=True)]


def test_prompt_token_ids_equal_ours(policy, engine, prompts):
    import vllm

    _, adapter = policy
    ps = prompts
    outs = engine.llm.generate(
        engine.requests(adapter.collate(ps)), vllm.SamplingParams(max_tokens=1), use_tqdm=False
    )
    for p, o in zip(ps, outs, strict=True):
        assert list(o.prompt_token_ids) == p.input_ids.tolist()


def test_greedy_equals_hf(policy, engine, prompts):
    model, adapter = policy
    batch = adapter.collate(prompts)
    ours = _greedy_ids(model, adapter, batch, GREEDY)
    theirs = _engine_ids(engine.generate(batch, 1))
    assert theirs == ours
    assert min(len(r) for r in ours) >= 32 or any(r[-1] in adapter.stop_token_ids for r in ours)


def test_teacher_forced_logprobs_agree(policy, engine, prompts):
    model, adapter = policy
    batch = adapter.collate(prompts)
    # teacher-forced: the trainer's log-probs of vLLM's sampled tokens (temperature 1), under the
    # distribution both engines sample from (vision tokens suppressed)
    out = engine.with_sampling(SamplingOptions(max_new_tokens=24, temperature=1.0)).generate(batch, 1, seed=5)
    seq = join_completions(batch, out.completion_ids, out.completion_mask, 1)
    width = out.completion_ids.shape[1]
    with torch.no_grad():
        logits = model(**sft_inputs(seq), use_cache=False).logits[:, seq.prompt_length - 1 : -1][:, :width]
    logits[..., adapter.vision_token_ids] = float("-inf")
    trainer = torch.log_softmax(logits.float(), -1).gather(-1, out.completion_ids[..., None])[..., 0]
    gap = (trainer - out.logprobs).abs()[out.completion_mask.bool()]
    assert float(gap.max()) < LOGPROB_TOL, float(gap.max())


def _perturbed(model):
    """A copy with q/k/v, gate/up, embeddings and lm_head moved (what fused loading must get right)."""
    new = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in new.named_parameters():
            if any(
                k in name for k in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "embed", "lm_head")
            ):
                p.add_(0.5 * p.std() * torch.randn(p.shape, generator=gen))
    return new


def test_sync_after_perturbing_follows_the_new_weights(policy, engine, prompts):
    model, adapter = policy
    batch = adapter.collate(prompts)
    old = _greedy_ids(model, adapter, batch)
    new_model = _perturbed(model)
    new = _greedy_ids(new_model, adapter, batch)
    assert new != old
    try:
        seconds = engine.sync_weights(new_model)
        assert seconds > 0
        assert _engine_ids(engine.with_sampling(SHORT).generate(batch, 1)) == new
    finally:
        engine.sync_weights(model)
    assert _engine_ids(engine.with_sampling(SHORT).generate(batch, 1)) == old


def test_sync_of_a_lora_policy_sends_merged_weights(policy, engine, prompts):
    from deepvideo_r1.models.trainable import LoraOptions, prepare_trainable

    model, adapter = policy
    lora = prepare_trainable(
        copy.deepcopy(model),
        "none",
        LoraOptions(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "up_proj"]),
    )
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    batch = adapter.collate(prompts)
    assert _greedy_ids(lora, adapter, batch) != _greedy_ids(model, adapter, batch)
    before = {n: p.detach().clone() for n, p in lora.named_parameters()}
    try:
        engine.sync_weights(lora)
        assert _engine_ids(engine.with_sampling(SHORT).generate(batch, 1)) == _greedy_ids(
            lora, adapter, batch
        )
    finally:
        engine.sync_weights(model)
    # merged out of place: the trainer's own weights are untouched
    assert all(torch.equal(p, before[n]) for n, p in lora.named_parameters())


def test_seeded_sampling_is_reproducible_without_vision_tokens_and_keeps_the_stop(policy, engine, prompts):
    _, adapter = policy
    batch = adapter.collate(prompts)
    sampler = engine.with_sampling(SamplingOptions(max_new_tokens=96, temperature=1.2, top_p=0.95, top_k=50))
    a, b = sampler.generate(batch, 4, seed=11), sampler.generate(batch, 4, seed=11)
    c = sampler.generate(batch, 4, seed=12)
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.logprobs, b.logprobs)
    assert not torch.equal(a.completion_ids, c.completion_ids)
    assert a.prompt_index.tolist() == [n for n in range(len(prompts)) for _ in range(4)]
    assert not torch.isin(
        a.completion_ids[a.completion_mask.bool()], torch.tensor(adapter.vision_token_ids)
    ).any()
    lengths = a.completion_mask.sum(1)
    stopped = lengths < a.completion_ids.shape[1]
    assert bool(stopped.any())
    for row, n in zip(a.completion_ids[stopped], lengths[stopped], strict=True):
        assert int(row[n - 1]) in adapter.stop_token_ids  # the stop token is kept, under the mask
        assert row[n:].eq(adapter.pad_id).all()
    assert (a.logprobs[a.completion_mask.bool()] <= 0).all()
    assert a.logprobs[~a.completion_mask.bool()].eq(0).all()


def test_seeded_sampling_at_the_default_rollout_size(policy, engine, prompts):
    """16 prompts x G = 8 x 64 tokens at temperature 0.7 with per-prompt seeds (the embedded default's
    rollout) in one engine call: more prompt tokens than one scheduler step takes, which on CPU once
    rewound a seeded generator ("CPU Generator does not use offset"); the same seed repeats."""
    model, adapter = policy
    engine.sync_weights(model)
    sampler = engine.with_sampling(SamplingOptions(max_new_tokens=64, temperature=0.7))
    batch = adapter.collate([prompts[1 + n % 4] for n in range(16)])
    a, b = sampler.generate(batch, 8, seed=3), sampler.generate(batch, 8, seed=3)
    assert a.completion_ids.shape[0] == 128
    assert torch.equal(a.completion_ids, b.completion_ids) and torch.equal(a.logprobs, b.logprobs)


# ---- end to end: CLI eval, training, two processes --------------------------------------------------


def _cli(*args: str, processes: int = 1, timeout: int = 1500) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if processes == 1:
        cmd = [sys.executable, "-m", "deepvideo_r1", *args]
    else:
        port = str(random.randint(20000, 40000))
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", port, "-m", "deepvideo_r1", *args,
        ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]


def _completions(path: Path) -> dict[str, str]:
    return {r["id"]: r["completion"] for r in map(json.loads, path.read_text().splitlines())}


def test_cli_eval_with_vllm_equals_hf_on_held_out_clips(clips, tmp_path):
    common = ["eval", "--model", str(SHIPPED_DIR), "--data", str(clips / "eval.jsonl")]
    _cli(*common, "-o", str(tmp_path / "hf"))
    _cli(*common, "-o", str(tmp_path / "vllm"), "--set", "rollout.engine=vllm")
    hf, vl = (
        _completions(tmp_path / "hf" / "predictions.jsonl"),
        _completions(tmp_path / "vllm" / "predictions.jsonl"),
    )
    assert len(hf) == 6 and vl == hf


RUN = [
    "data.synth.n_train=8",
    "data.synth.n_eval=4",
    "rollout.prompts_per_step=2",
    "rollout.group_size=4",
    "train.micro_batch_size=8",
    "rollout.max_new_tokens=16",
    "train.eval_batch_size=4",
    "train.report_to=[]",
    "rollout.engine=vllm",
]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _check_run(run: Path, steps: int) -> None:
    records = [r for r in _metrics(run) if "reward/mean" in r]
    assert len(records) == steps
    for r in records:
        assert r["rollout/sync_s"] > 0 and 0 <= r["rollout/logprob_gap_mean"] <= r["rollout/logprob_gap_max"]
        assert r["rollout/logprob_gap_max"] < 1e-2  # fp32 CPU: same weights, other kernels
    summary = json.loads((run / "summary.json").read_text())
    assert summary["shipped_warm_start"] and summary["eval_accuracy_after"] is not None


def test_three_step_training_with_vllm(tmp_path):
    run = tmp_path / "run"
    _cli("train", "-o", str(run), "--max-steps", "3", *[a for s in RUN for a in ("--set", s)])
    _check_run(run, 3)


def _eval_matches_final_model(run: Path, clips_file: Path, out: Path) -> None:
    """The run's final evaluation (vLLM, synced from the trained policy on every rank) equals an HF
    evaluation of the saved final model: the engines held the trained weights, whole."""
    same = ["rollout.max_new_tokens=16", "train.eval_batch_size=4"]
    _cli(
        "eval", "--model", str(run / "final_model"), "--data", str(clips_file), "-o", str(out),
        *[a for s in same for a in ("--set", s)],
    )  # fmt: skip
    after = {}
    for f in (run / "eval_after").glob("predictions*.jsonl"):
        after |= _completions(f)
    assert after == _completions(out / "predictions.jsonl")


@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp2"])
def test_two_processes_sync_every_ranks_engine(tmp_path, fsdp):
    run = tmp_path / "run"
    sets = [*RUN, "train.lr=1e-2", f"train.fsdp={str(fsdp).lower()}"]
    _cli("train", "-o", str(run), "--max-steps", "2", *[a for s in sets for a in ("--set", s)], processes=2)
    _check_run(run, 2)
    eval_file = next(run.glob("**/eval.jsonl"))
    _eval_matches_final_model(run, eval_file, tmp_path / "hf_eval")
