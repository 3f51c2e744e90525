"""The layering of docs/architecture.md: every import in retarget/ points down."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "retarget"

#: Lower numbers sit higher; a module may import its own package and anything with a larger number.
LAYERS = {
    "__main__": -1, "cli": 0, "demo": 1, "pipeline": 2,
    "train": 3, "render": 3,
    "run": 4, "eval": 4,
    "nn": 5, "dataset": 5,
    "faces": 6,
    "video": 7,
    "geometry": 8, "device": 8, "config": 8, "atomic": 8,
    "progress": 9, "errors": 9, "__init__": 9,
}  # fmt: skip


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_import_points_down():
    wrong = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("").parts
        own = rel[0]
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
