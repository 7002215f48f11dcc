"""`gateway` imports nothing from `load`: the load tools and emulators measure the gateway
from outside (dev mode runs the emulators as a process)."""

from __future__ import annotations

import ast
from pathlib import Path

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"


def _imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant)):
            names.append(str(node.args[0].value))
    return names


def test_no_gateway_module_imports_load() -> None:
    sources = sorted(GATEWAY.rglob("*.py"))
    assert len(sources) > 20  # the walk found the package
    offenders = [f"{path.relative_to(GATEWAY.parent)}: {name}"
                 for path in sources for name in _imported_modules(path)
                 if name == "load" or name.startswith("load.")]
    assert offenders == []
