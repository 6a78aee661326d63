"""load_samples error paths, skip policy, media checks, and the write_samples_jsonl round trip."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from deepvideo_r1.data import (
    DataFormatError,
    MissingMediaError,
    Sample,
    SkippedRecord,
    UnknownFormatError,
    VideoRef,
    load_samples,
    write_samples_jsonl,
)

GOOD = {"id": "ok", "problem_type": "numerical", "question": "How many?", "answer": "3"}


def jsonl(tmp_path: Path, lines: list[str], name: str = "d.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def line(**record) -> str:
    return json.dumps(record)


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    f = jsonl(tmp_path, [line(**GOOD), "", '{"id": "x", "question": '])
    with pytest.raises(DataFormatError) as info:
        load_samples(f)
    assert info.value.line == 3 and info.value.file == str(f)
    assert str(info.value).startswith(f"{f}, line 3: malformed JSON")


def test_malformed_json_list_names_line(tmp_path: Path) -> None:
    f = tmp_path / "d.json"
    f.write_text('[\n  {"id": 1},\n  {"id": 2,,}\n]', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"d\.json, line 3: malformed JSON"):
        load_samples(f, format="nextgqa")


def test_missing_required_field_names_record_and_field(tmp_path: Path) -> None:
    f = jsonl(tmp_path, [line(**GOOD), line(id="b", problem_type="numerical", answer="1")])
    with pytest.raises(DataFormatError) as info:
        load_samples(f, format="jsonl")
    assert info.value.line == 2 and info.value.field == "question"
    assert "line 2" in str(info.value) and "'question'" in str(info.value)


def test_json_list_error_names_index(tmp_path: Path) -> None:
    gqa = {"id": 1, "video": "v.mp4", "question": "?", "options": ["(A) x", "(B) y"], "glue": [[1, 2]]}
    f = tmp_path / "g.json"
    f.write_text(json.dumps([{**gqa, "answer": "(A)"}, {**gqa, "answer": "(F)"}]), encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        load_samples(f)
    assert info.value.index == 1 and info.value.field == "answer" and "index 1" in str(info.value)


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    f = jsonl(tmp_path, [line(**GOOD, anwser="3")])
    with pytest.raises(DataFormatError, match=r"line 1: unknown key 'anwser'"):
        load_samples(f)


@pytest.mark.parametrize(
    ("record", "field", "text"),
    [
        ({**GOOD, "problem_type": "counting"}, "problem_type", "unknown problem_type 'counting'"),
        ({**GOOD, "options": "A, B"}, "options", "must be a list"),
        ({**GOOD, "id": True}, "id", "must be a string or an integer"),
        ({**GOOD, "timestamps": [[5, 2]]}, "timestamps", "0 <= start <= end"),
        (
            {**GOOD, "problem_type": "multiple_choice", "options": ["x", "y"], "answer": "C"},
            "answer",
            "letters",
        ),
        ({**GOOD, "problem_type": "temporal_grounding", "answer": ""}, "timestamps", "needs ground-truth"),
        ({**GOOD, "videos": [{"path": "a.mp4", "begin": 1}]}, "videos[0]", "unknown key 'begin'"),
    ],
)
def test_invalid_values_name_the_field(tmp_path: Path, record: dict, field: str, text: str) -> None:
    with pytest.raises(DataFormatError) as info:
        load_samples(jsonl(tmp_path, [line(**record)]))
    assert info.value.field == field and text in str(info.value) and "line 1" in str(info.value)


def test_skip_counts_and_logs_bad_records_without_replacing_them(tmp_path: Path, caplog) -> None:
    bad_type = line(**{**GOOD, "id": "b", "problem_type": "counting"})
    f = jsonl(tmp_path, [line(**GOOD), "{oops", bad_type, line(**{**GOOD, "id": "last"})])
    with caplog.at_level(logging.WARNING, logger="deepvideo_r1.data.loader"):
        result = load_samples(f, on_error="skip")
    assert [s.id for s in result.samples] == ["ok", "last"]  # 4 records - 2 bad = 2, order kept
    assert [(s.file, s.line_or_index) for s in result.skipped] == [(str(f), 2), (str(f), 3)]
    assert "malformed JSON" in result.skipped[0].reason and "counting" in result.skipped[1].reason
    assert all(isinstance(s, SkippedRecord) for s in result.skipped)
    assert len([r for r in caplog.records if "skipped record" in r.getMessage()]) == 2
    assert result.counts == {"numerical": 2}


def test_check_media_raises_or_skips(tmp_path: Path) -> None:
    (tmp_path / "have.mp4").write_bytes(b"\x00")
    records = [
        line(**{**GOOD, "id": "a", "videos": ["have.mp4"]}),
        line(**{**GOOD, "id": "b", "videos": ["gone.mp4"]}),
        line(**{**GOOD, "id": "c", "images": ["gone.png"]}),
    ]
    f = jsonl(tmp_path, records)
    assert len(load_samples(f).samples) == 3  # media not checked by default
    with pytest.raises(MissingMediaError) as info:
        load_samples(f, check_media=True)
    assert info.value.sample_id == "b" and info.value.path == str(tmp_path / "gone.mp4")
    assert "'b'" in str(info.value) and "gone.mp4" in str(info.value)
    result = load_samples(f, check_media=True, on_error="skip")
    assert [s.id for s in result.samples] == ["a"]
    assert [s.line_or_index for s in result.skipped] == [2, 3]


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="cannot read file"):
        load_samples(tmp_path / "missing.jsonl")
    f = jsonl(tmp_path, [line(**GOOD)])
    with pytest.raises(UnknownFormatError, match="known formats: auto, jsonl"):
        load_samples(f, format="parquet")
    with pytest.raises(DataFormatError, match="expects a JSON list"):
        load_samples(f, format="longvideobench")
    odd = jsonl(tmp_path, [line(foo=1, bar=2)], "odd.jsonl")
    with pytest.raises(DataFormatError, match=r"cannot detect the format .*keys: bar, foo"):
        load_samples(odd)
    with pytest.raises(ValueError, match="on_error"):
        load_samples(f, on_error="ignore")


def test_write_then_load_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "media"
    samples = [
        Sample(
            id="r1",
            question="Which colour is the square?",
            problem_type="multiple_choice",
            answer="B",
            options=["red", "green", "blue", "yellow"],
            videos=[VideoRef(str(root / "videos/r1.mp4"), 0.5, 3.0)],
            reasoning=["The square is green in every frame."],
            metadata={"task": "colour", "seed": 3},
        ),
        Sample(
            id="r2",
            question="When does it appear?",
            problem_type="temporal_grounding",
            videos=[VideoRef(str(root / "videos/r2.mp4"))],
            timestamps=[(1.0, 2.5)],
        ),
    ]
    out = root / "train.jsonl"
    assert write_samples_jsonl(samples, out, root=root) == 2
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first["videos"] == [{"path": "videos/r1.mp4", "start": 0.5, "end": 3.0}]  # relative to root
    loaded = load_samples(out).samples  # default root = the file's directory = root
    assert loaded == samples


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_duplicate_ids_are_an_error_naming_both_records(tmp_path: Path, on_error: str) -> None:
    from deepvideo_r1.data.loader import DuplicateSampleIdError

    f = jsonl(tmp_path, [line(**GOOD), line(**{**GOOD, "id": "other"}), line(**GOOD)])
    with pytest.raises(DuplicateSampleIdError, match=r"line 3: sample id 'ok' is also used by .*line 1"):
        load_samples(f, on_error=on_error)
    # a bad duplicate (no question) is not skipped quietly under on_error=skip either
    bad = {k: v for k, v in GOOD.items() if k != "question"}
    f = jsonl(tmp_path, [line(**GOOD), line(**bad)])
    with pytest.raises(DuplicateSampleIdError, match=r"line 2: sample id 'ok' is also used by .*line 1"):
        load_samples(f, on_error="skip")
