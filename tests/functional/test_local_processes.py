"""The local stack waits for its emulator's own word that it listens, not for any answer on
its port (processes.py): a port taken by someone else is an error at start, never a stack
whose S3 is another server."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from filegate.errors import LocalStackError
from filegate.local.processes import FREE_PORTS, free_port, wait_listening


def emulator(port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "filegate.local.emulator", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def test_an_emulator_whose_port_someone_else_listens_on_fails_the_start(tmp_path: Path) -> None:
    # GIVEN another server listening on the port the emulator is given
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        process = emulator(port, tmp_path / "emulator.log")
        try:
            # WHEN the stack waits for it THEN the start fails, naming why
            with pytest.raises(LocalStackError, match="Address already in use"):
                wait_listening(port, process, tmp_path / "emulator.log")
        finally:
            process.kill()
            process.wait()


def test_an_emulator_on_a_free_port_is_ready_once_it_says_so(tmp_path: Path) -> None:
    port = free_port()
    process = emulator(port, tmp_path / "emulator.log")
    try:
        wait_listening(port, process, tmp_path / "emulator.log")
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        process.terminate()
        process.wait()


def test_free_ports_come_from_below_the_ephemeral_range() -> None:
    low, _ = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = {free_port() for _ in range(20)}
    assert all(port in FREE_PORTS and port < low for port in ports)
