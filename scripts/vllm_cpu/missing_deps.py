"""Print the project's requirements (runtime + pytest) that the running environment does not satisfy.

Used by make_vllm_cpu_env.sh: the vLLM environment keeps vLLM's torch and our newer transformers, so the
project is installed with --no-deps and only what is still missing is installed afterwards.
"""

from __future__ import annotations

import sys
from importlib import metadata

from packaging.requirements import Requirement

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

# Installed deliberately outside their declared ranges or managed by the build script itself.
_MANAGED = {"torch", "transformers"}


def missing(pyproject: str) -> list[str]:
    """Runtime requirements and the dev extra's pytest that are absent or out of range (the vLLM
    environment runs the vLLM tests only: no trackers or dataset libraries)."""
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    dev = [r for r in project["optional-dependencies"]["dev"] if Requirement(r).name == "pytest"]
    reqs = [*project["dependencies"], *dev]
    out = []
    for text in reqs:
        req = Requirement(text)
        if req.name.lower() in _MANAGED:
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            out.append(text)
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            out.append(text)
    return out


if __name__ == "__main__":
    print(" ".join(missing(sys.argv[1])))
