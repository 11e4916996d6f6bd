"""Two conventions checked over every module: environment variables are read in settings.py
only, and loggers are ``logger = logging.getLogger(__name__)`` (the Lambda entry points: a
Powertools ``Logger()`` named ``logger``).

``os.environ`` used anywhere (read, copied, iterated) and ``os.getenv`` count as reads.
"""

from __future__ import annotations

import ast
from pathlib import Path

import filegate

SOURCE = Path(filegate.__file__).parent
NOT_YET: set[str] = set()
LOG_NAME_NOT_YET: set[str] = set()


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(SOURCE)), ast.parse(path.read_text("utf-8")))
        for path in sorted(SOURCE.rglob("*.py"))
    ]


def _reads_environment(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id == "os" and node.attr in ("environ", "getenv", "environb")
    if isinstance(node, ast.ImportFrom) and node.module == "os":
        return any(alias.name in ("environ", "getenv") for alias in node.names)
    return False


def test_environment_variables_are_read_in_settings_only() -> None:
    readers = sorted(
        f"{name}:{node.lineno}"  # type: ignore[attr-defined]
        for name, tree in _modules()
        if name != "settings.py" and name not in NOT_YET
        for node in ast.walk(tree)
        if _reads_environment(node)
    )
    assert readers == []


def _loggers(tree: ast.Module) -> list[tuple[str, ast.expr]]:
    return [
        (target.id, node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Attribute | ast.Name)
        and ast.unparse(node.value.func) in ("logging.getLogger", "getLogger", "Logger")
        for target in node.targets
        if isinstance(target, ast.Name)
    ]


def test_one_logger_naming_convention() -> None:
    deviations = []
    for name, tree in _modules():
        for variable, call in _loggers(tree):
            made = ast.unparse(call)
            named = variable == "logger" or name in LOG_NAME_NOT_YET
            if made not in ("logging.getLogger(__name__)", "Logger()") or not named:
                deviations.append(f"{name}: {variable} = {made}")
    assert deviations == []


def test_s3_missing_answers_are_defined_in_storage_only() -> None:
    """S3's "no such key / version / bucket" codes live in storage.py (MISSING_*_CODES)."""
    missing = {"NoSuchKey", "NoSuchVersion", "NoSuchBucket", "NotFound"}
    spelled = sorted(
        f"{name}:{node.lineno} {node.value}"
        for name, tree in _modules()
        if name != "storage.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in missing
    )
    assert spelled == []
