"""The version guard: an emulator process, and `filegate local up`, refuse a moto they were not
built against with one sentence naming the supported release (local/moto_version.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from filegate.errors import LocalStackError
from filegate.local.moto_version import SUPPORTED_MOTO, require_supported_moto

CLI = str(Path(sys.executable).with_name("filegate"))


@pytest.fixture
def other_moto(tmp_path: Path) -> dict[str, str]:
    """An environment in which the installed moto reports another version (its metadata first
    on the path), as after `pip install -U moto`."""
    info = tmp_path / "moto-9.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: moto\nVersion: 9.0.0\n")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "FILEGATE_STATE_DIR": str(tmp_path / "state"),
            "COLUMNS": "500"}  # fmt: skip


def _one_sentence(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr  # no traceback
    return lines[0]


def test_the_supported_moto_passes() -> None:
    require_supported_moto(SUPPORTED_MOTO)


def test_another_moto_is_refused_naming_the_supported_one() -> None:
    with pytest.raises(LocalStackError) as refused:
        require_supported_moto("5.3.0")
    assert "moto 5.3.0 is installed" in str(refused.value)
    assert f"supports moto {SUPPORTED_MOTO} only" in str(refused.value)


def test_the_emulator_process_refuses_another_moto_at_start(other_moto: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "filegate.local.emulator", "--port", "1"],
        env=other_moto, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    line = _one_sentence(done.stderr)
    assert "moto 9.0.0 is installed" in line
    assert f"supports moto {SUPPORTED_MOTO} only" in line


@pytest.mark.parametrize("mode", ["--detach", "--foreground"])
def test_local_up_refuses_another_moto_before_starting_anything(
    other_moto: dict[str, str], mode: str
) -> None:
    arguments = ["--detach"] if mode == "--detach" else []
    done = subprocess.run(
        [CLI, "local", "up", "--port", "1", "--api-port", "2", *arguments],
        env=other_moto, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"supports moto {SUPPORTED_MOTO} only" in _one_sentence(done.stderr)
    assert not (Path(other_moto["FILEGATE_STATE_DIR"]) / "local.json").exists()
