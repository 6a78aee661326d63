"""`deepvideo-r1 eval` on tiny fixture files in every public schema, with real media files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deepvideo_r1.cli import app
from deepvideo_r1.data.sample import Sample, VideoRef
from deepvideo_r1.evaluation.evaluate import (
    SampledDecoding,
    sample_fingerprint,
    score_prediction,
    score_samples,
    summarize,
)
from deepvideo_r1.evaluation.resume import EvalResumeError, _read_done
from deepvideo_r1.models.tiny import make_tiny_model
from deepvideo_r1.video.encode import write_video

FAST = [
    "--set",
    "video.num_frames=4",
    "--set",
    "rollout.max_new_tokens=6",
    "--set",
    "train.eval_batch_size=4",
]
FAST += ["--set", "video.min_pixels=3136", "--set", "video.max_pixels=3136"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    return make_tiny_model(
        out, text_hidden=64, text_layers=1, vision_hidden=32, vision_depth=1, vocab_size=512
    )


def _clip(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.zeros((8, 56, 56, 3), dtype=np.uint8)
    frames[:, 10:30, 10:30] = (255, 0, 0)
    write_video(path, frames, fps=4)


def _image(path: Path) -> None:
    import matplotlib.image

    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.image.imsave(path, np.full((28, 28, 3), 0.5))


def _write(path: Path, records, jsonl: bool) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in records) if jsonl else json.dumps(records)
    path.write_text(text, encoding="utf-8")
    return path


def seedbench(root: Path) -> Path:
    _clip(root / "videos" / "Ego4D" / "a.mp4")
    _image(root / "images" / "Ego4D" / "a.png")
    rec = {
        "sample_id": 7, "question": "What next?", "choice_a": "open", "choice_b": "close",
        "choice_c": "wash", "choice_d": "cut", "golden_choice_idx": "B", "video_source": "Ego4D",
        "video_basename": "a.mp4", "current_observation_basename": "a.png",
        "task_progress_metadata": [{"narration_text": "open drawer"}],
    }  # fmt: skip
    return _write(
        root / "validation_L2.jsonl", [rec, {**rec, "sample_id": 8, "task_progress_metadata": []}], True
    )


def longvideobench(root: Path) -> Path:
    _clip(root / "videos" / "b.mp4")
    rec = {"id": "lvb1", "question": "What colour?", "candidates": ["red", "blue", "green", "white"],
           "correct_choice": 0, "video_path": "b.mp4", "duration": 2.0, "duration_group": 15}  # fmt: skip
    return _write(root / "lvb_val.json", [rec], False)


def nextgqa(root: Path) -> Path:
    _clip(root / "c.mp4")
    rec = {"id": "g1", "video": "c.mp4", "question": "Why?", "options": ["(A) a", "(B) b", "(C) c", "(D) d",
           "(E) e"], "answer": "(C)", "duration": 2.0, "glue": [[0.5, 1.5]], "type": "CW"}  # fmt: skip
    return _write(root / "nextgqa.json", [rec], False)


def videor1(root: Path) -> Path:
    _clip(root / "d.mp4")
    rec = {"problem_id": 1, "problem": "How many?", "data_type": "video", "problem_type": "numerical",
           "options": [], "solution": "<answer>3</answer>", "path": "./d.mp4"}  # fmt: skip
    return _write(root / "videor1.json", [rec], False)


def own_jsonl(root: Path) -> Path:
    _clip(root / "e.mp4")
    rec = {"id": "j1", "problem_type": "temporal_grounding", "question": "When?", "videos": ["e.mp4"],
           "timestamps": [[0.5, 1.0]], "metadata": {"task": "appear_when"}}  # fmt: skip
    return _write(root / "own.jsonl", [rec], True)


@pytest.mark.parametrize(
    ("fmt", "build", "n", "category"),
    [
        ("seedbench_r1", seedbench, 2, "level=L2"),
        ("longvideobench", longvideobench, 1, "duration_group=15"),
        ("nextgqa", nextgqa, 1, "type=CW"),
        ("videor1", videor1, 1, None),
        ("jsonl", own_jsonl, 1, "task=appear_when"),
    ],
)
def test_eval_cli_on_each_public_schema(tmp_path, tiny_model, fmt, build, n, category):
    data = build(tmp_path / "data")
    out = tmp_path / "eval"
    args = ["eval", "--model", str(tiny_model), "--data", str(data), "--format", fmt]
    args += ["--root", str(tmp_path / "data"), "--out", str(out), *FAST]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "eval_report.json").read_text())
    assert report["n"] == n and report["n_labelled"] == n
    assert 0.0 <= report["accuracy"] <= 1.0
    if category:
        assert category in report["per_category"]
    if fmt in ("nextgqa", "jsonl"):
        assert report["miou"] is not None
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == n
    # A second run resumes: every sample is already predicted, nothing is appended.
    assert CliRunner().invoke(app, args).exit_code == 0
    assert (out / "predictions.jsonl").read_text().splitlines() == lines


def test_scores_and_summary_by_hand():
    mc = Sample(id="m", question="q", problem_type="multiple_choice", answer="B", options=["x", "y"],
                metadata={"level": "L1"})  # fmt: skip
    gqa = Sample(id="g", question="q", problem_type="grounded_qa", answer="A", options=["x", "y"],
                 timestamps=[(0.0, 2.0)], metadata={"type": "CW"})  # fmt: skip
    right = score_prediction(mc, "<think>t</think><answer>B</answer>")
    wrong = score_prediction(mc, "no tags B")
    # grounded: correct letter, span [1, 3] vs gold [0, 2] -> IoU 1/3, choice 1
    g = score_prediction(gqa, "<think>t</think><answer>A; 1-3</answer>")
    assert (right["score"], wrong["score"], right["format"], wrong["format"]) == (1.0, 0.0, 1.0, 0.0)
    assert g["iou"] == pytest.approx(1 / 3) and g["score"] == pytest.approx(1.0)
    report = summarize([right, wrong, g])
    assert report.accuracy == pytest.approx(2 / 3)
    assert report.ci95 == [0.0, 1.0]  # 2/3 ± t(0.975, 2)·s/√3 = ±4.303·0.577/1.732 = ±1.43, clipped
    assert report.per_category["level=L1"]["accuracy"] == 0.5
    assert report.miou == pytest.approx(1 / 3) and report.format_rate == pytest.approx(2 / 3)
    assert (right["choice"], wrong["choice"]) == ("B", None) and "choice" not in g
    # The option text counts as its letter; a reply with no <answer> block counts as "none".
    by_text = score_prediction(mc, "<think>t</think><answer>y</answer>")
    level = summarize([right, wrong, by_text]).per_category["level=L1"]
    assert level["choices"] == {"B": 2, "none": 1} and level["top_choice_share"] == pytest.approx(2 / 3)
    assert "choices" not in summarize([g]).per_category["type=CW"]


def _mc(sample_id: str, answer: str = "B", question: str = "q") -> Sample:
    return Sample(id=sample_id, question=question, problem_type="multiple_choice", answer=answer,
                  options=["x", "y"])  # fmt: skip


def _write_records(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_resume_reads_records_of_the_same_samples(tmp_path):
    a, b = _mc("a"), _mc("b")
    path = tmp_path / "predictions.jsonl"
    _write_records(path, [score_prediction(a, "<answer>B</answer>")])
    done = _read_done(path, [a, b])
    assert list(done) == ["a"] and done["a"]["score"] == 1.0


def test_resume_refuses_predictions_of_a_different_sample_with_the_same_id(tmp_path):
    path = tmp_path / "predictions.jsonl"
    _write_records(path, [score_prediction(_mc("a"), "x"), score_prediction(_mc("b", answer="A"), "x")])
    with pytest.raises(EvalResumeError, match=r"jsonl:2: prediction for 'b' was made for a different"):
        _read_done(path, [_mc("a"), _mc("b", answer="B")])
    with pytest.raises(EvalResumeError, match=r":1: prediction for 'a', which is not in the evaluated data"):
        _read_done(path, [_mc("c")])
    _write_records(path, [{"id": "a", "completion": "x", "format": 0.0}])
    with pytest.raises(EvalResumeError, match=r":1: record without a sample fingerprint"):
        _read_done(path, [_mc("a")])


def test_resume_drops_a_last_line_cut_by_a_crash(tmp_path):
    path = tmp_path / "predictions.jsonl"
    good = json.dumps(score_prediction(_mc("a"), "x"))
    path.write_text(good + "\n" + '{"id": "b", "compl')
    assert list(_read_done(path, [_mc("a"), _mc("b")])) == ["a"]
    assert path.read_text() == good + "\n"  # appending the next record now gives valid jsonl
    path.write_text('{"id": "b", "compl\n' + good + "\n")
    with pytest.raises(EvalResumeError, match=r":1: not valid JSON"):
        _read_done(path, [_mc("a"), _mc("b")])


def test_fingerprint_follows_the_video_file_not_its_directory(tmp_path):
    for d in ("one", "two"):
        _clip(tmp_path / d / "v.mp4")
    one = Sample(id="v", question="q", problem_type="numerical", answer="1",
                 videos=[VideoRef(str(tmp_path / "one" / "v.mp4"))])  # fmt: skip
    two = Sample(id="v", question="q", problem_type="numerical", answer="1",
                 videos=[VideoRef(str(tmp_path / "two" / "v.mp4"))])  # fmt: skip
    assert sample_fingerprint(one) == sample_fingerprint(two)
    assert sample_fingerprint(one) != sample_fingerprint(_mc("v"))
    (tmp_path / "two" / "v.mp4").write_bytes(b"other bytes")
    assert sample_fingerprint(one) != sample_fingerprint(two)


def _tagged(answer: str) -> str:
    return f"<think>t</think><answer>{answer}</answer>"


def test_sampled_scores_majority_and_best_by_hand():
    mc = _mc("m")  # options x, y; gold B
    # votes: A (1st, 3rd, 6th), B (2nd, 5th), unparseable (4th) -> majority A, which scores 0
    done = score_samples(mc, [_tagged("A"), _tagged("B"), _tagged("x"), "none", _tagged("y"), _tagged("A")])
    assert done["answers"] == ["A", "B", "A", None, "B", "A"]
    assert done["scores"] == [0.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert (done["mean"], done["maj"], done["best"]) == (pytest.approx(1 / 3), 0.0, 1.0)
    # a tie goes to the answer seen first
    assert score_samples(mc, [_tagged("B"), _tagged("A")])["maj"] == 1.0
    assert score_samples(mc, ["no answer", "none"])["maj"] == 0.0
    # numbers vote by value: "3" and "3.0" are one answer
    num = Sample(id="n", question="q", problem_type="numerical", answer="3")
    assert score_samples(num, [_tagged("3.0"), _tagged("4"), _tagged("3")])["answers"] == [
        "3.0",
        "4.0",
        "3.0",
    ]
    # grounding: best is the best IoU; gold [0, 2], spans [0, 1] (IoU 1/2) and [0, 2] (IoU 1)
    tg = Sample(id="t", question="q", problem_type="temporal_grounding", answer="", timestamps=[(0.0, 2.0)])
    spans = score_samples(tg, [_tagged("0-1"), _tagged("0-2"), _tagged("0-1")])
    assert spans["scores"] == pytest.approx([0.5, 1.0, 0.5])
    assert (spans["maj"], spans["best"]) == (pytest.approx(0.5), 1.0)
    unlabelled = Sample(id="u", question="q", problem_type="free_form", answer="")
    assert score_samples(unlabelled, ["a", "b"]) == {"completions": ["a", "b"]}


def test_summary_reports_mean_majority_and_pass_at_k():
    records = []
    for sid, texts in (("a", [_tagged("B"), _tagged("A"), _tagged("A")]), ("b", [_tagged("B")] * 3)):
        rec = score_prediction(_mc(sid), _tagged("A"))  # greedy wrong on both
        rec["decoding"] = {"num_samples": 3, "temperature": 1.0, "seed": 0}
        rec["sampled"] = score_samples(_mc(sid), texts)
        records.append(rec)
    report = summarize(records)
    assert report.accuracy == 0.0
    assert report.mean_at_k == pytest.approx((1 / 3 + 1) / 2)
    assert (report.maj_at_k, report.pass_at_k) == (0.5, 1.0)
    assert report.sampling == {"num_samples": 3, "temperature": 1.0, "seed": 0}
    assert summarize([score_prediction(_mc("a"), "x")]).maj_at_k is None  # greedy only


def test_resume_refuses_records_decoded_otherwise(tmp_path):
    path = tmp_path / "predictions.jsonl"
    _write_records(path, [score_prediction(_mc("a"), "x")])
    with pytest.raises(EvalResumeError, match=r":1: decoded with greedy only, not .*num_samples"):
        _read_done(path, [_mc("a")], {"num_samples": 4, "temperature": 1.0, "seed": 0})
    with pytest.raises(ValueError, match="num_samples >= 1"):
        SampledDecoding(0)


def test_eval_cli_sampled_completions(tmp_path, tiny_model):
    data = own_jsonl(tmp_path / "data")

    def run(out: Path, *extra: str):
        args = ["eval", "--model", str(tiny_model), "--data", str(data), "--format", "jsonl"]
        args += ["--root", str(tmp_path / "data"), "--out", str(out), "--num-samples", "3", *FAST, *extra]
        return CliRunner().invoke(app, args)

    def first_record(out: Path) -> dict:
        return json.loads((out / "predictions.jsonl").read_text().splitlines()[0])

    result = run(tmp_path / "eval")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval" / "eval_report.json").read_text())
    assert report["sampling"] == {"num_samples": 3, "temperature": 1.0, "seed": 0}
    assert 0.0 <= report["mean_at_k"] <= report["pass_at_k"] <= 1.0
    rec = first_record(tmp_path / "eval")
    assert len(rec["sampled"]["completions"]) == 3 and len(rec["sampled"]["scores"]) == 3
    # same seed, fresh directory: the same sampled completions
    assert run(tmp_path / "eval2").exit_code == 0
    assert first_record(tmp_path / "eval2")["sampled"] == rec["sampled"]
    # resuming with other decoding settings is refused, naming the file and line
    other = run(tmp_path / "eval", "--sample-seed", "1")
    assert other.exit_code == 2 and "predictions.jsonl:1: decoded with" in other.output


def test_weights_fingerprint_sees_one_changed_element(tiny_model):
    import torch

    from deepvideo_r1.evaluation.fingerprint import weights_fingerprint
    from deepvideo_r1.models.adapter import load_policy

    model, _ = load_policy(tiny_model, device="cpu")
    before = weights_fingerprint(model)
    assert weights_fingerprint(model) == before  # deterministic
    param = next(p for n, p in model.named_parameters() if "layers.0.mlp" in n)
    with torch.no_grad():
        param.view(-1)[123] += 1e-3  # one element of one tensor, not at a sampled position
    assert weights_fingerprint(model) != before


def _eval_args(model: Path, data: Path, root: Path, out: Path, *extra: str) -> list[str]:
    args = ["eval", "--model", str(model), "--data", str(data), "--format", "jsonl"]
    return [*args, "--root", str(root), "--out", str(out), *FAST, *extra]


def test_eval_refuses_predictions_of_another_model_or_length(tmp_path, tiny_model):
    data = own_jsonl(tmp_path / "data")
    other = make_tiny_model(
        tmp_path / "other", seed=1, text_hidden=64, text_layers=1, vision_hidden=32, vision_depth=1,
        vocab_size=512,
    )  # fmt: skip
    out = tmp_path / "eval"

    def run(model: Path, *extra: str):
        return CliRunner().invoke(app, _eval_args(model, data, tmp_path / "data", out, *extra))

    assert run(tiny_model).exit_code == 0
    first = (out / "predictions.jsonl").read_text()
    refused = run(other)
    assert refused.exit_code == 2, refused.output
    assert "predictions.jsonl:1: prediction for 'j1' was made with other model_weights" in refused.output
    refused = run(tiny_model, "--set", "rollout.max_new_tokens=7")
    assert refused.exit_code == 2 and "other max_new_tokens" in refused.output
    refused = run(tiny_model, "--set", "video.num_frames=6")
    assert refused.exit_code == 2 and "other video" in refused.output
    assert (out / "predictions.jsonl").read_text() == first  # nothing appended or mixed
    assert run(tiny_model).exit_code == 0  # the same model and settings resume
    assert (out / "predictions.jsonl").read_text() == first


def test_a_run_evaluates_again_when_its_model_changed(tmp_path, tiny_model):
    """Inside a run the directory is the run's own: stale predictions are redone, never reported."""
    import torch

    from deepvideo_r1.config import VideoConfig
    from deepvideo_r1.data import load_samples
    from deepvideo_r1.evaluation import EvalSettings, evaluate
    from deepvideo_r1.models.adapter import load_policy
    from deepvideo_r1.models.media import MediaLoader

    samples = load_samples(own_jsonl(tmp_path / "data"), format="jsonl").samples
    model, adapter = load_policy(tiny_model, device="cpu")
    video = VideoConfig(num_frames=4, min_pixels=3136, max_pixels=3136)
    media = MediaLoader(video, tmp_path / "cache")
    out = tmp_path / "eval_after"

    def keys() -> list[str]:
        return [json.loads(line)["eval_key"] for line in (out / "predictions.jsonl").read_text().splitlines()]

    evaluate(model, adapter, samples, media, out, EvalSettings(max_new_tokens=4), restart_if_stale=True)
    old = keys()
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    evaluate(model, adapter, samples, media, out, EvalSettings(max_new_tokens=4), restart_if_stale=True)
    new = keys()
    assert len(new) == len(old) == 1 and new != old


