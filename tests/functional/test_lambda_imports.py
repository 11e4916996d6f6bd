"""Each Lambda entry point's import contract, checked in a fresh interpreter.

Importing a handler must not import boto3 (its builder does, on the first invocation) nor any
filegate module the Lambda zip does not ship (nothing from cli/, local/, stackref, aws). What
the zip ships is read from the package builder, so the two cannot drift.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from filegate import package

IMPORT_ONLY = """
import json, sys
import {module}
print(json.dumps({{
    "boto3": "boto3" in sys.modules,
    "filegate": sorted(m for m in sys.modules if m.split(".")[0] == "filegate"),
}}))
"""


def shipped_modules() -> set[str]:
    names = set()
    for archive_name, _ in package.iter_package_files():
        if archive_name.startswith("filegate/") and archive_name.endswith(".py"):
            module = archive_name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            names.add(module)
    return names


@pytest.mark.parametrize("module", ["filegate.ingest.handler", "filegate.uploads.api"])
def test_importing_a_handler_imports_no_boto3_and_only_shipped_modules(module: str) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    environment["POWERTOOLS_TRACE_DISABLED"] = "true"
    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_ONLY.format(module=module)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=Path(__file__).parent,
        timeout=120,
        check=True,
    )
    found = json.loads(completed.stdout.strip().splitlines()[-1])

    assert found["boto3"] is False
    assert module in found["filegate"]
    assert set(found["filegate"]) <= shipped_modules()
