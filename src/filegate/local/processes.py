"""The local stack's child processes and ports: start, wait for, stop, and port checks.

An emulator is ready when its own log says it listens (``listening_line``, printed once its
socket is bound), not when something answers on its port: a port taken between the check and
the bind would otherwise be answered by whoever took it (seen in CI: a test's S3 calls
answered 501 by another stack's API gateway). Ports this module picks (``free_port``) come
from below Linux's ephemeral range (32768-60999), which the kernel hands out to every
outgoing connection and every bind to port 0.
"""

from __future__ import annotations

import contextlib
import errno
import random
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


# Ports ``free_port`` picks from: below the ephemeral range, above the well-known services.
FREE_PORTS = range(20_000, 32_768)


def listening_line(port: int) -> str:
    """What an emulator prints once its socket on ``port`` is bound and listening."""
    return f"filegate emulator listening on port {port}"


def wait_listening(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until the emulator's log says it listens on ``port``; LocalStackError if it exits
    first (its port taken, say) or does not within ``EMULATOR_START_TIMEOUT``."""
    deadline = time.monotonic() + EMULATOR_START_TIMEOUT
    line = listening_line(port).encode()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalStackError(f"the emulator exited at start: {tail(log_path)}")
        with contextlib.suppress(FileNotFoundError):
            if line in log_path.read_bytes():
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
    """A port of ``FREE_PORTS`` nothing listens on now (tried at random)."""
    for port in random.sample(FREE_PORTS, 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise LocalStackError(f"no free port found in {FREE_PORTS.start}-{FREE_PORTS.stop - 1}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
