"""The upload API entry point's import contract, checked in a fresh interpreter.

Importing the handler must not import boto3 (the builder does, on the first request) nor any
filegate module the Lambda zip does not ship (nothing from cli/, local/, ops/, stackref, aws).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SHIPPED = {
    "filegate",
    "filegate.errors",
    "filegate.settings",
    "filegate.events",
    "filegate.ledger",
    "filegate.storage",
    "filegate.uploads",
    "filegate.uploads.partners",
    "filegate.uploads.requests",
    "filegate.uploads.service",
    "filegate.uploads.api",
}

IMPORT_ONLY = """
import json, sys
import filegate.uploads.api
print(json.dumps({
    "boto3": "boto3" in sys.modules,
    "filegate": sorted(m for m in sys.modules if m.split(".")[0] == "filegate"),
}))
"""


def test_importing_the_api_imports_no_boto3_and_only_shipped_modules() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    environment["POWERTOOLS_TRACE_DISABLED"] = "true"
    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_ONLY],
        capture_output=True,
        text=True,
        env=environment,
        cwd=Path(__file__).parent,
        timeout=120,
        check=True,
    )
    found = json.loads(completed.stdout.strip().splitlines()[-1])

    assert found["boto3"] is False
    assert set(found["filegate"]) <= SHIPPED
