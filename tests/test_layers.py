"""The layering of docs/architecture.md: every import in retarget/ points down, and no module imports itself back."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "retarget"

#: Lower numbers sit higher; a module may import its own package and anything with a larger number.
LAYERS = {
    "__main__": -1, "cli": 0, "ui": 0.5, "demo": 1, "pipeline": 2,
    "train": 3, "render": 3,
    "views": 4,
    "run": 5, "eval": 5,
    "nn": 6, "dataset": 6,
    "faces": 7,
    "video": 8,
    "failures": 7.5, "outputs": 8, "budget": 8,
    "geometry": 9, "device": 9, "config": 9, "atomic": 9,
    "options": 10, "progress": 10, "jsontypes": 10, "imageio": 10,
    "errors": 11, "__init__": 11,
}  # fmt: skip


#: Programs run as their own process, like ``__main__``: they may call the command line itself.
ENTRY_POINTS = {("ui", "trainjob")}  # the app's training process: `retarget train ...`, its exit status recorded


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_import_points_down():
    wrong = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("").parts
        own = "__main__" if rel in ENTRY_POINTS else rel[0]
        assert own in LAYERS, f"{path}: not placed in a layer (add it to LAYERS and docs/architecture.md)"
        package = ".".join(("retarget", *rel[:-1]))  # what a relative import starts from
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # from . import x, from ..run import y
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                # from retarget import errors imports retarget.errors; from retarget.x import y, retarget.x
                names = [f"{base}.{a.name}" for a in node.names] if base == "retarget" else [base]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                comp = _component(name)
                if not ((ROOT / comp).is_dir() or (ROOT / f"{comp}.py").is_file()):
                    comp = "__init__"  # a name defined in retarget/__init__.py (__version__)
                if not name.startswith("retarget.") or comp == own:
                    continue
                if LAYERS[comp] <= LAYERS[own]:
                    wrong.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert not wrong, "imports pointing up or sideways:\n" + "\n".join(wrong)


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of ``root``'s package it imports anywhere in its file (TYPE_CHECKING blocks included).

    ``from package import name`` counts as importing ``package.name`` when that is a module,
    else as importing ``package``.
    """
    paths = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                deps |= {
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in paths else node.module for a in node.names
                }
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d in paths and d != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of ``graph``: one per strongly connected group of two or more modules, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the graph is a few hundred edges deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_module_imports_itself_back():
    cycles = import_cycles(import_graph(ROOT))
    assert not cycles, "import circles (TYPE_CHECKING imports count):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_circle_check_finds_a_circle_through_type_checking(tmp_path):
    pkg = tmp_path / "retarget"
    (pkg / "video").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "video" / "__init__.py").write_text("from retarget.video.reader import Frame\n")
    (pkg / "video" / "reader.py").write_text("from retarget.video import timing\nclass Frame: ...\n")
    (pkg / "video" / "timing.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from retarget.video.reader import Frame\n"
    )
    (pkg / "video" / "flow.py").write_text("import retarget.video.reader\n")  # one way only: no circle
    graph = import_graph(pkg)
    assert graph["retarget.video"] == {"retarget.video.reader"} and graph["retarget.video.flow"] == {
        "retarget.video.reader"
    }
    assert import_cycles(graph) == [["retarget.video.reader", "retarget.video.timing"]]
