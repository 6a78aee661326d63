"""The warm start shipped with the package: the embedded default's SFT model, trained once.

Training it takes longer than the embedded default's time budget on a 2-core CPU, and a warm start
trained on each machine is a different model on each (CPU kernels differ). So the package ships
the result of the preset's `sft` section at seed 0 (a complete model directory, ~7 MB) with its
recipe: the settings it was trained with, the versions it was built with, the command that
rebuilds it, and the SHA-256 of every file. With `sft.shipped: true` a run whose model, data, video
and sft settings are the recipe's (seeds and data sizes aside) installs it as its sft_model/ instead
of training; any other run trains as configured. `scripts/build_warm_start.py` rebuilds it (bit for
bit on the same machine).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from deepvideo_r1.artifacts import MANIFEST_FILE, differing_keys
from deepvideo_r1.evaluation.report import file_sha256

SHIPPED_DIR = Path(__file__).with_name("warm_start")
RECIPE = "recipe.json"
INSTALLED_RECIPE = "shipped_recipe.json"  # in a run's sft_model/: where it came from

WEIGHT_NEUTRAL = ("model.shared_prefix", "model.gradient_checkpointing", "data.max_prompt_tokens")
"""Settings an SFT model does not depend on (the same math, memory or a load-time check): a warm
start made with other values is reused."""

# The shipped model serves every seed and data size: these settings may differ from its recipe.
ANY_VALUE = (
    *WEIGHT_NEUTRAL,
    "seed",
    "data.synth.seed",
    "data.synth.n_train",
    "data.synth.n_eval",
    "data.synth.dir",
    "data.on_error",
    "sft.shipped",
)


class ShippedWarmStartError(RuntimeError):
    """The shipped warm start is damaged, or does not fit the run's settings."""


REQUIRED_FILES = ("config.json", "model.safetensors")
"""Files a recipe's hash map must list: without them the installed sft_model/ is no model."""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def read_recipe(directory: Path | None = None, name: str = RECIPE) -> dict:
    """The recipe in `directory` (default: the shipped one), checked to be a JSON object whose
    "settings" is an object and whose "sha256" maps file names (config.json and model.safetensors
    among them) to SHA-256 digests; ShippedWarmStartError naming the file otherwise."""
    path = (directory or SHIPPED_DIR) / name
    if not path.exists():
        raise ShippedWarmStartError(f"{path} is missing: the package has no shipped warm start")
    try:
        recipe = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ShippedWarmStartError(f"{path} is not valid JSON ({e}); reinstall the package") from e
    hashes = recipe.get("sha256") if isinstance(recipe, dict) else None
    if (
        not isinstance(recipe, dict)
        or not isinstance(recipe.get("settings"), dict)
        or not isinstance(hashes, dict)
    ):
        raise ShippedWarmStartError(f"{path} is not a recipe (an object with 'settings' and 'sha256' maps)")
    missing = [n for n in REQUIRED_FILES if n not in hashes]
    if missing:
        raise ShippedWarmStartError(
            f"{path}: its sha256 map lists no {', '.join(missing)}; reinstall the package"
        )
    bad = [n for n, d in hashes.items() if not isinstance(d, str) or not _SHA256.match(d) or "/" in n]
    if bad:
        raise ShippedWarmStartError(f"{path}: {bad[0]!r} has no valid SHA-256 in its sha256 map")
    return recipe


def recipe_differences(recipe_settings: dict, settings: dict) -> dict:
    """{dotted key: (recipe, run)} for what differs, leaving out the keys any run may change."""
    diff = differing_keys(recipe_settings, settings)
    return {k: v for k, v in diff.items() if not any(k == a or k.startswith(a + ".") for a in ANY_VALUE)}


def mismatch(settings: dict, recipe: dict | None = None) -> str | None:
    """Why the shipped warm start (`recipe`, read when not given) is not the one a run with
    `settings` (pipeline.sft_settings) would train, or None when it is."""
    if settings["model"]["path"] is not None:
        return "model.path is set (the shipped warm start is of the tiny preset)"
    if settings["data"]["train_file"] is not None:
        return "data.train_file is set (the shipped warm start is trained on the synthetic tasks)"
    differ = recipe_differences((recipe or read_recipe())["settings"], settings)
    if not differ:
        return None
    return ", ".join(f"{k}: {a!r} shipped, {b!r} here" for k, (a, b) in differ.items())


def check_files(directory: Path, recipe: dict, recipe_name: str = RECIPE, fix: str = "") -> None:
    """Raise unless every file the recipe lists is present with its SHA-256."""
    fix = fix or "reinstall the package or rebuild it with scripts/build_warm_start.py"
    for name, digest in recipe["sha256"].items():
        path = directory / name
        if not path.exists():
            raise ShippedWarmStartError(f"{path} is missing (listed in {directory / recipe_name}); {fix}")
        if file_sha256(path) != digest:
            raise ShippedWarmStartError(
                f"{path} does not match its SHA-256 in {directory / recipe_name}: the file is damaged; {fix}"
            )


def check_installed(out: Path) -> dict:
    """Re-check an installed warm start (a run's sft_model/) against the hashes of the recipe it was
    installed from; returns that recipe."""
    recipe = read_recipe(out, INSTALLED_RECIPE)
    check_files(out, recipe, INSTALLED_RECIPE, fix=f"delete {out} to install it again")
    return recipe


def install_shipped(out: Path, settings: dict, directory: Path | None = None) -> dict:
    """Copy the shipped warm start (or the one in `directory`) into `out` once its files and recipe
    check out against the run's `settings` (pipeline.sft_settings); returns the recipe."""
    directory = directory or SHIPPED_DIR
    recipe = read_recipe(directory)
    why_not = mismatch(settings, recipe)
    if why_not:
        raise ShippedWarmStartError(f"the shipped warm start does not fit this run: {why_not}")
    check_files(directory, recipe)
    out.mkdir(parents=True, exist_ok=True)
    for name in recipe["sha256"]:
        shutil.copyfile(directory / name, out / name)
    shutil.copyfile(directory / RECIPE, out / INSTALLED_RECIPE)
    return recipe


def write_shipped(model_dir: Path, settings: dict, record: dict, directory: Path) -> dict:
    """Replace the shipped warm start with the model files of `model_dir` and write its recipe
    (`settings`, the hashes and `record`: command, versions, losses); returns the recipe."""
    names = sorted(
        p.name for p in model_dir.iterdir() if p.is_file() and p.suffix in (".json", ".jinja", ".safetensors")
    )
    # the run directory's own records; MANIFEST.json is rewritten for every directory it is installed in
    names = [n for n in names if n not in (RECIPE, "sft_settings.json", "sft_losses.json", MANIFEST_FILE)]
    if "model.safetensors" not in names:
        raise ShippedWarmStartError(f"{model_dir} has no model.safetensors")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for name in names:
        shutil.copyfile(model_dir / name, directory / name)
    recipe = {**record, "settings": settings, "sha256": {n: file_sha256(directory / n) for n in names}}
    (directory / RECIPE).write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    return recipe
