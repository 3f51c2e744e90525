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
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if not name.startswith("retarget.") or _component(name) == own:
                    continue
                if LAYERS[_component(name)] <= LAYERS[own]:
                    wrong.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert not wrong, "imports pointing up or sideways:\n" + "\n".join(wrong)
