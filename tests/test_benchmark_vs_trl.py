"""benchmarks/vs_trl.py: its summary arithmetic, and (with TRL installed) that TRL's processor
feeds the model the same prompt tokens and pixels as this library, and a 2-step smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import vs_trl  # noqa: E402
import vs_trl_sides  # noqa: E402


def _step(step_s: float, generate_s: float, calls: int = 2, images: int = 4) -> dict:
    return {
        "step_s": step_s,
        "generate_s": generate_s,
        "update_s": step_s - generate_s,
        "vision_calls": calls,
        "vision_images": images,
        "completion_tokens": 512.0,
    }


def test_side_summary_pools_steps_of_all_runs():
    runs = [
        {"steps": [_step(1.0, 0.4), _step(3.0, 1.0)], "peak_rss_gib": 1.5},
        {"steps": [_step(2.0, 0.5)], "peak_rss_gib": 1.25},
    ]
    s = vs_trl.side_summary(runs)
    assert s["runs"] == 2 and s["measured_steps"] == 3
    assert s["step_s"] == {"median": 2.0, "min": 1.0, "max": 3.0}  # sorted 1, 2, 3
    assert s["generate_s"] == {"median": 0.5, "min": 0.4, "max": 1.0}  # sorted 0.4, 0.5, 1.0
    # update = step - generate: 0.6, 2.0, 1.5 -> median 1.5
    assert s["update_s"]["median"] == pytest.approx(1.5)
    assert s["run_median_step_s"] == [2.0, 2.0]  # run 1: median of (1, 3) = 2; run 2: 2
    assert s["vision_calls_per_step"] == 2 and s["vision_images_per_step"] == 4
    assert s["peak_rss_gib"] == 1.5  # the largest child's


def test_side_summary_without_measured_steps_raises():
    with pytest.raises(ValueError, match="at least 2 steps"):
        vs_trl.side_summary([{"steps": [], "peak_rss_gib": 1.0}])


def test_speedup_is_trl_median_over_ours_and_table_lists_both():
    ours = vs_trl.side_summary([{"steps": [_step(2.0, 1.0), _step(4.0, 2.0)], "peak_rss_gib": 1.0}])
    trl = vs_trl.side_summary([{"steps": [_step(9.0, 3.0, 2, 32)], "peak_rss_gib": 2.0}])
    summary = {"ours": ours, "trl": trl}
    assert vs_trl.speedup(summary) == pytest.approx(3.0)  # 9 / median(2, 4) = 9 / 3
    text = vs_trl.table(summary)
    assert "| ours | 3.000 (2.000–4.000) | 1.500 | 1.500 | 2 / 4 | 1.00 |" in text
    assert "| trl | 9.000 (9.000–9.000) | 3.000 | 6.000 | 2 / 32 | 2.00 |" in text


def test_task_file_holds_one_image_question_per_image(tmp_path):
    data = vs_trl_sides.make_task(tmp_path, n=4)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert [r["answer"] for r in rows] == ["A", "B", "C", "D"]  # colour i % 4, letter of its option
    assert all(Path(r["images"][0]).is_file() for r in rows)


def test_trl_processor_gives_our_prompt_tokens_and_pixels(tmp_path):
    pytest.importorskip("trl")
    from PIL import Image
    from transformers import AutoTokenizer
    from trl.data_utils import prepare_multimodal_messages

    from deepvideo_r1.data import load_samples
    from deepvideo_r1.data.prompts import build_question_text
    from deepvideo_r1.models.adapter import ModelAdapter, PixelBudget
    from deepvideo_r1.models.families import get_family
    from deepvideo_r1.models.media import SampleMedia, encode_sample
    from deepvideo_r1.models.tiny import make_tiny_model
    from deepvideo_r1.video import load_image
    from helpers import TEST_SIZES

    model_dir = make_tiny_model(tmp_path / "model", **TEST_SIZES)
    sample = load_samples(vs_trl_sides.make_task(tmp_path, n=1), format="jsonl").samples[0]
    pixels = vs_trl_sides.IMAGE_SIDE**2
    processor = vs_trl_sides.trl_processor(model_dir, pixels)
    image = Image.open(sample.images[0]).convert("RGB")
    messages = prepare_multimodal_messages(
        [{"role": "user", "content": build_question_text(sample)}], images=[image]
    )
    theirs = processor.apply_chat_template(
        conversation=[messages],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    budget = PixelBudget(pixels, pixels, None, pixels, pixels)
    adapter = ModelAdapter(get_family("qwen2.5-vl"), AutoTokenizer.from_pretrained(model_dir), budget)
    ours = encode_sample(adapter, sample, SampleMedia(None, None, None, load_image(sample.images[0])))
    assert torch.equal(theirs["input_ids"][0], ours.input_ids.flatten())
    assert theirs["image_grid_thw"].tolist() == [[1, 18, 18]]  # 252 / 14 = 18 patches a side
    assert torch.equal(theirs["image_grid_thw"], ours.image.image_grid_thw)
    assert torch.equal(theirs["pixel_values"], ours.image.pixel_values)


@pytest.mark.slow
def test_smoke_run_writes_both_sides(tmp_path):
    pytest.importorskip("trl")
    out = tmp_path / "vs_trl.json"
    subprocess.run([sys.executable, str(BENCH / "vs_trl.py"), "--smoke", "--json", str(out)], check=True)
    result = json.loads(out.read_text())
    summary = result["summary"]
    assert result["speedup_vs_trl"] > 0
    for side in ("ours", "trl"):
        assert summary[side]["measured_steps"] == 1  # 2 steps, the first a warm-up
    # ours encodes each prompt's image once per pass; TRL once per completion (2 prompts x G = 8)
    assert summary["ours"]["vision_images_per_step"] == 4
    assert summary["trl"]["vision_images_per_step"] == 32
