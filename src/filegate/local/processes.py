"""The local stack's child processes and ports: start, wait for, stop, and port checks."""

from __future__ import annotations

import contextlib
import errno
import socket
import subprocess
import time
from pathlib import Path

from filegate.errors import LocalStackError, PortInUseError

EMULATOR_START_TIMEOUT = 30.0


def ensure_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUseError(
                f"port {port} on 127.0.0.1 is in use: stop what holds it"
                f" (`filegate local down`?) or pass --port"
            ) from None


def wait_listening(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + EMULATOR_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalStackError(f"the emulator exited at start: {tail(log_path)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise LocalStackError(f"the emulator did not listen on port {port} within 30 s")


def terminate(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