def test_duplicate_ids_in_an_eval_file_are_refused_naming_both_records(tmp_path, tiny_model):
    root = tmp_path / "data"
    _clip(root / "e.mp4")
    rec = {"id": "dup", "problem_type": "numerical", "question": "How many?", "answer": "3"}
    rec["videos"] = ["e.mp4"]
    other = {**rec, "id": "ok"}
    data = _write(root / "dup.jsonl", [rec, other, {**rec, "answer": "4"}], True)
    result = CliRunner().invoke(app, _eval_args(tiny_model, data, root, tmp_path / "eval"))
    assert result.exit_code == 2
    assert "dup.jsonl, line 3: sample id 'dup' is also used by " in result.output
    assert "dup.jsonl, line 1; give every sample its own id" in result.output
    assert not (tmp_path / "eval" / "predictions.jsonl").exists()


def test_eval_of_a_run_model_uses_the_run_config_and_prints_a_summary(tmp_path, tiny_model):
    """`eval --model RUN/final_model` takes RUN/config.yaml (here max_new_tokens 3, not the preset's
    64), says so, and prints a summary and the report's path instead of the whole JSON."""
    import shutil

    from deepvideo_r1.config import load_config, save_config
    from deepvideo_r1.presets import TINY_CPU

    run = tmp_path / "run"
    shutil.copytree(tiny_model, run / "final_model")
    sets = ["rollout.max_new_tokens=3", "video.num_frames=4", "video.min_pixels=3136"]
    sets += ["video.max_pixels=3136"]
    save_config(load_config(TINY_CPU, sets), run / "config.yaml")
    (run / "metrics.jsonl").write_text("")
    data = own_jsonl(tmp_path / "data")
    args = ["eval", "--model", str(run / "final_model"), "--data", str(data), "--format", "jsonl"]
    args += ["--root", str(tmp_path / "data"), "--out", str(tmp_path / "eval")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"config: {run / 'config.yaml'} (the model's run)" in result.output
    report = json.loads((tmp_path / "eval" / "eval_report.json").read_text())
    generation = report["header"]["generation"]
    assert generation == {
        "decoding": "greedy",
        "max_new_tokens": 3,
        "batch_size": generation["batch_size"],
        "engine": "hf",
        "sampled": None,
    }
    assert "accuracy " in result.output and "on 1 of 1 samples" in result.output
    assert f"report: {tmp_path / 'eval' / 'eval_report.json'}" in result.output
    assert '"per_category"' not in result.output  # not the whole JSON report
    # --config wins over the run's
    explicit = [*args[:-2], "--out", str(tmp_path / "e2"), "--config", TINY_CPU, *FAST]
    result = CliRunner().invoke(app, explicit)
    assert result.exit_code == 0 and f"config: {TINY_CPU}\n" in result.output
    header = json.loads((tmp_path / "e2" / "eval_report.json").read_text())["header"]
    assert header["generation"]["max_new_tokens"] == 6
