"""Each public format adapter: fixture records with the published field names → normalised samples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from deepvideo_r1.data import DataFormatError, load_samples
from deepvideo_r1.data.formats.seedbench_r1 import shuffled_options


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_json(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    return path


PROGRESS = [{"narration_text": "take cereal bag", "start_frame": 36, "stop_frame": 105}]


def seed_validation(sample_id, progress=PROGRESS, golden="A") -> dict:
    return {
        "sample_id": sample_id,
        "video_source": "EpicKitchens",
        "video_id": "P01_13",
        "task_goal": "store cereal",
        "question": "What action should I take next in order to store cereal?",
        "choice_a": "put cereal box into cupboard",
        "choice_b": "take cereal bag",
        "choice_c": "open cupboard",
        "choice_d": "put cereal bag into cereal box",
        "golden_choice_idx": golden,
        "answer": "put cereal box into cupboard",
        "video_basename": "P01_13_115.mp4",
        "current_observation_basename": "P01_13_115.png",
        "current_observation_frame": 760,
        "task_progress_metadata": progress,
    }


def seed_training(question: str, negatives: list[str]) -> dict:
    return {
        "video_source": "Ego4D",
        "video_basename": "abc_3.mp4",
        "current_observation_basename": "abc_3.png",
        "question": question,
        "answer": "open drawer",
        "negative_answers": negatives,
        "task_progress_metadata": PROGRESS,
    }


def test_seedbench_validation_l1(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "validation_L1.jsonl", [seed_validation(115), seed_validation(116, [], "c")])
    result = load_samples(f, format="seedbench_r1", root="/data/seed")
    first, second = result.samples
    assert first.id == "115" and first.problem_type == "multiple_choice"
    assert first.options == [
        "put cereal box into cupboard",
        "take cereal bag",
        "open cupboard",
        "put cereal bag into cereal box",
    ]
    assert first.answer == "A"
    assert [v.path for v in first.videos] == ["/data/seed/videos/EpicKitchens/P01_13_115.mp4"]
    assert first.images == ["/data/seed/images/EpicKitchens/P01_13_115.png"]
    assert first.metadata["level"] == "L1" and first.metadata["split"] == "validation"
    assert first.metadata["task_goal"] == "store cereal"
    # Empty progress list: no video, the current-observation image only; lower-case letter accepted.
    assert second.videos == [] and len(second.images) == 1 and second.answer == "C"


def test_seedbench_validation_l3_string_ids(tmp_path: Path) -> None:
    f = write_jsonl(tmp_path / "validation_L3.jsonl", [seed_validation("ca6e9ec9-46ac_2")])
    (sample,) = load_samples(f).samples  # auto-detected
    assert sample.id == "ca6e9ec9-46ac_2" and sample.metadata["level"] == "L3"


def test_seedbench_training_shuffle_is_deterministic_and_keyed_by_content(tmp_path: Path) -> None:
    negatives = ["close drawer", "take knife", "wash hands", "open fridge", "cut bread"]
    records = [seed_training(f"Next step {i}?", negatives) for i in range(12)]
    f1 = write_jsonl(tmp_path / "training_6k.jsonl", records)
    f2 = write_jsonl(tmp_path / "reversed.jsonl", records[::-1])
    a = load_samples(f1, format="seedbench_r1").samples
    b = load_samples(f1, format="seedbench_r1").samples
    c = {s.question: s for s in load_samples(f2, format="seedbench_r1").samples}
    assert [s.options for s in a] == [s.options for s in b]
    for s in a:
        assert len(s.options) == 4 and len(set(s.options)) == 4
        assert s.options["ABCD".index(s.answer)] == "open drawer"  # the letter points at the answer
        assert set(s.options) - {"open drawer"} <= set(negatives)
        assert c[s.question].options == s.options  # independent of the record's position
        assert "level" not in s.metadata and s.metadata["split"] == "training"
    # 12 distinct questions: the answer is not always in the same slot (P(all same) = 4 * 4^-12).
    assert len({s.answer for s in a}) > 1


def test_seedbench_shuffled_options_matches_loader() -> None:
    rec = seed_training("Q?", ["x", "y", "z"])
    options, letter = shuffled_options(rec, "open drawer", ["x", "y", "z"])
    assert (
        sorted(options) == ["open drawer", "x", "y", "z"] and options["ABCD".index(letter)] == "open drawer"
    )
    assert shuffled_options(rec, "open drawer", ["x", "y", "z"]) == (options, letter)


def lvb_record(**overrides) -> dict:
    record = {
        "video_id": "86CxyhFV9MI",
        "question": "In the video, which subtitles appear at the same time as the man with a beard?",
        "question_wo_referring_query": "Which subtitles appear?",
        "candidates": ["opening", "closing", "middle", "none", "all"],
        "correct_choice": 2,
        "position": [57],
        "topic_category": "NP-News-Programs",
        "question_category": "TOS",
        "level": "L2-Relation",
        "id": "86CxyhFV9MI_0",
        "video_path": "86CxyhFV9MI.mp4",
        "subtitle_path": "86CxyhFV9MI_en.json",
        "duration_group": 600,
        "starting_timestamp_for_subtitles": 0,
        "duration": 412.5,
        "view_count": 1000,
    }
    record.update(overrides)
    return record


def test_longvideobench_labeled_and_test_split(tmp_path: Path) -> None:
    test_record = lvb_record(id="t1", candidates=["a", "b", "c", "d"])
    del test_record["correct_choice"]
    f = write_json(tmp_path / "lvb_val.json", [lvb_record(), test_record])
    labeled, unlabeled = load_samples(f, root=tmp_path).samples
    assert labeled.id == "86CxyhFV9MI_0" and labeled.answer == "C"  # correct_choice 2 → C
    assert labeled.options == ["opening", "closing", "middle", "none", "all"]
    assert labeled.videos[0].path == os.path.join(str(tmp_path), "videos", "86CxyhFV9MI.mp4")
    assert labeled.metadata["duration_group"] == 600 and labeled.metadata["labeled"] is True
    assert labeled.metadata["duration"] == 412.5
    assert unlabeled.answer == "" and unlabeled.metadata["labeled"] is False
    assert len(unlabeled.options) == 4


def test_nextgqa_grounded_qa(tmp_path: Path) -> None:
    record = {
        "id": "4882821564_q3",
        "video": "nextgqa/4882821564.mp4",
        "question": "why did the boy pick up one present from the group?",
        "options": ["(A) to put it down", "(B) to open it", "(C) give to the girl", "(D) play", "(E) eat"],
        "answer": "(C)",
        "duration": 30.2,
        "glue": [[9.1, 14.0], [20.5, 22.0]],
        "type": "CW",
    }
    f = write_json(tmp_path / "nextgqa_val.json", [record])
    (s,) = load_samples(f, root=tmp_path).samples
    assert s.problem_type == "grounded_qa" and s.answer == "C"
    assert s.options == ["to put it down", "to open it", "give to the girl", "play", "eat"]
    assert s.timestamps == [(9.1, 14.0), (20.5, 22.0)]
    assert s.videos[0].path == str(tmp_path / "nextgqa" / "4882821564.mp4")
    assert s.metadata["duration"] == 30.2 and s.metadata["type"] == "CW"


def videor1_records() -> list[dict]:
    base = {"data_source": "LLaVA-Video-178K", "options": []}
    return [
        {
            **base,
            "problem_id": 7,
            "problem": "What is the man holding?",
            "data_type": "video",
            "problem_type": "multiple choice",
            "options": ["A. a cup", "B. a phone", "C. a book", "D. a pen"],
            "process": "<think>The man lifts something.\nIt is rectangular and lights up.</think>",
            "solution": "<answer>B</answer>",
            "path": "./LLaVA-Video-178K/liwei_youtube_videos/a.mp4",
        },
        {**base, "problem_id": 8, "problem": "How many cars?", "data_type": "video",
         "problem_type": "numerical", "solution": "<answer>3</answer>", "path": "./v/b.mp4"},
        {**base, "problem_id": 9, "problem": "Read the sign.", "data_type": "image",
         "problem_type": "OCR", "solution": "<answer>STOP HERE</answer>", "path": "./img/c.jpg"},
        {**base, "problem_id": 10, "problem": "Describe it.", "data_type": "video",
         "problem_type": "free-form", "solution": "<answer>A dog runs.</answer>", "path": "./v/d.mp4",
         "process": "<think>First a dog appears. Then it runs away.</think>"},
        {**base, "problem_id": 11, "problem": "Distance in metres?", "data_type": "video",
         "problem_type": "regression", "solution": "<answer>2.5</answer>", "path": "./v/e.mp4"},
    ]  # fmt: skip


def test_videor1_types_options_paths_and_reasoning(tmp_path: Path) -> None:
    f = write_json(tmp_path / "Video-R1-COT-165k.json", videor1_records())
    result = load_samples(f, root=tmp_path / "data")
    mc, num, ocr, free, reg = result.samples
    assert [s.problem_type for s in result.samples] == [
        "multiple_choice",
        "numerical",
        "ocr",
        "free_form",
        "regression",
    ]
    assert mc.id == "7" and mc.answer == "B" and mc.options == ["a cup", "a phone", "a book", "a pen"]
    assert mc.reasoning == ["The man lifts something.", "It is rectangular and lights up."]
    assert mc.videos[0].path == str(tmp_path / "data/LLaVA-Video-178K/liwei_youtube_videos/a.mp4")
    assert num.answer == "3" and num.options == [] and num.reasoning is None
    assert ocr.answer == "STOP HERE" and ocr.videos == [] and ocr.images == [str(tmp_path / "data/img/c.jpg")]
    assert free.reasoning == ["First a dog appears.", "Then it runs away."]  # one line → sentences
    assert reg.answer == "2.5"
    assert result.counts == {"multiple_choice": 1, "numerical": 1, "ocr": 1, "free_form": 1, "regression": 1}


def test_project_jsonl_relative_absolute_and_video_objects(tmp_path: Path) -> None:
    record = {
        "id": "s1",
        "problem_type": "temporal_grounding",
        "question": "When does the red square appear?",
        "videos": [{"path": "clips/a.mp4", "start": 1.0, "end": 5.0}, "/abs/b.mp4"],
        "images": ["frames/x.png"],
        "timestamps": [[2.0, 3.5]],
        "reasoning": ["The square enters at 2 s.", "It leaves at 3.5 s."],
        "metadata": {"task": "when"},
    }
    f = write_jsonl(tmp_path / "train.jsonl", [record])
    (s,) = load_samples(f).samples  # root defaults to the file's directory
    assert s.videos[0].path == str(tmp_path / "clips/a.mp4") and (s.videos[0].start, s.videos[0].end) == (
        1,
        5,
    )
    assert s.videos[1].path == "/abs/b.mp4" and s.videos[1].start is None
    assert s.images == [str(tmp_path / "frames/x.png")]
    assert s.timestamps == [(2.0, 3.5)] and s.answer == "" and s.options == []
    assert s.metadata == {"task": "when"} and len(s.reasoning) == 2


@pytest.mark.parametrize(
    ("name", "records", "expected"),
    [
        ("validation_L2.jsonl", [seed_validation(1)], "seedbench_r1"),
        ("lvb.json", [lvb_record()], "longvideobench"),
        ("videor1.json", videor1_records()[:1], "videor1"),
        (
            "gqa.json",
            [
                {
                    "id": 1,
                    "video": "v.mp4",
                    "question": "?",
                    "options": ["(A) x", "(B) y"],
                    "answer": "(B)",
                    "glue": [[1, 2]],
                    "duration": 9,
                    "type": "TN",
                }
            ],
            "nextgqa",
        ),
        ("own.jsonl", [{"id": "1", "problem_type": "numerical", "question": "?", "answer": "3"}], "jsonl"),
    ],
)
def test_auto_detection(tmp_path: Path, name: str, records: list[dict], expected: str) -> None:
    path = tmp_path / name
    if name.endswith(".jsonl"):
        write_jsonl(path, records)
    else:
        write_json(path, records)
    assert load_samples(path).format == expected


def _gqa() -> dict:
    return {
        "id": 1,
        "video": "v.mp4",
        "question": "?",
        "options": ["(A) x", "(B) y"],
        "answer": "(B)",
        "glue": [[1, 2]],
    }


@pytest.mark.parametrize(
    ("name", "record", "where", "field", "text"),
    [
        ("validation_L1.jsonl", seed_validation(1, golden="E"), "line 1", "golden_choice_idx", "A–D"),
        ("validation_L1.jsonl", {**seed_validation(1), "choice_c": None}, "line 1", "choice_c", "missing"),
        (
            "training_6k.jsonl",
            seed_training("Q?", ["x", "open drawer", "y"]),
            "line 1",
            "negative_answers",
            "3",
        ),
        ("lvb.json", lvb_record(correct_choice=5), "index 0", "correct_choice", "outside 0..4"),
        ("lvb.json", lvb_record(candidates=["a", 3]), "index 0", "candidates[1]", "must be a string"),
        ("gqa.json", {**_gqa(), "glue": [[3, 1]]}, "index 0", "glue", "0 <= start <= end"),
        ("gqa.json", {**_gqa(), "glue": "1-2"}, "index 0", "glue", "must be a list"),
        (
            "vr1.json",
            {**videor1_records()[1], "problem_type": "counting"},
            "index 0",
            "problem_type",
            "known",
        ),
        ("vr1.json", {**videor1_records()[1], "data_type": "audio"}, "index 0", "data_type", "'video' or"),
        (
            "vr1.json",
            {**videor1_records()[0], "solution": "<answer>F</answer>"},
            "index 0",
            "solution",
            "A–D",
        ),
    ],
)
def test_public_format_errors_name_file_record_and_field(
    tmp_path: Path, name: str, record: dict, where: str, field: str, text: str
) -> None:
    path = tmp_path / name
    write_jsonl(path, [record]) if name.endswith(".jsonl") else write_json(path, [record])
    with pytest.raises(DataFormatError) as info:
        load_samples(path)
    assert info.value.field == field and text in str(info.value)
    assert str(info.value).startswith(f"{path}, {where}: ")
