"""What one run leaves for other tools: logged SFT loss, held-out accuracy and sample completions,
a final_model/ that transformers' Auto classes load and generate with, an lmms-eval-style report,
and `export` of a checkpoint."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from deepvideo_r1.cli import app
from deepvideo_r1.config import load_config
from deepvideo_r1.metrics.logger import read_metrics
from deepvideo_r1.pipeline import run_training
from deepvideo_r1.presets import TINY_CPU
from helpers import TINY_RUN

FAST = [
    *TINY_RUN,
    "data.synth.n_train=4",
    "data.synth.n_eval=3",  # the interval test below uses t(0.975, df=2)
    "sft.steps=2",
    "sft.batch_size=2",
    "rollout.max_new_tokens=8",
    "train.log_completions_every=1",
    "train.report_to=[tensorboard]",
    "train.run_name=outputs",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("outputs") / "run"
    run_training(load_config(TINY_CPU, [*FAST, f"train.output_dir={out}"]))
    return out


def test_sft_eval_and_completions_are_logged(run):
    sft = read_metrics(run / "sft_metrics.jsonl")
    assert [r["step"] for r in sft] == [1, 2] and all(r["sft/loss"] > 0 for r in sft)
    summary = json.loads((run / "summary.json").read_text())
    evals = {r["step"]: r["eval/accuracy"] for r in read_metrics(run) if "eval/accuracy" in r}
    assert evals == {0: summary["eval_accuracy_before"], 2: summary["eval_accuracy_after"]}
    rows = [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]
    # steps 1 and 2 (every 1 step), 2 groups of G = 2 each
    assert [r["step"] for r in rows] == [1, 1, 1, 1, 2, 2, 2, 2]
    for r in rows:
        assert r["reward"] == pytest.approx(r["rewards"]["format"] + r["rewards"]["accuracy"])  # weights 1, 1
        assert r["augmentation"] in ("none", "increase", "decrease") and r["prompt"] and r["gold"]
        assert (r["hint"] is not None) == (r["augmentation"] == "decrease")
    for a, b in zip(rows[::2], rows[1::2], strict=True):  # group-normalised advantages of a pair sum to 0
        assert a["sample_id"] == b["sample_id"] and a["advantage"] + b["advantage"] == pytest.approx(
            0, abs=1e-5
        )


def test_trackers_get_sft_rl_and_eval_on_one_step_axis(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb" / "outputs"))
    events.Reload()
    # SFT steps 1, 2; RL step s at 2 + s; eval before at 2 + 0, after at 2 + 2
    assert [e.step for e in events.Scalars("sft/loss")] == [1, 2]
    assert [e.step for e in events.Scalars("reward/mean")] == [3, 4]
    assert [e.step for e in events.Scalars("eval/accuracy")] == [2, 4]


def test_eval_report_names_model_data_and_spread(run):
    from deepvideo_r1.data import load_samples
    from deepvideo_r1.data.prompts import format_answer
    from deepvideo_r1.evaluation.fingerprint import weights_fingerprint
    from deepvideo_r1.models.adapter import load_policy

    report = json.loads((run / "eval_after" / "eval_report.json").read_text())
    preds = [json.loads(line) for line in (run / "eval_after" / "predictions.jsonl").read_text().splitlines()]
    scores = [p["score"] for p in preds]
    n, mean = len(scores), sum(scores) / len(scores)
    stderr = math.sqrt(sum((x - mean) ** 2 for x in scores) / (n - 1) / n)  # sample std / sqrt(n)
    assert report["accuracy_stderr"] == pytest.approx(stderr)
    low, high = report["ci95"]  # Student t with n - 1 = 2 degrees of freedom: t = 4.303
    assert low == pytest.approx(max(0.0, mean - 4.303 * stderr), abs=1e-3)
    assert high == pytest.approx(min(1.0, mean + 4.303 * stderr), abs=1e-3)
    assert all(isinstance(c["n"], int) for c in report["per_category"].values())
    assert sum(c["n"] for c in report["per_category"].values()) == n
    header = report["header"]
    eval_file = run / "synth" / "eval.jsonl"
    assert header["data"] == {
        "path": str(eval_file),
        "sha256": hashlib.sha256(eval_file.read_bytes()).hexdigest(),
    }
    model, _ = load_policy(run / "final_model")
    assert header["model"] == {"path": str(run / "final_model"), "fingerprint": weights_fingerprint(model)}
    assert header["generation"]["max_new_tokens"] == 8 and header["versions"]["deepvideo_r1"]
    samples = {s.id: s for s in load_samples(eval_file).samples}
    for p in preds:  # gold: the text expected inside <answer> (a span for temporal grounding)
        assert p["gold"] == format_answer(samples[p["id"]]) and p["gold"]
        assert samples[p["id"]].question in p["prompt"]


def test_final_model_is_a_complete_hf_directory(run):
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

    from deepvideo_r1.data import load_samples
    from deepvideo_r1.evaluation.evaluate import EvalSettings, predict
    from deepvideo_r1.models.adapter import load_policy
    from deepvideo_r1.models.media import MediaLoader, encode_sample

    final = run / "final_model"
    for name in ("preprocessor_config.json", "video_preprocessor_config.json", "generation_config.json"):
        assert (final / name).is_file(), name
    model = AutoModelForImageTextToText.from_pretrained(final).eval()
    tokenizer = AutoTokenizer.from_pretrained(final)
    processor = AutoImageProcessor.from_pretrained(final)
    assert processor.merge_size == 2 and processor.patch_size == 14
    # the project's eval and transformers' generate, greedy, on one sample: the same text
    cfg = load_config(TINY_CPU, [*FAST, f"train.output_dir={run}"])
    project_model, adapter = load_policy(final)
    sample = load_samples(run / "synth" / "eval.jsonl").samples[0]
    media = MediaLoader(cfg.video, run / "cache", factor=28)
    (record,) = predict(
        project_model, adapter, [sample], media, run / "one.jsonl", EvalSettings(max_new_tokens=8)
    )
    batch = adapter.collate([encode_sample(adapter, sample, media(sample))])
    inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    inputs |= {**batch.pixel_kwargs(), **batch.vision_kwargs()}
    with torch.no_grad():  # eos and pad come from final_model/generation_config.json
        out = model.generate(**inputs, max_new_tokens=8, suppress_tokens=adapter.vision_token_ids)
    text = tokenizer.decode(out[0, batch.input_ids.shape[1] :], skip_special_tokens=True)
    assert text.strip() == record["completion"].strip()


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="AutoProcessor needs torchvision")
def test_final_model_loads_with_auto_processor(run):
    from transformers import AutoProcessor

    assert AutoProcessor.from_pretrained(run / "final_model").tokenizer is not None


def test_export_of_the_last_checkpoint_equals_final_model(run, tmp_path):
    result = CliRunner().invoke(
        app, ["export", str(run / "checkpoints" / "checkpoint-2"), str(tmp_path / "x")]
    )
    assert result.exit_code == 0, result.output
    exported, final = (
        load_file(tmp_path / "x" / "model.safetensors"),
        load_file(run / "final_model" / "model.safetensors"),
    )
    assert exported.keys() == final.keys()
    assert all(torch.equal(exported[k], final[k]) for k in final)
    assert (tmp_path / "x" / "preprocessor_config.json").read_text() == (
        run / "final_model" / "preprocessor_config.json"
    ).read_text()
    bad = CliRunner().invoke(app, ["export", str(tmp_path), str(tmp_path / "y")])
    assert bad.exit_code == 2 and "not a complete checkpoint" in bad.output


def test_export_keeps_or_merges_lora(run, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from deepvideo_r1.checkpoints.checkpoint import model_state_for_saving, save_checkpoint
    from deepvideo_r1.models.adapter import load_policy
    from deepvideo_r1.training.context import trainable_model

    lora_run = tmp_path / "lora_run"
    lora_run.mkdir()
    (lora_run / "sft_model").symlink_to(run / "sft_model")  # the base this run's RL stage loaded
    cfg = load_config(TINY_CPU, [*FAST, f"train.output_dir={lora_run}", "model.lora.enabled=true"])
    model = trainable_model(load_policy(run / "sft_model")[0], cfg)
    torch.manual_seed(0)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # B = 0 at init: a trained adapter has B != 0
            param.data.normal_(0, 0.5)
    ckpt = save_checkpoint(
        lora_run / "checkpoints", 1, model_state=model_state_for_saving(model, adapters_only=True),
        adapters_only=True, config=cfg,
    )  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(app, ["export", str(ckpt), str(tmp_path / "kept"), "--no-merge-lora"]).exit_code == 0
    assert runner.invoke(app, ["export", str(ckpt), str(tmp_path / "merged")]).exit_code == 0
    kept = tmp_path / "kept"
    assert (kept / "adapter_model.safetensors").is_file() and not (kept / "model.safetensors").exists()
    assert (kept / "preprocessor_config.json").is_file() and (kept / "tokenizer.json").is_file()
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        adapter_model = PeftModel.from_pretrained(
            AutoModelForImageTextToText.from_pretrained(run / "sft_model"), kept
        )
        a = adapter_model.eval()(input_ids=ids).logits
        b = AutoModelForImageTextToText.from_pretrained(tmp_path / "merged").eval()(input_ids=ids).logits
        base = AutoModelForImageTextToText.from_pretrained(run / "sft_model").eval()(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-4)  # adapter on the base = the merged weights
    assert not torch.allclose(a, base, atol=1e-3)  # and the adapter changes the model


def test_export_is_atomic_and_refuses_non_empty_protected_or_file_outputs(run, tmp_path):
    runner, ckpt, out = CliRunner(), run / "checkpoints" / "checkpoint-2", tmp_path / "x"
    assert runner.invoke(app, ["export", str(ckpt), str(out)]).exit_code == 0
    (out / "adapter_config.json").write_text("{}")  # as left by an earlier `--no-merge-lora` export
    again = runner.invoke(app, ["export", str(ckpt), str(out)])
    assert again.exit_code == 2 and "is not empty; pass --overwrite" in again.output
    assert runner.invoke(app, ["export", str(ckpt), str(out), "--overwrite"]).exit_code == 0
    assert not (out / "adapter_config.json").exists()  # one model, not a mix of two
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # no temporary or old copy left
    sft_weights = hashlib.sha256((run / "sft_model" / "model.safetensors").read_bytes()).hexdigest()
    for target in (ckpt, run / "sft_model", run / "checkpoints" / "exported", run / "tiny_model" / "x"):
        result = runner.invoke(app, ["export", str(ckpt), str(target), "--overwrite"])
        assert result.exit_code == 2 and "which this or later exports read" in result.output, result.output
    assert hashlib.sha256((run / "sft_model" / "model.safetensors").read_bytes()).hexdigest() == sft_weights
    assert not (run / "checkpoints" / "exported").exists()
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["export", str(ckpt), str(tmp_path / "file"), "--overwrite"])
    assert result.exit_code == 2 and "is a file, not a directory" in result.output


def _damaged_copy(model_dir: Path, out: Path, change) -> Path:
    import shutil

    from safetensors.torch import save_file

    shutil.copytree(model_dir, out)
    weights = load_file(out / "model.safetensors")
    save_file(change(weights), out / "model.safetensors")
    return out


def test_a_model_directory_with_renamed_or_missing_weights_is_refused(run, tmp_path):
    from deepvideo_r1.models.adapter import ModelLoadError, load_policy

    renamed = _damaged_copy(
        run / "final_model",
        tmp_path / "renamed",
        lambda w: {k.replace("model.layers.", "model.renamed_layers."): v for k, v in w.items()},
    )
    args = ["eval", "--model", str(renamed), "--data", str(run / "synth" / "eval.jsonl")]
    result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "eval")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert (
        "weights missing (model.language_model.layers.0." in result.output and "unexpected (" in result.output
    )
    no_vision = _damaged_copy(
        run / "final_model",
        tmp_path / "no_vision",
        lambda w: {k: v for k, v in w.items() if "visual" not in k},
    )
    with pytest.raises(ModelLoadError, match=r"weights missing \(model\.visual\."):
        load_policy(no_vision)


def test_every_model_directory_has_a_manifest_and_a_damaged_sft_model_is_refused(run, tmp_path):
    import shutil

    from deepvideo_r1.pipeline import StaleModelError

    for name in ("tiny_model", "sft_model", "final_model"):
        assert (run / name / "MANIFEST.json").is_file(), name
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    weights = copy / "sft_model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one flipped bit in the last weight
    weights.write_bytes(bytes(data))
    with pytest.raises(StaleModelError, match=r"sft_model/model\.safetensors does not match its sha256"):
        run_training(load_config(TINY_CPU, [*FAST, f"train.output_dir={copy}"]))
