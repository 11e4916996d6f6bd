"""Stack outputs are spelled in one module, ``filegate.outputs``, and nowhere else.

A module reaches an output through ``ref.output(...)``, ``outputs.get(...)``, ``outputs[...]``,
``... in outputs`` or a constant named ``*_OUTPUT``: none of these may hold an output's literal
name outside ``filegate/outputs.py``. (The same strings as API field names, such as
GetFunctionConfiguration's ``FunctionName``, are not stack outputs and are not flagged.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from filegate import outputs
from filegate.template import template_text

SOURCE = Path(outputs.__file__).parent


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _dotted(node.func) + "()"
    if isinstance(node, ast.Subscript):
        return _dotted(node.value) + "[]"
    return ""


def _names_outputs(node: ast.AST) -> bool:
    return _dotted(node).lower().rstrip("()[]").endswith("outputs")


def _spelled(node: ast.AST) -> list[str]:
    """The output names a node spells as a stack output."""
    found: list[ast.AST] = []
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "output" or (
            node.func.attr == "get" and _names_outputs(node.func.value)
        ):
            found += node.args[:1]
    elif isinstance(node, ast.Subscript) and _names_outputs(node.value):
        found.append(node.slice)
    elif isinstance(node, ast.Compare) and any(_names_outputs(c) for c in node.comparators):
        found.append(node.left)
    elif isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if any("OUTPUT" in _dotted(t) for t in targets) and node.value is not None:
            found.append(node.value)
    return [
        n.value
        for n in found
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in outputs.ALL
    ]


def test_the_template_declares_exactly_the_known_outputs() -> None:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    document = yaml.load(template_text(), Loader=Loader)
    assert set(document["Outputs"]) == outputs.ALL


def test_no_module_but_outputs_spells_an_output_name() -> None:
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path == Path(outputs.__file__):
            continue
        tree = ast.parse(path.read_text("utf-8"), str(path))
        for node in ast.walk(tree):
            for name in _spelled(node):
                offenders.append(f"{path.relative_to(SOURCE)}:{node.lineno} {name}")  # type: ignore[attr-defined]
    assert offenders == []
