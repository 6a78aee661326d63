"""Config: paper defaults, YAML + dotted overrides, errors that name the key, shipped configs, docs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from deepvideo_r1.algos import POLICY_LOSSES, loss_option_names
from deepvideo_r1.config import (
    AlgoConfig,
    ConfigError,
    DifficultyConfig,
    RunConfig,
    describe_fields,
    load_config,
    save_config,
)
from deepvideo_r1.presets import TINY_CPU

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [*sorted((REPO / "configs").glob("*.yaml")), Path(TINY_CPU)]


def test_defaults_are_the_paper_values():
    cfg = RunConfig()
    assert (cfg.rollout.group_size, cfg.difficulty.window, cfg.algo.beta) == (8, 100, 0.1)
    assert (cfg.algo.epsilon, cfg.algo.std_eps, cfg.algo.loss) == (1.0, 1e-4, "reg_grpo")
    assert cfg.video.num_frames == 16 and cfg.video.min_pixels == cfg.video.max_pixels == 252 * 252
    assert cfg.difficulty.noise_std == 0.1 and cfg.model.train_vision == "none"
    assert cfg.algo.reward_weights == {"format": 1.0, "accuracy": 1.0}


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("algo:\n  beta: 0.5\n  reward_weights: {accuracy: 2.0}\nrollout:\n  group_size: 4\n")
    cfg = load_config(
        path,
        ["algo.beta=0.04", "difficulty.kinds=increase", "model.lora.enabled=true",
         "train.micro_batch_size=12", "model.lora.target_modules=[q_proj, v_proj]",
         "algo.reward_weights.format=0.5", "model.path=null", "data.eval_file=a=b.jsonl"],
    )  # fmt: skip
    assert cfg.algo.beta == 0.04  # override beats YAML
    assert cfg.rollout.group_size == 4  # YAML beats default
    assert cfg.algo.epsilon == 1.0  # untouched default inside a section the YAML edits
    assert cfg.difficulty.kinds == "increase" and cfg.model.lora.enabled is True
    assert cfg.model.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.algo.reward_weights == {
        "accuracy": 2.0,
        "format": 0.5,
    }  # YAML replaced the dict, then one key set
    assert cfg.data.eval_file == "a=b.jsonl"  # only the first '=' splits


def test_round_trip(tmp_path):
    cfg = load_config(TINY_CPU, ["algo.loss=dapo", "algo.clip_high=0.3", "video.total_pixels=9000"])
    again = load_config(save_config(cfg, tmp_path / "resolved.yaml"))
    assert again == cfg and again.model_dump() == cfg.model_dump()


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["algo.bta=1"], ["'algo.bta'", "did you mean beta"]),
        (["rollout.group_sze=4"], ["'rollout.group_sze'", "group_size"]),
        (["modle.path=x"], ["'modle'", "model"]),
        (["model.lora.rank=4"], ["'model.lora.rank'", "enabled, r, alpha"]),
        (["algo.beta.x=1"], ["'algo.beta' is not a section"]),
        (["algo.beta"], ["must look like section.field=value"]),
        (["algo.beta=-1"], ["algo.beta", "greater than or equal to 0", "got -1"]),
        (["algo.loss=ppo"], ["algo.loss", "unknown policy loss 'ppo'", ", ".join(sorted(POLICY_LOSSES))]),
        # a loss option the chosen loss does not take is an error, naming the losses that take it
        (
            ["algo.loss=grpo", "algo.epsilon=0.5"],
            [
                "algo.epsilon=0.5 has no effect under algo.loss=grpo",
                "it takes clip_low, clip_high",
                "uses it: reg_grpo",
            ],
        ),
        (
            ["algo.clip_high=0.3"],
            ["algo.clip_high=0.3 has no effect under algo.loss=reg_grpo", "dapo, dr_grpo, grpo, gspo"],
        ),
        (
            ["algo.loss=rloo", "algo.eta=2"],
            ["algo.eta=2.0", "(it takes no options)", "rebel, reward_regression"],
        ),
        (["rollout.group_size=3"], ["multiple of rollout.group_size=3", "set it to 6"]),
        (["rollout.group_size=1", "train.micro_batch_size=1"], ["group_size=1 must be >= 2"]),
        (["algo.num_iterations=0"], ["num_iterations=0 must be >= 1"]),
        (["train.lr=0"], ["train.lr=0.0 must be > 0"]),
        (["sft.vision_lr=0"], ["sft.vision_lr=0.0 must be > 0, or null to use sft.lr"]),
        (["sft.schedule=linear"], ["sft.schedule", "'cosine' or 'constant'"]),
        (["difficulty.window=0"], ["difficulty.window=0 must be >= 1"]),
        (["video.fps=2"], ["exactly one of video.num_frames and video.fps"]),
        (["video.min_pixels=100000"], ["video.min_pixels=100000 exceeds video.max_pixels=63504"]),
        (["algo.reward_weights={format: 0}"], ["at least one reward a non-zero weight"]),
        (["algo.reward_weights={acuracy: 1}"], ["reward_weights", "unknown reward 'acuracy'", "file.py:f"]),
        (["difficulty.timing=later"], ["difficulty.timing", "'same_step' or 'next_visit'"]),
        (["data.train_file=t.jsonl", "train.eval_every=10"], ["needs data.eval_file"]),
        # the generator's own checks run when the config loads, not when the data is generated
        (["data.synth.tasks=[nope]"], ["data.synth", "unknown tasks ['nope']", "direction"]),
        (["data.synth.size=57"], ["data.synth", "size=57: use a multiple of 28"]),
    ],
)
def test_errors_say_what_and_how(overrides, fragments):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_every_loss_option_has_a_config_field_and_every_loss_is_selectable():
    from deepvideo_r1.config import LOSS_OPTION_FIELDS, AlgoConfig

    taken = {opt for name in POLICY_LOSSES for opt in loss_option_names(name)}
    # max_completion_length is rollout.max_new_tokens; every other option is an algo field
    assert taken - {"max_completion_length"} == set(LOSS_OPTION_FIELDS)
    assert set(LOSS_OPTION_FIELDS) <= set(AlgoConfig.model_fields)
    for name in POLICY_LOSSES:
        assert load_config(None, [f"algo.loss={name}"]).algo.loss == name
    # an option at its default is fine under any loss; set away from it, only where it is taken
    assert load_config(None, ["algo.loss=grpo", "algo.epsilon=1.0"]).algo.epsilon == 1.0
    assert load_config(None, ["algo.loss=online_dpo", "algo.dpo_beta=0.5"]).algo.dpo_beta == 0.5


def test_yaml_errors_name_the_file(tmp_path):
    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text("train:\n  max_step: 10\n")
    with pytest.raises(ConfigError, match=r"bad_key\.yaml.*'train\.max_step'.*max_steps"):
        load_config(bad_key)
    not_mapping = tmp_path / "list.yaml"
    not_mapping.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(not_mapping)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == RunConfig()
    empty.write_text("sft:\nalgo:\n  beta: 0.2\n")  # a section with no keys changes nothing
    assert load_config(empty).sft == RunConfig().sft


def test_python_construction_validates_and_forbids_extras():
    with pytest.raises(ValidationError, match="multiple of"):
        RunConfig.model_validate({"rollout": {"group_size": 4}, "train": {"micro_batch_size": 6}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        RunConfig.model_validate({"algo": {"betaa": 0.1}})


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    if path.name != "tiny_cpu.yaml":  # real runs reproduce the paper
        assert (cfg.rollout.group_size, cfg.difficulty.window, cfg.algo.beta, cfg.train.lr) == (
            8,
            100,
            0.1,
            1e-6,
        )
        assert cfg.video.num_frames == 16 and cfg.video.max_pixels == 252 * 252
        assert cfg.model.dtype == "bfloat16" and cfg.model.train_vision == "none"
        assert cfg.algo.loss == "reg_grpo" and cfg.data.train_file is not None
    else:
        assert cfg.model.path is None and cfg.data.train_file is None and cfg.model.dtype == "float32"


def test_configs_directory_has_the_documented_set():
    assert {p.name for p in CONFIGS if p.parent.name == "configs"} == {
        "qwen2_5_vl_3b_seedbench_r1.yaml", "qwen2_5_vl_7b_seedbench_r1.yaml",
        "qwen2_5_vl_7b_nextgqa.yaml",
    }  # fmt: skip


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs" / "accelerate").glob("*.yaml")), ids=lambda p: p.name
)
def test_accelerate_configs_parse(path):
    from accelerate.commands.config.config_args import load_config_from_file

    cluster = load_config_from_file(str(path))
    assert cluster.num_processes >= 2


def test_docs_list_every_field():
    doc = (REPO / "docs" / "configuration.md").read_text()
    rows = describe_fields()
    assert len(rows) > 80
    missing = [row["name"] for row in rows if f"`{row['name']}`" not in doc]
    assert not missing, f"docs/configuration.md lacks {missing}"
    for path in CONFIGS:
        assert path.name in doc


def test_options_come_from_their_registries():
    """The config's option types are the controller's, the advantages' and the reward registry's."""
    from typing import get_args

    from deepvideo_r1.algos.advantages import AdvantageScale
    from deepvideo_r1.difficulty.controller import OPTIONS
    from deepvideo_r1.rewards import DEFAULT_WEIGHTS

    fields = DifficultyConfig.model_fields
    for name, allowed in OPTIONS.items():
        assert get_args(fields[name].annotation) == allowed, name
    assert get_args(AlgoConfig.model_fields["advantage_scale"].annotation)[0] is AdvantageScale
    assert AlgoConfig().reward_weights == dict(DEFAULT_WEIGHTS)
    assert AlgoConfig(reward_weights={"my_rewards.py:bonus": 1.0}).reward_weights  # checked when first used


def test_hand_listed_options_match_their_registries():
    """Families, data formats and trackers are typed as literals (for the docs and the error
    message); each list must stay equal to the registry that implements it."""
    from typing import get_args

    from deepvideo_r1.config import DataConfig, ModelConfig, TrainConfig
    from deepvideo_r1.data.registry import FORMATS
    from deepvideo_r1.metrics.trackers import TRACKER_BUILDERS
    from deepvideo_r1.models.families import FAMILIES

    assert set(get_args(ModelConfig.model_fields["family"].annotation)) == set(FAMILIES)
    assert set(get_args(DataConfig.model_fields["format"].annotation)) == {"auto", *FORMATS}
    (tracker,) = get_args(TrainConfig.model_fields["report_to"].annotation)
    assert set(get_args(tracker)) == set(TRACKER_BUILDERS)


def test_the_synth_section_is_the_generators_configuration():
    synth = load_config(
        None, ["data.synth.n_train=30", "data.synth.n_eval=10", "data.synth.tasks=[count]"]
    ).data.synth
    made = synth.generator_config()
    assert (made.n, made.eval_count, made.train_count, made.tasks) == (40, 10, 30, ("count",))
    assert (made.seed, made.size, made.num_frames, made.difficulty) == (0, 56, 8, "easy")


def test_the_config_imports_without_transformers():
    """`config show` / `config keys` import the config only: no transformers, accelerate or peft
    (torch still comes with the loss and reward registries the config validates against)."""
    import subprocess
    import sys

    heavy = "{'transformers', 'accelerate', 'peft'}"
    code = f"import sys, deepvideo_r1.config; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
