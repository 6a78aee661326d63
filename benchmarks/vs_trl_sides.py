"""The two sides of benchmarks/vs_trl.py, each run in its own subprocess: the task files, a
vision-tower call counter, this library's rl_step loop and TRL's GRPOTrainer, configured alike."""

from __future__ import annotations

import json
import time
from pathlib import Path

PROMPTS, GROUP, NEW_TOKENS, LR, IMAGE_SIDE, SEED = 2, 8, 32, 1e-6, 252, 0
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 60, 220), "yellow": (230, 210, 20)}


def make_task(root: Path, n: int = 16) -> Path:
    """n images (a coloured square on grey) and a jsonl of "which colour is the square?" questions."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(SEED)
    names = list(COLOURS)
    rows = []
    for i in range(n):
        img = np.full((IMAGE_SIDE, IMAGE_SIDE, 3), 128, np.uint8)
        colour = names[i % len(names)]
        x, y = rng.integers(0, IMAGE_SIDE - 80, size=2)
        img[y : y + 80, x : x + 80] = COLOURS[colour]
        path = root / f"image_{i}.png"
        Image.fromarray(img).save(path)
        rows.append(
            {
                "id": f"q{i}",
                "problem_type": "multiple_choice",
                "question": "Which colour is the square?",
                "options": names,
                "answer": "ABCD"[i % len(names)],
                "images": [str(path)],
            }
        )
    data = root / "task.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


class VisionCounter:
    """Forward hook on a vision tower: calls and images (grid_thw rows) since the last `take()`."""

    def __init__(self, tower) -> None:
        self.calls = self.images = 0
        tower.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs, output) -> None:
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        self.calls += 1
        self.images += int(grid.shape[0]) if grid is not None else 0

    def take(self) -> tuple[int, int]:
        out, self.calls, self.images = (self.calls, self.images), 0, 0
        return out


def run_ours(model_dir: Path, data: Path, steps: int, work: Path) -> list[dict]:
    """This library's rl_step, `steps` times; per-step records (the first one is the warm-up)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from deepvideo_r1.config import load_config
    from deepvideo_r1.data import load_samples
    from deepvideo_r1.models.vision import vision_tower
    from deepvideo_r1.pipeline import load_model, media_loader
    from deepvideo_r1.training.context import build_context
    from deepvideo_r1.training.step import rl_step

    pixels = IMAGE_SIDE * IMAGE_SIDE
    cfg = load_config(
        overrides=[
            f"model.path={model_dir}",
            "model.dtype=float32",
            f"video.min_pixels={pixels}",
            f"video.max_pixels={pixels}",
            f"rollout.prompts_per_step={PROMPTS}",
            f"rollout.group_size={GROUP}",
            f"rollout.max_new_tokens={NEW_TOKENS}",
            "algo.loss=dapo",
            "algo.beta=0",
            "algo.num_iterations=1",
            "difficulty.enabled=false",
            f"train.micro_batch_size={PROMPTS * GROUP}",
            f"train.lr={LR}",
            f"train.max_steps={steps}",
            f"train.seed={SEED}",
            f"train.output_dir={work}",
        ]
    )
    accelerator = Accelerator(cpu=True)
    set_seed(SEED)
    model, adapter = load_model(cfg, model_dir, accelerator)
    samples = load_samples(data, format="jsonl").samples
    ctx = build_context(cfg, accelerator, model, adapter, samples, media_loader(cfg, adapter))
    counter = VisionCounter(vision_tower(ctx.model))
    records = []
    for step in range(steps):
        start = time.perf_counter()
        m = rl_step(ctx, step).metrics
        total = time.perf_counter() - start
        calls, images = counter.take()
        records.append(
            {
                "step_s": total,
                "generate_s": m["perf/collect_s"],
                "update_s": total - m["perf/collect_s"],
                "vision_calls": calls,
                "vision_images": images,
                "completion_tokens": m["perf/completion_len"] * PROMPTS * GROUP,
            }
        )
    return records


