"""README and docs/: links resolve, commands name the files of their config, no unshipped references."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from deepvideo_r1.config import load_config

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# built from parts so this file does not match itself
UNSHIPPED = re.compile(r"\b" + "SPEC" + r"\b\s*§|\b[Ii]ssue\s+#?\d+")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in _anchors(dest)):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_no_references_to_documents_the_product_does_not_ship():
    roots = [REPO / "README.md", REPO / "docs", REPO / "src", REPO / "tests", REPO / "configs"]
    files = [
        f
        for r in roots
        for f in ([r] if r.is_file() else r.rglob("*"))
        if f.suffix in {".md", ".py", ".yaml"}
    ]
    hits = [
        f"{f.relative_to(REPO)}: {m.group(0)}"
        for f in files
        for m in UNSHIPPED.finditer(f.read_text("utf-8"))
    ]
    assert not hits, hits


def _command(text: str, program: str) -> list[str]:
    """The first `program ...` command in a page, line continuations joined, as argv."""
    joined = text.replace("\\\n", " ")
    line = next(line for line in joined.splitlines() if line.strip().startswith(program))
    return shlex.split(line)


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_readme_gpu_eval_names_the_files_of_its_config():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    train = _command(text, "accelerate launch")
    evaluate = _command(text, "deepvideo-r1 eval")
    config = _option(evaluate, "--config")
    assert _option(train, "--config") == config
    cfg = load_config(REPO / config)
    assert _option(evaluate, "--data") == cfg.data.eval_file
    assert _option(evaluate, "--root") == cfg.data.root
    assert _option(evaluate, "--format") == cfg.data.format


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install torch==2.13.0 && pip install -e ".[dev]" && python -m pytest' in readme
    for step in ('pip install "torch==2.13.0"', 'pip install -e ".[dev]"', "python -m pytest"):
        assert step in ci
