"""Typed run configuration: defaults -> YAML -> dotted CLI overrides -> validation.

The Python defaults are the paper's real-run values (Qwen2.5-VL, G = 8, W = 100, beta = 0.1,
16 frames at 252x252). The tiny CPU run lives in `presets/tiny_cpu.yaml`. Every section forbids
unknown keys; `load_config` turns mistakes into a `ConfigError` that names the dotted path and the
closest valid names. Math functions never take this object: callers pass the few values they need.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from deepvideo_r1.algos import POLICY_LOSSES, loss_option_names
from deepvideo_r1.algos.advantages import AdvantageScale
from deepvideo_r1.algos.reg_grpo import RatioNormalization
from deepvideo_r1.data.synth.options import SynthOptions
from deepvideo_r1.difficulty.options import DifficultyConfig
from deepvideo_r1.models.options import LoraConfig, TrainVision
from deepvideo_r1.options import Section
from deepvideo_r1.rewards.registry import DEFAULT_WEIGHTS, reward_name_problem
from deepvideo_r1.video.options import VideoConfig


class ConfigError(ValueError):
    """A user mistake in a config file or override: says what is wrong and how to fix it."""


_Section = Section


class ModelConfig(_Section):
    """Which policy to load and what of it trains."""

    path: str | None = Field(
        None, description="Local model directory (from_pretrained). None builds the tiny random-init preset."
    )
    family: Literal["qwen2.5-vl", "qwen2-vl", "qwen3-vl"] = Field(
        "qwen2.5-vl", description="Model family; picks the prompt/vision code path. Paper: Qwen2.5-VL."
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Weights dtype. auto = bfloat16 on GPU, float32 on CPU."
    )
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto",
        description="Attention kernel. auto = sdpa under shared_prefix; else flash_attention_2 if "
        "installed on GPU, else sdpa.",
    )
    train_vision: TrainVision = Field(
        "none", description="Trainable part of the vision tower. Paper: frozen (none)."
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA settings.")
    tiny_sizes: dict[str, int] = Field(
        default_factory=dict,
        description="Tiny preset widths (models.tiny.TinySizes keys); {} = its defaults.",
    )
    gradient_checkpointing: bool = Field(
        True, description="Recompute activations in backward to save memory."
    )
    shared_prefix: bool = Field(
        True,
        description="Run each group's prompt through the decoder once (rollout prefill, log-probs, update) "
        "and let its G completions attend to its keys/values; same numbers as repeating it. Needs sdpa or "
        "eager attention; false repeats the prompt per completion.",
    )


class DataConfig(_Section):
    """Training and evaluation data."""

    train_file: str | None = Field(None, description="Training file. None = the synthetic dataset.")
    eval_file: str | None = Field(None, description="Held-out file for eval. None = no eval on own data.")
    format: Literal["auto", "seedbench_r1", "longvideobench", "nextgqa", "videor1", "jsonl"] = Field(
        "auto", description="Adapter name; auto detects it from the file's keys."
    )
    root: str | None = Field(None, description="Media root that relative video paths resolve against.")
    on_error: Literal["raise", "skip"] = Field(
        "raise", description="On a bad record or unreadable video: stop, or skip it (skips are counted)."
    )
    max_eval_samples: int | None = Field(None, ge=1, description="Evaluate on the first N samples only.")
    max_prompt_tokens: int = Field(
        8192,
        ge=1,
        description="Longest question text (question, options, instruction) in tokens; a longer sample "
        "is an error naming it when the model's tokenizer is loaded, before SFT, evaluation or RL.",
    )
    synth: SynthOptions = Field(default_factory=SynthOptions, description="Synthetic dataset settings.")


class RolloutConfig(_Section):
    """Sampling of G completions per prompt."""

    group_size: int = Field(8, description="G, completions per prompt. Paper: 8.")
    prompts_per_step: int = Field(8, ge=1, description="N, prompts rolled out per step on each process.")
    max_new_tokens: int = Field(512, ge=1, description="Completion length cap (also dr_grpo's normaliser).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1.0, description="Nucleus sampling mass.")
    top_k: int | None = Field(None, ge=1, description="Top-k sampling; None = off.")
    compile: bool | None = Field(
        None,
        description="Decode into a static KV cache of bucketed size (cache length to a multiple of 256, rows "
        "to a power of two) that transformers compiles with torch.compile; null = on with CUDA, off on CPU.",
    )
    engine: Literal["hf", "vllm"] = Field(
        "hf",
        description="Who generates rollouts, self-traces and evaluations: hf (transformers generate) or "
        "vllm (a colocated vLLM engine per process, weights synced after every optimizer step; needs "
        "`vllm` installed, see docs/models.md#vllm-rollout-engine-rolloutengine-vllm).",
    )
    gpu_memory_utilization: float = Field(
        0.3,
        gt=0,
        le=1.0,
        description="vllm: share of GPU memory vLLM may take (weights + KV cache), next to the trainer's.",
    )
    max_model_len: int | None = Field(
        None,
        ge=16,
        description="vllm: longest prompt + completion in tokens; None = the model's max_position_embeddings "
        "(vLLM's default).",
    )
    max_num_seqs: int | None = Field(
        None, ge=1, description="vllm: sequences decoded at once; None = prompts_per_step · group_size."
    )
    enable_prefix_caching: bool = Field(
        True, description="vllm: reuse the KV cache of shared prompt prefixes (reset after each weight sync)."
    )
    kv_cache_gib: float = Field(
        1.0, gt=0, description="vllm on CPU: KV-cache size in GiB (VLLM_CPU_KVCACHE_SPACE)."
    )
    importance_sampling_cap: float | None = Field(
        None,
        gt=0,
        description="vllm: truncated importance sampling — each completion token's loss is weighted by "
        "min(p_trainer / p_vllm, cap) of the sampled token; None = off.",
    )


class AlgoConfig(_Section):
    """Policy loss and advantages."""

    loss: str = Field(
        "reg_grpo",
        description=f"Registered policy loss: {', '.join(sorted(POLICY_LOSSES))}. "
        "reg_grpo = the paper's Reg-GRPO (docs/method.md).",
    )
    epsilon: float = Field(1.0, gt=0, description="Reg-GRPO: target is A - epsilon * z. Paper: 1.0.")
    std_eps: float = Field(1e-4, gt=0, description="Reg-GRPO: added to the group std of rho.")
    ratio_normalization: RatioNormalization = Field(
        "std", description="Reg-GRPO: z = (rho - mean) / (std + std_eps), or none: z = rho - mean."
    )
    length_normalize: bool = Field(False, description="Reg-GRPO: rho is a mean over tokens, not a sum.")
    beta: float = Field(0.1, ge=0, description="KL weight (k3 estimator); 0 loads no reference. Paper: 0.1.")
    clip_low: float | None = Field(None, gt=0, lt=1, description="Clip 1 - clip_low; None = loss default.")
    clip_high: float | None = Field(None, gt=0, description="Clip 1 + clip_high; None = the loss's default.")
    eta: float | None = Field(
        None, gt=0, description="rebel, reward_regression: target rho / eta; None = the loss's default."
    )
    dpo_beta: float | None = Field(
        None, gt=0, description="online_dpo: -log sigmoid(dpo_beta · margin); None = the loss's default."
    )
    gvpo_beta: float | None = Field(
        None, gt=0, description="gvpo: weight of the centred log-ratio; None = the loss's default."
    )
    advantage_scale: AdvantageScale | None = Field(
        None,
        description="Advantage divisor (raw = the reward itself); None = the loss's registered default.",
    )
    adv_eps: float = Field(1e-4, gt=0, description="eps in A = (R - mean) / (std + eps).")
    num_iterations: int = Field(1, description="Updates per rollout batch (old log-probs kept).")
    reward_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS),
        description="Reward name (registered, or path/to/file.py:function) -> weight; total = weighted "
        "sum. Paper: format + accuracy (max 2).",
    )

    @field_validator("reward_weights")
    @classmethod
    def _known_rewards(cls, weights: dict[str, float]) -> dict[str, float]:
        problems = [p for p in map(reward_name_problem, weights) if p]
        if problems:
            raise ValueError("; ".join(problems))
        return weights

    @field_validator("loss")
    @classmethod
    def _registered_loss(cls, name: str) -> str:
        if name not in POLICY_LOSSES:
            raise ValueError(f"unknown policy loss {name!r}; registered: {', '.join(sorted(POLICY_LOSSES))}")
        return name


# AlgoConfig fields handed to the loss by name when its signature takes them (training.step).
LOSS_OPTION_FIELDS = (
    "epsilon", "std_eps", "ratio_normalization", "length_normalize",
    "clip_low", "clip_high", "eta", "dpo_beta", "gvpo_beta",
)  # fmt: skip


def loss_option_problems(loss: str, algo: AlgoConfig) -> list[str]:
    """One message per loss option set away from its default that ``loss`` does not take."""
    takes = loss_option_names(loss)
    problems = []
    for name in LOSS_OPTION_FIELDS:
        value = getattr(algo, name)
        if name in takes or value == AlgoConfig.model_fields[name].default:
            continue
        users = [other for other in sorted(POLICY_LOSSES) if name in loss_option_names(other)]
        problems.append(
            f"algo.{name}={value!r} has no effect under algo.loss={loss} (it takes "
            f"{', '.join(takes) or 'no options'}); remove the setting, or choose a loss that uses it: "
            f"{', '.join(users)}"
        )
    return problems


class SftConfig(_Section):
    """Optional supervised warm start on reasoning traces before RL (0 steps = skip)."""

    steps: int = Field(0, ge=0, description="Supervised steps; 0 skips the stage.")
    lr: float = Field(1e-5, description="Learning rate of the supervised stage.")
    batch_size: int = Field(8, ge=1, description="Samples per supervised step (per process).")
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps of the supervised stage.")
    schedule: Literal["cosine", "constant"] = Field("constant", description="LR schedule after warmup.")
    vision_lr: float | None = Field(
        None, description="Learning rate of the vision tower when it trains; null = sft.lr."
    )
    hint_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of supervised examples whose prompt carries a partial-trace hint (the first "
        "steps of its own trace, as difficulty augmentation writes them), so the model learns to read "
        "hints; 0 = none.",
    )
    hint_max_steps: int = Field(
        2, ge=1, description="A hinted supervised example shows 1 to this many steps (drawn uniformly)."
    )
    shipped: bool = Field(
        False,
        description="Install the warm start shipped with the package (the tiny preset's recipe trained at "
        "seed 0) instead of training, when this run's model, data and sft settings are its recipe's; "
        "otherwise train as configured.",
    )


class TrainConfig(_Section):
    """Optimisation, checkpoints and logging of the RL stage."""

    output_dir: str = Field("runs/default", description="Run directory: checkpoints, metrics, plots.")
    max_steps: int = Field(1000, ge=1, description="Optimizer steps of the RL stage.")
    lr: float = Field(1e-6, description="Peak learning rate (AdamW). Paper: 1e-6.")
    vision_lr: float | None = Field(
        None, description="Peak learning rate of the vision tower when it trains; null = train.lr."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps.")
    schedule: Literal["cosine", "constant"] = Field("constant", description="LR schedule after warmup.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    micro_batch_size: int = Field(8, ge=1, description="Completions per forward/backward; multiple of G.")
    grad_accumulation: int = Field(
        1, ge=1, description="Rollout batches (rolled out one by one) per optimizer step; one loss over all."
    )
    eval_batch_size: int = Field(16, ge=1, description="Prompts decoded at once during evaluation.")
    logprob_chunk_size: int = Field(
        512, ge=1, description="Completion positions projected to the vocabulary at once (log-prob memory)."
    )
    seed: int = Field(42, description="Seed of python, numpy and torch RNGs (offset by rank).")
    save_every: int = Field(100, ge=0, description="Checkpoint every N steps; 0 = only at the end.")
    keep_last: int = Field(2, ge=1, description="Complete checkpoints kept; older ones are deleted.")
    eval_every: int = Field(
        0, ge=0, description="Held-out eval every N RL steps, logged as eval/*; 0 = only before and after."
    )
    resume: str = Field(
        "auto", description="auto = latest complete checkpoint in output_dir; none; or a path."
    )
    log_every: int = Field(1, ge=1, description="Log metrics every N steps.")
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Trackers metrics also go to (main process only): tensorboard, wandb, mlflow; [] = none.",
    )
    project: str = Field("deepvideo-r1", description="W&B project / MLflow experiment of the trackers.")
    run_name: str | None = Field(
        None,
        description="Tracker run name; null = the output directory's name. No path separators or '..' "
        "(TensorBoard writes into <output_dir>/tb/<run_name>).",
    )
    log_completions_every: int = Field(
        10, ge=0, description="Every N RL steps (from step 1), log two prompts' completions; 0 = off."
    )
    max_skipped_updates: int = Field(
        3,
        ge=1,
        description="Updates with a non-finite loss or gradient norm are skipped; this many in a row "
        "stop the run (NonFiniteUpdateError).",
    )
    fp32_master_weights: bool = Field(
        True,
        description="With a bfloat16 model (model.dtype; the GPU default), keep the trainable parameters, "
        "their gradients and AdamW state in float32 and compute in bfloat16 (autocast; FSDP2: its "
        "MixedPrecisionPolicy): 16 instead of 8 bytes per trainable parameter. false trains the bf16 "
        "weights directly, where updates below bf16's resolution (~4e-3 relative; lr 1e-6) round away. "
        "DeepSpeed and accelerate's FSDP plugin keep their own fp32 master weights either way.",
    )
    fsdp: bool = Field(
        False,
        description="Shard the RL policy with FSDP2 (one unit per decoder layer / vision block) across "
        "the launched processes, on CPU (gloo) or GPU; needs >= 2 processes. Under accelerate's own "
        "FSDP or DeepSpeed config leave it off: those wrap the policy themselves.",
    )

    @field_validator("run_name")
    @classmethod
    def _plain_run_name(cls, name: str | None) -> str | None:
        # TensorBoard joins it to the run directory: "../../x" would write outside it
        if name is not None and (not name.strip() or "/" in name or "\\" in name or ".." in name):
            raise ValueError(
                f"run_name {quote(name)} must be a plain name: no '/', '\\' or '..' (it names a "
                "folder inside the run directory), and not empty"
            )
        return name


class RunConfig(_Section):
    """The whole run. Sections: model, data, video, rollout, algo, difficulty, sft, train."""

    model: ModelConfig = Field(default_factory=ModelConfig, description="Policy model.")
    data: DataConfig = Field(default_factory=DataConfig, description="Datasets.")
    video: VideoConfig = Field(default_factory=VideoConfig, description="Video sampling.")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Generation.")
    algo: AlgoConfig = Field(default_factory=AlgoConfig, description="Loss and advantages.")
    difficulty: DifficultyConfig = Field(default_factory=DifficultyConfig, description="Augmentation.")
    sft: SftConfig = Field(default_factory=SftConfig, description="Supervised warm start.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimisation and I/O.")

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        problems = cross_field_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def cross_field_problems(cfg: RunConfig) -> list[str]:
    """Rules that involve more than one field; each message says what, why and how to fix."""
    g = cfg.rollout.group_size
    checks = [
        (
            g < 2,
            f"rollout.group_size={g} must be >= 2: a group of one has no spread, so every "
            "advantage is 0; use 8 (paper) or at least 2",
        ),
        (
            g >= 2 and cfg.train.micro_batch_size % g != 0,
            f"train.micro_batch_size={cfg.train.micro_batch_size} must be a multiple of "
            f"rollout.group_size={g}: the loss needs all G completions of a group in one backward; "
            f"set it to {max(g, cfg.train.micro_batch_size // max(g, 1) * g)}",
        ),
        (cfg.algo.num_iterations < 1, f"algo.num_iterations={cfg.algo.num_iterations} must be >= 1"),
        (
            cfg.model.shared_prefix and cfg.model.attn_implementation == "flash_attention_2",
            "model.shared_prefix needs sdpa or eager attention (its completion mask is 4-D); set "
            "model.attn_implementation: sdpa, or model.shared_prefix: false to keep flash_attention_2",
        ),
        (cfg.train.lr <= 0, f"train.lr={cfg.train.lr} must be > 0 (paper: 1e-6)"),
        (
            cfg.train.vision_lr is not None and cfg.train.vision_lr <= 0,
            f"train.vision_lr={cfg.train.vision_lr} must be > 0, or null to use train.lr",
        ),
        (cfg.sft.steps > 0 and cfg.sft.lr <= 0, f"sft.lr={cfg.sft.lr} must be > 0 when sft.steps > 0"),
        (
            cfg.sft.vision_lr is not None and cfg.sft.vision_lr <= 0,
            f"sft.vision_lr={cfg.sft.vision_lr} must be > 0, or null to use sft.lr",
        ),
        (cfg.difficulty.window < 1, f"difficulty.window={cfg.difficulty.window} must be >= 1 (paper: 100)"),
        (
            (cfg.video.num_frames is None) == (cfg.video.fps is None),
            "set exactly one of video.num_frames and video.fps (the other to null)",
        ),
        (
            cfg.video.num_frames is not None and cfg.video.num_frames > cfg.video.max_frames,
            f"video.num_frames={cfg.video.num_frames} exceeds video.max_frames={cfg.video.max_frames}, "
            "the per-video frame cap (memory grows with T·H·W); lower num_frames or raise max_frames",
        ),
        (
            cfg.video.min_frames > cfg.video.max_frames,
            f"video.min_frames={cfg.video.min_frames} exceeds video.max_frames={cfg.video.max_frames}",
        ),
        (
            cfg.video.min_pixels > cfg.video.max_pixels,
            f"video.min_pixels={cfg.video.min_pixels} exceeds video.max_pixels={cfg.video.max_pixels}",
        ),
        (
            cfg.train.fsdp and cfg.model.lora.enabled,
            "train.fsdp=true with model.lora.enabled=true is not supported (adapters are not gathered "
            "or merged under FSDP2 here); train LoRA with DDP (train.fsdp=false)",
        ),
        (
            not any(w != 0 for w in cfg.algo.reward_weights.values()),
            "algo.reward_weights must give at least one reward a non-zero weight",
        ),
        (
            cfg.train.eval_every > 0 and cfg.data.train_file is not None and cfg.data.eval_file is None,
            "train.eval_every > 0 needs data.eval_file when training on your own data; "
            "set it or eval_every=0",
        ),
        (
            cfg.data.train_file is None and cfg.data.eval_file is None and cfg.data.format != "auto",
            f"data.format={cfg.data.format} was given without a data file; set data.train_file "
            "(or data.eval_file) or format=auto",
        ),
    ]
    return [message for failed, message in checks if failed] + loss_option_problems(cfg.algo.loss, cfg.algo)


# ---------------------------------------------------------------- loading and saving


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults, then the YAML file at `path`, then `section.field=value` overrides, validated.

    Override values are parsed with yaml.safe_load: `algo.beta=0.04`, `model.path=null`,
    `model.lora.enabled=true`, `model.lora.target_modules=[q_proj,v_proj]`,
    `algo.reward_weights.format=0.5` (sets one key of a dict field).
    """
    data = RunConfig().model_dump()
    from_file: dict = {}
    if path is not None:
        from_file = _read_yaml(Path(path))
        data = _merge(RunConfig, data, from_file, source=str(path))
    for item in overrides or []:
        _apply_override(data, item)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        sets = [item.split("=", 1)[0].strip() for item in overrides or []]
        origin = _origin_finder(sets, from_file, path)
        raise ConfigError(f"invalid config:\n{_format_errors(e, origin)}") from e