def trl_processor(model_dir: Path, pixels: int):
    """Qwen2.5-VL processor over the tiny tokenizer, with transformers' PIL image processor (no
    torchvision needed) at a fixed pixel count and no video processor (its class needs torchvision).
    Passed explicitly: AutoProcessor on the tiny directory returns the bare tokenizer."""
    from transformers import AutoTokenizer, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    class ImageOnlyProcessor(Qwen2_5_VLProcessor):
        def check_argument_for_proper_class(self, argument_name, argument):
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    images = Qwen2VLImageProcessorPil(min_pixels=pixels, max_pixels=pixels)
    template = tokenizer.chat_template
    return ImageOnlyProcessor(image_processor=images, tokenizer=tokenizer, chat_template=template)


def trl_reward(samples: dict):
    """format + accuracy (weights 1, 1), scored by this library's reward functions like our side."""
    from deepvideo_r1.rewards.registry import compute_rewards

    def reward(prompts, completions, sample_id, **_) -> list[float]:
        texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
        return compute_rewards(texts, [samples[i] for i in sample_id]).total.tolist()

    return reward


def run_trl(model_dir: Path, data: Path, steps: int, work: Path) -> list[dict]:
    """TRL's GRPOTrainer.train() for `steps` optimizer steps; per-step records (first = warm-up)."""
    from datasets import Dataset
    from PIL import Image
    from transformers import Qwen2_5_VLForConditionalGeneration, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from deepvideo_r1.data import load_samples
    from deepvideo_r1.data.prompts import build_question_text
    from deepvideo_r1.models.vision import vision_tower

    samples = {s.id: s for s in load_samples(data, format="jsonl").samples}
    rows = [
        {
            "prompt": [{"role": "user", "content": build_question_text(s)}],
            "image": Image.open(s.images[0]).convert("RGB"),
            "sample_id": s.id,
        }
        for s in samples.values()
    ]
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        model_dir, dtype="float32", attn_implementation="sdpa"
    )
    vision_tower(model).requires_grad_(False)
    counter = VisionCounter(vision_tower(model))
    args = GRPOConfig(
        output_dir=str(work),
        num_generations=GROUP,
        per_device_train_batch_size=PROMPTS * GROUP,  # one optimizer step = 2 prompts × G completions
        gradient_accumulation_steps=1,
        max_completion_length=NEW_TOKENS,
        temperature=1.0,
        beta=0.0,
        num_iterations=1,
        loss_type="dapo",
        epsilon_high=0.28,  # dapo's clip-higher, as our dapo default
        scale_rewards="group",
        learning_rate=LR,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim="adamw_torch",
        gradient_checkpointing=True,
        use_vllm=False,
        use_cpu=True,
        bf16=False,
        max_steps=steps,
        seed=SEED,
        logging_steps=10_000,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=trl_reward(samples),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=trl_processor(model_dir, IMAGE_SIDE * IMAGE_SIDE),
    )
    clock = _StepClock(counter)
    generate = trainer._generate_and_score_completions

    def timed_generate(inputs):
        start = time.perf_counter()
        out = generate(inputs)
        clock.generate_s += time.perf_counter() - start
        clock.completion_tokens += float(out["completion_mask"].sum())
        return out

    trainer._generate_and_score_completions = timed_generate
    hooks = {"on_step_begin": clock.begin, "on_step_end": clock.end}
    trainer.add_callback(type("Clock", (TrainerCallback,), hooks)())
    trainer.train()
    return clock.records


class _StepClock:
    """Per optimizer step: wall seconds from the previous step's end (the first: its begin callback)
    to this step's end, so the data loader and callbacks are counted as for our loop."""

    def __init__(self, counter: VisionCounter) -> None:
        self.counter, self.records = counter, []
        self.start = self.generate_s = self.completion_tokens = 0.0

    def begin(self, *args, **kwargs) -> None:
        if not self.records:
            self.counter.take()
            self.start, self.generate_s, self.completion_tokens = time.perf_counter(), 0.0, 0.0

    def end(self, *args, **kwargs) -> None:
        now = time.perf_counter()
        calls, images = self.counter.take()
        self.records.append(
            {
                "step_s": now - self.start,
                "generate_s": self.generate_s,
                "update_s": now - self.start - self.generate_s,
                "vision_calls": calls,
                "vision_images": images,
                "completion_tokens": self.completion_tokens,
            }
        )
        self.start, self.generate_s, self.completion_tokens = now, 0.0, 0.0


WORKERS = {"ours": run_ours, "trl": run_trl}
