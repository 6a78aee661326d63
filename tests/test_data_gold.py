"""Bad gold labels, clip bounds, invalid Unicode and media outside the root are found at load time."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from deepvideo_r1.data import DataFormatError, Sample, load_samples, write_samples_jsonl

MC = {"id": "mc", "problem_type": "multiple_choice", "question": "q?", "options": ["x", "y"], "answer": "A"}


def _write(tmp_path: Path, lines: list[str], name: str = "d.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# Raw JSON lines (not dicts): `Infinity` and a lone surrogate escape are only expressible as text.
BAD_GOLD = [
    ('{"id": "n1", "problem_type": "numerical", "question": "q", "answer": "abc"}', "not a finite number"),
    ('{"id": "n2", "problem_type": "numerical", "question": "q", "answer": "NaN"}', "not a finite number"),
    (
        '{"id": "g", "problem_type": "grounded_qa", "question": "q", "options": ["x", "y"], "answer": "B"}',
        "needs the gold span",
    ),
    (
        '{"id": "t1", "problem_type": "temporal_grounding", "question": "q", "timestamps": [[1, Infinity]]}',
        "not finite",
    ),
    (
        '{"id": "t2", "problem_type": "temporal_grounding", "question": "q", "timestamps": [[1e309, 1e309]]}',
        "not finite",
    ),
    (
        '{"id": "t3", "problem_type": "temporal_grounding", "question": "q", "answer": "1e309-1e309",'
        ' "timestamps": [[1, 2]]}',
        "not finite",
    ),
]


@pytest.mark.parametrize(("line", "why"), BAD_GOLD)
def test_bad_gold_is_a_located_error_at_load(tmp_path, line, why):
    path = _write(tmp_path, [json.dumps(MC), line])
    with pytest.raises(DataFormatError, match=rf"d\.jsonl, line 2: .*{why}"):
        load_samples(path)


def test_bad_gold_is_a_counted_skip(tmp_path):
    path = _write(tmp_path, [json.dumps(MC)] + [line for line, _ in BAD_GOLD])
    result = load_samples(path, on_error="skip")
    assert [s.id for s in result.samples] == ["mc"]
    assert [s.line_or_index for s in result.skipped] == [2, 3, 4, 5, 6, 7]


def test_unlabelled_samples_load_unless_labels_are_required(tmp_path):
    empty = dict(MC, id="e", answer="")
    path = _write(tmp_path, [json.dumps(MC), json.dumps(empty)])
    assert [s.labelled for s in load_samples(path).samples] == [True, False]  # eval: reported unlabelled
    with pytest.raises(DataFormatError, match="line 2: multiple_choice sample has no gold label"):
        load_samples(path, require_labels=True)  # training would crash scoring it
    skipped = load_samples(path, require_labels=True, on_error="skip")
    assert [s.id for s in skipped.samples] == ["mc"] and len(skipped.skipped) == 1


@pytest.mark.parametrize(
    "video",
    [{"path": "v.mp4", "start": float("nan")}, {"path": "v.mp4", "end": float("nan")},
     {"path": "v.mp4", "start": -1.0}, {"path": "v.mp4", "start": 0, "end": float("inf")}],
)  # fmt: skip
def test_clip_bounds_must_be_finite(tmp_path, video):
    path = _write(tmp_path, [json.dumps(dict(MC, videos=[video]))])  # json.dumps writes NaN/Infinity
    with pytest.raises(DataFormatError, match=r"videos\[0\] clip .* needs finite 0 <= start <= end"):
        load_samples(path)


def test_lone_surrogate_is_a_named_error_not_a_crash(tmp_path):
    line = '{"id": "s", "problem_type": "free_form", "question": "what \\ud800?", "answer": "x"}'
    path = _write(tmp_path, [json.dumps(MC), line])
    with pytest.raises(DataFormatError, match=r"line 2: field 'question' is not valid Unicode .*\\ud800"):
        load_samples(path)
    assert [s.id for s in load_samples(path, on_error="skip").samples] == ["mc"]


def test_write_samples_jsonl_is_atomic(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("previous content\n")
    good = Sample(id="a", question="q", problem_type="free_form", answer="x")
    bad = Sample(id="b", question="\ud800", problem_type="free_form", answer="x")
    with pytest.raises(UnicodeEncodeError):
        write_samples_jsonl([good, bad], out)
    assert out.read_text() == "previous content\n"  # before: truncated to the first line only
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left
    assert write_samples_jsonl([good], out) == 1
    assert [s.id for s in load_samples(out).samples] == ["a"]


def test_media_outside_the_root_is_warned_once_with_a_count(tmp_path, caplog):
    root = tmp_path / "root"
    root.mkdir()
    records = [dict(MC, id="in", videos=["v.mp4"]), dict(MC, id="up", videos=["../../etc/v.mp4"]),
               dict(MC, id="abs", videos=["/tmp/elsewhere.mp4"], images=["../i.png"])]  # fmt: skip
    path = _write(root, [json.dumps(r) for r in records])
    with caplog.at_level(logging.WARNING, logger="deepvideo_r1.data.loader"):
        load_samples(path)
    warnings = [r.getMessage() for r in caplog.records if "outside the root" in r.getMessage()]
    assert len(warnings) == 1
    assert f"2 samples have media outside the root {root}" in warnings[0]
    assert "first: sample 'up' -> " + str((root / "../../etc/v.mp4").resolve()) in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="deepvideo_r1.data.loader"):
        load_samples(_write(root, [json.dumps(records[0])], "ok.jsonl"))
    assert not [r for r in caplog.records if "outside the root" in r.getMessage()]


def test_inspect_data_with_a_lone_surrogate_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from deepvideo_r1.cli import app

    line = '{"id": "s", "problem_type": "free_form", "question": "what \\ud800?", "answer": "x"}'
    path = _write(tmp_path, [json.dumps(MC), line])
    result = CliRunner().invoke(app, ["inspect-data", str(path)])
    # before: UnicodeEncodeError traceback while printing the table
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "line 2: field 'question' is not valid Unicode" in result.output
    skipped = CliRunner().invoke(app, ["inspect-data", str(path), "--on-error", "skip", "--json"])
    assert skipped.exit_code == 0 and "skipped: 1" in skipped.output
