"""Resuming an evaluation: which records of a predictions file may be reused, and unique ids.

A record is reused only when it was made for the same sample (fingerprint of question, options,
answer, spans and video files), the same decoding, and the same `eval_key` (model weights,
max_new_tokens, video and pixel settings, and the sample's prompt tokens). The shared settings are
written beside the predictions file (`predictions.settings.json`) so a mismatch can name them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from deepvideo_r1.data.sample import Sample
from deepvideo_r1.evaluation.fingerprint import sample_fingerprint, settings_differences

logger = logging.getLogger(__name__)


class EvalResumeError(RuntimeError):
    """A predictions file holds a record that does not belong to the samples being evaluated."""


class DuplicateIdError(ValueError):
    """Two evaluated samples share an id (predictions are stored and resumed by id)."""


def check_unique_ids(samples: list[Sample], source: str = "the evaluated data") -> None:
    """Raise DuplicateIdError naming both records (1-based, in load order) of the first repeated id."""
    first: dict[str, int] = {}
    for number, sample in enumerate(samples, start=1):
        if sample.id in first:
            raise DuplicateIdError(
                f"{source}: records {first[sample.id]} and {number} (counted from 1 in load order) "
                f"share the id {sample.id!r}; give every sample its own id"
            )
        first[sample.id] = number


def _foreign_record(path: Path, lineno: int, what: str) -> EvalResumeError:
    return EvalResumeError(f"{path}:{lineno}: {what}; use another output directory or delete the file")


def _check_record(
    path: Path, lineno: int, rec: dict, by_id: dict[str, Sample], decoding: dict | None, keys: dict | None
) -> None:
    """Raise EvalResumeError unless `rec` was made for the same sample, decoding and settings."""
    sample = by_id.get(rec.get("id"))
    if sample is None:
        raise _foreign_record(
            path, lineno, f"prediction for {rec.get('id')!r}, which is not in the evaluated data"
        )
    if "sample_fingerprint" not in rec:
        raise _foreign_record(
            path, lineno, "record without a sample fingerprint (written by an older version)"
        )
    if rec["sample_fingerprint"] != sample_fingerprint(sample):
        changed = "a different sample (question, answer or video changed)"
        raise _foreign_record(path, lineno, f"prediction for {sample.id!r} was made for {changed}")
    if rec.get("decoding") != decoding:
        raise _foreign_record(
            path,
            lineno,
            f"decoded with {rec.get('decoding') or 'greedy only'}, not {decoding or 'greedy only'}",
        )
    if keys is not None and rec.get("eval_key") != keys[sample.id]:
        raise _foreign_record(
            path, lineno, f"prediction for {sample.id!r} was made with {_what_changed(path, keys)}"
        )


def _settings_path(path: Path) -> Path:
    return path.with_name(path.stem + ".settings.json")


def _what_changed(path: Path, keys: dict) -> str:
    """Which shared settings differ from those recorded beside `path` (or the prompt, if none)."""
    recorded = _settings_path(path)
    if not recorded.exists():
        return f"unknown settings (no {recorded.name})"
    differ = settings_differences(json.loads(recorded.read_text(encoding="utf-8")), keys["__settings__"])
    if differ:
        return "other " + ", ".join(differ)
    return "another prompt (prompt wording, chat template or tokenizer)"


def _read_done(
    path: Path, samples: list[Sample], decoding: dict | None = None, keys: dict | None = None
) -> dict[str, dict]:
    """Records already in `path`, checked against `samples` (same id must mean the same sample),
    `decoding` (the SampledDecoding as a dict; None = greedy only) and `keys` (sample id -> the
    `eval_key` its record must carry, plus "__settings__"; None = not checked).

    A last line cut short by a crash mid-write is dropped from the file (that sample is predicted
    again); any other unreadable or foreign record is an EvalResumeError naming file and line.
    """
    if not path.exists():
        return {}
    by_id = {s.id: s for s in samples}
    lines = path.read_text(encoding="utf-8").splitlines()
    done = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if lineno < len(lines):
                raise EvalResumeError(
                    f"{path}:{lineno}: not valid JSON; delete the file to start over"
                ) from None
            logger.warning(
                "%s:%d: incomplete last record (interrupted write); predicting it again", path, lineno
            )
            path.write_text("".join(x + "\n" for x in lines[:-1]), encoding="utf-8")
            break
        _check_record(path, lineno, rec, by_id, decoding, keys)
        done[rec["id"]] = rec
    return done


def resume_records(
    path: Path, samples: list[Sample], decoding: dict | None, keys: dict, restart: bool
) -> dict:
    """The reusable records of `path`; with `restart`, a file that does not match starts over."""
    try:
        done = _read_done(path, samples, decoding, keys)
    except EvalResumeError as e:
        if not restart:
            raise
        logger.warning("%s; evaluating again from scratch", e)
        path.unlink()
        done = {}
    settings = _settings_path(path)
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(keys["__settings__"], indent=1), encoding="utf-8")
    return done
