"""`deepvideo-r1 inspect-data` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from deepvideo_r1.cli import app

KEYS = ["id", "problem_type", "question", "options", "answer", "videos", "images", "timestamps"]


def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # older click: keep stderr apart
    except TypeError:
        return CliRunner()  # click >= 8.2 always separates stdout and stderr


def nextgqa_file(tmp_path: Path) -> Path:
    record = {
        "id": "q1",
        "video": "vids/1.mp4",
        "question": "why did the boy pick up the present?",
        "options": ["(A) to put it down", "(B) to open it", "(C) give to the girl"],
        "answer": "(C)",
        "duration": 30.0,
        "glue": [[9.0, 14.5]],
        "type": "CW",
    }
    path = tmp_path / "gqa.json"
    path.write_text(json.dumps([record, {**record, "id": "q2", "answer": "(A)"}]), encoding="utf-8")
    return path


def test_json_lines_have_exact_keys_and_resolved_paths(tmp_path: Path) -> None:
    f = nextgqa_file(tmp_path)
    result = runner().invoke(
        app, ["inspect-data", str(f), "--format", "nextgqa", "--root", "/media", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2 and all(list(r) == KEYS for r in rows)
    assert rows[0] == {
        "id": "q1",
        "problem_type": "grounded_qa",
        "question": "why did the boy pick up the present?",
        "options": ["to put it down", "to open it", "give to the girl"],
        "answer": "C",
        "videos": ["/media/vids/1.mp4"],
        "images": [],
        "timestamps": [[9.0, 14.5]],
    }
    assert "samples: 2" in result.stderr and "grounded_qa: 2" in result.stderr


def test_limit_and_table(tmp_path: Path) -> None:
    f = nextgqa_file(tmp_path)
    limited = runner().invoke(app, ["inspect-data", str(f), "--json", "--limit", "1"])
    assert limited.exit_code == 0 and len(limited.stdout.splitlines()) == 1
    table = runner().invoke(app, ["inspect-data", str(f)])
    assert table.exit_code == 0
    assert "q1" in table.stdout and "q2" in table.stdout and "1.mp4" in table.stdout
    assert "format: nextgqa" in table.stdout and "skipped: 0" in table.stdout


def test_user_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "problem_type": "numerical", "question": "?", "anwser": "3"}\n', encoding="utf-8"
    )
    result = runner().invoke(app, ["inspect-data", str(bad)])
    assert result.exit_code == 2
    assert "line 1: unknown key 'anwser'" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
    missing = runner().invoke(app, ["inspect-data", str(tmp_path / "gqa.json"), "--check-media"])
    assert missing.exit_code == 2 and "cannot read file" in missing.stderr
    f = nextgqa_file(tmp_path)
    media = runner().invoke(app, ["inspect-data", str(f), "--check-media"])
    assert media.exit_code == 2 and "media file not found" in media.stderr
    fmt = runner().invoke(app, ["inspect-data", str(f), "--format", "csv"])
    assert fmt.exit_code == 2 and "unknown data format 'csv'" in fmt.stderr


def test_skip_reports_skipped_records(tmp_path: Path) -> None:
    f = nextgqa_file(tmp_path)
    result = runner().invoke(app, ["inspect-data", str(f), "--check-media", "--on-error", "skip", "--json"])
    assert result.exit_code == 0 and result.stdout == ""  # both videos missing → both skipped
    assert "skipped: 2" in result.stderr and "samples: 0" in result.stderr
