"""Benchmarks, examples and scripts import only what retarget has: a moved module or renamed
function fails here, not in the middle of an hour-long benchmark run."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_retarget_import_of_the_scripts_resolves():
    missing = []
    for folder in ("benchmarks", "examples", "scripts"):
        for path in sorted((ROOT / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("retarget")):
                    continue
                try:
                    module = importlib.import_module(node.module)
                except ImportError as exc:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module} ({exc})")
                    continue
                for alias in node.names:
                    if not hasattr(module, alias.name):
                        try:
                            importlib.import_module(f"{node.module}.{alias.name}")
                        except ImportError:
                            missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{alias.name}")
    assert not missing, "imports that no longer resolve:\n" + "\n".join(missing)
