"""The package layout is the architecture: floors, no upward imports, no import circles.

Read from the source with `ast`: every import, also those inside functions (so the rules hold for
lazy imports), except under `if TYPE_CHECKING:`, which never runs. Lower floors: algos, rewards,
video, data, models, rollout, difficulty, metrics. They import nothing from the run configuration,
the trainer, evaluation, checkpoints or the applications on top; checkpoints import nothing from
training or the pipeline.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = "deepvideo_r1"
SRC = Path(__file__).resolve().parents[1] / "src"
LOWER = ("algos", "rewards", "video", "data", "models", "rollout", "difficulty", "metrics")
UPPER = ("config", "training", "evaluation", "checkpoints", "pipeline", "cli", "ablations", "export", "api")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in (SRC / PKG).rglob("*.py")}


def _imported(module: str, node: ast.Import | ast.ImportFrom, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        source = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    return [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:`."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            todo.extend(node.orelse)
            continue
        nodes.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _edges() -> dict[str, set[str]]:
    """module -> the package modules it imports (its own parent packages left out)."""
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        deps: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported(module, node, path.name == "__init__.py"):
                while name not in MODULES and "." in name:
                    name = name.rsplit(".", 1)[0]
                if name in MODULES and name != module and not module.startswith(name + "."):
                    deps.add(name)
        edges[module] = deps
    return edges


EDGES = _edges()


def _floor(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    # a broken reader would pass every rule vacuously
    assert "deepvideo_r1.algos.losses" in MODULES and len(MODULES) > 80
    assert "deepvideo_r1.config" in EDGES["deepvideo_r1.training.context"]
    assert "deepvideo_r1.difficulty.options" in EDGES["deepvideo_r1.config"]


def test_lower_floors_import_nothing_above_them():
    upward = [
        f"{m} -> {d}"
        for m, deps in EDGES.items()
        if _floor(m) in LOWER
        for d in deps
        if _floor(d) in UPPER
    ]
    assert upward == []


def test_checkpoints_import_neither_training_nor_the_pipeline():
    upward = [
        f"{m} -> {d}"
        for m, deps in EDGES.items()
        if _floor(m) == "checkpoints"
        for d in deps
        if _floor(d) in ("training", "pipeline")
    ]
    assert upward == []


def test_no_module_imports_in_a_circle():
    assert _cycles(EDGES) == []


def test_no_two_packages_import_each_other():
    packages: dict[str, set[str]] = {}
    for m, deps in EDGES.items():
        for d in deps:
            if _floor(m) and _floor(d) and _floor(m) != _floor(d):
                packages.setdefault(_floor(m), set()).add(_floor(d))
    assert _cycles(packages) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
