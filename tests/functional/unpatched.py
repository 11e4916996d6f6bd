"""Running an emulator-patch scenario on moto's own code, for the equivalence tests.

A scenario script (``*_patch_scenario.py``) prints its answers as JSON when run as a program;
run in a fresh process nothing of filegate's is patched, so its answers are moto's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def answers(scenario: Path) -> dict[str, Any]:
    """The scenario's answers on moto's own code, from a process where nothing is patched."""
    done = subprocess.run(
        [sys.executable, str(scenario)], capture_output=True, text=True, check=True, timeout=240
    )
    found: dict[str, Any] = json.loads(done.stdout)
    return found