def _origin_finder(sets: list[str], from_file: dict, path: str | Path | None):
    """dotted key -> where its value came from: the last --set of it, the file, or the defaults."""
    name = Path(path).name if path is not None else None

    def origin(dotted: str) -> str:
        related = [k for k in sets if k == dotted or k.startswith(dotted + ".") or dotted.startswith(k + ".")]
        if related:
            return f"--set {related[-1]}"
        node: Any = from_file
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return f"{name}" if node is not None and name else "the defaults"

    return origin


def save_config(cfg: RunConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML; `load_config(path)` gives back an equal config."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return path


def describe_fields(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[dict[str, str]]:
    """Rows (name, type, default, description) for every leaf field, dotted names, in order."""
    rows: list[dict[str, str]] = []
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{name}"
        sub = _section_type(model, name)
        if sub is not None:
            rows.extend(describe_fields(sub, dotted + "."))
            continue
        default = info.get_default(call_default_factory=True)
        type_name = str(info.annotation).replace("typing.", "")
        if type_name.startswith("<class"):  # plain classes print as <class 'int'>
            type_name = info.annotation.__name__
        rows.append(
            {
                "name": dotted,
                "type": type_name,
                "default": repr(default),
                "description": info.description or "",
            }
        )
    return rows


def merge_sections(base: dict, new: dict, source: str) -> dict:
    """`new` (a possibly partial config tree) over `base`, along sections; unknown keys: ConfigError."""
    return _merge(RunConfig, base, new, source)


class DuplicateKeyError(yaml.YAMLError):
    """A YAML mapping repeats a key."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that repeats a key (`lr: 1e-4` then `lr: 5.0` would
    silently keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(f"duplicate key {quote(key)} (lines {seen[key]} and {line})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:map", _UniqueKeyLoader.construct_yaml_map)


def safe_load_unique(text: str) -> Any:
    """yaml.safe_load that raises yaml.YAMLError on a repeated mapping key."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = safe_load_unique(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(loaded).__name__}")
    return loaded


def _section_type(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    annotation = model.model_fields[name].annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unknown_key(model: type[BaseModel], key: str, dotted: str) -> ConfigError:
    valid = list(model.model_fields)
    close = difflib.get_close_matches(key[:QUOTE_CHARS], valid, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    shown = quote(dotted).strip("'")
    return ConfigError(f"unknown config key '{shown}': {hint}valid keys here: {', '.join(valid)}")


def _merge(model: type[BaseModel], base: dict, new: dict, source: str, prefix: str = "") -> dict:
    """Deep-merge `new` into `base` along sections; leaf values (dicts and lists too) are replaced."""
    out = dict(base)
    for key, value in new.items():
        dotted = f"{prefix}{key}"
        if key not in model.model_fields:
            raise ConfigError(f"{source}: {_unknown_key(model, str(key), dotted)}")
        sub = _section_type(model, key)
        if sub is not None and (isinstance(value, dict) or value is None):  # `sft:` alone = no changes
            out[key] = _merge(sub, base.get(key) or {}, value or {}, source, dotted + ".")
        else:
            out[key] = value
    return out


def _apply_override(data: dict, item: str) -> None:
    """Set `a.b.c=value` in the nested dict `data`, checking each key against the models."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like section.field=value, e.g. algo.beta=0.04")
    dotted, raw = item.split("=", 1)
    keys = dotted.strip().split(".")
    try:
        value = safe_load_unique(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override '{item}': value is not valid YAML: {e}") from e
    model: type[BaseModel] | None = RunConfig
    node = data
    for depth, key in enumerate(keys[:-1]):
        if model is not None:  # inside sections: keys must exist; inside a dict field: free keys
            if key not in model.model_fields:
                raise _unknown_key(model, key, ".".join(keys[: depth + 1]))
            model = _section_type(model, key)
        if not isinstance(node.get(key), dict):
            raise ConfigError(f"override '{item}': '{'.'.join(keys[: depth + 1])}' is not a section")
        node[key] = dict(node[key])
        node = node[key]
    if model is not None and keys[-1] not in model.model_fields:
        raise _unknown_key(model, keys[-1], dotted)
    node[keys[-1]] = value


_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxdict, _QUOTE.maxlist, _QUOTE.maxstring, _QUOTE.maxother = 2, 4, 4, 60, 60
QUOTE_CHARS = 200
"""Longest quote of user input in a config error (a 433-byte YAML of nested aliases expands to 80 MB)."""


def quote(value: Any) -> str:
    """repr of user input for an error message, bounded: nested and long values are elided with '...'."""
    text = _QUOTE.repr(value)
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 3] + "..."


def _format_errors(error: ValidationError, origin=None) -> str:
    """One line per problem; `origin(dotted)` says where a key's value came from (file or --set)."""
    lines = []
    for err in error.errors()[:20]:
        dotted = ".".join(str(part) for part in err["loc"])
        loc = quote(dotted).strip("'")
        message = err["msg"].removeprefix("Value error, ")  # our own text, not the input
        where = f", from {origin(dotted)}" if origin is not None else ""
        if loc:
            lines.append(f"  {loc}: {message} (got {quote(err['input'])}{where})")
        else:  # a cross-field rule: say where each key it names came from
            keys = dict.fromkeys(re.findall(_SECTION_KEY, message)) if origin is not None else {}
            named = ", ".join(f"{key} from {origin(key)}" for key in keys)
            lines.append(f"  {message} ({named})" if named else f"  {message}")
    return "\n".join(lines)


_SECTION_KEY = r"\b(?:model|data|video|rollout|algo|difficulty|sft|train)\.[a-z_]+(?:\.[a-z_]+)*"
