"""ops/ (and the stack lookup it uses) import nothing from local/.

The local-only steps reach the operations as a ``stackref.LocalTwin`` the CLI builds from
``filegate.local``; an import of ``filegate.local`` anywhere in these modules, at the top or
inside a function, would carry the emulator into the AWS path again.
"""

from __future__ import annotations

import ast
from pathlib import Path

import filegate

SOURCE = Path(filegate.__file__).parent
NO_LOCAL = sorted([*(SOURCE / "ops").rglob("*.py"), SOURCE / "stackref.py"])


def _imported(tree: ast.AST, module: str) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            names.append(_absolute(module, node))
    return names


def _absolute(module: str, node: ast.ImportFrom) -> str:
    base = module.split(".")[: -node.level]
    return ".".join([*base, *([node.module] if node.module else [])])


def _module(path: Path) -> str:
    return ".".join(("filegate", *path.relative_to(SOURCE).with_suffix("").parts))


def test_ops_and_the_stack_lookup_never_import_local() -> None:
    offenders = [
        f"{path.relative_to(SOURCE)} imports {name}"
        for path in NO_LOCAL
        for name in _imported(ast.parse(path.read_text("utf-8")), _module(path))
        if name == "filegate.local" or name.startswith("filegate.local.")
    ]
    assert offenders == []


def test_the_check_sees_every_ops_module() -> None:
    assert len(NO_LOCAL) > 10
    assert SOURCE / "ops" / "deploy.py" in NO_LOCAL
