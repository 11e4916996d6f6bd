"""A partner's link, modelled on loopback: the traffic to one port limited to N Mbit/s.

On this machine the client and the emulator share loopback and two cores, so an upload's
speed is set by CPU, not by a network; a partner's upload goes over a link. ``limited``
puts a Linux HTB class of ``mbit`` Mbit/s on ``lo`` for packets to ``port`` (the emulator's
S3 endpoint: every uploader's bytes go there) and removes the qdisc when it ends, even on
an error. It needs root and ``tc`` (iproute2), and takes the whole of ``lo``'s root qdisc:
it refuses to run when ``lo`` already has one. Other loopback traffic is unlimited.

    tc qdisc add dev lo root handle 1: htb default 10
    tc class add dev lo parent 1: classid 1:10 htb rate 100gbit
    tc class add dev lo parent 1: classid 1:20 htb rate <mbit>mbit ceil <mbit>mbit
    tc filter add dev lo protocol ip parent 1: prio 1 u32 match ip dport <port> 0xffff flowid 1:20
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator


def _tc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tc", *args], capture_output=True, text=True, check=False)


@contextlib.contextmanager
def limited(port: int, mbit: int | None) -> Iterator[None]:
    """Packets to 127.0.0.1:``port`` go at most ``mbit`` Mbit/s while this lasts (None: no
    limit, nothing done)."""
    if mbit is None:
        yield
        return
    if shutil.which("tc") is None:
        raise SystemExit("--link-mbit needs tc (apt-get install iproute2) and root")
    if "htb" in _tc("qdisc", "show", "dev", "lo").stdout:
        raise SystemExit("lo has an htb qdisc already: remove it (tc qdisc del dev lo root)")
    rate = ("rate", f"{mbit}mbit", "ceil", f"{mbit}mbit")
    match = ("match", "ip", "dport", str(port), "0xffff", "flowid", "1:20")
    commands = [
        ("qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10"),
        ("class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "100gbit"),
        ("class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", *rate),
        (
            "filter",
            "add",
            "dev",
            "lo",
            "protocol",
            "ip",
            "parent",
            "1:",
            "prio",
            "1",
            "u32",
            *match,
        ),
    ]
    try:
        for command in commands:
            done = _tc(*command)
            if done.returncode:
                raise SystemExit(f"tc {' '.join(command)} failed: {done.stderr.strip()}")
        yield
    finally:
        _tc("qdisc", "del", "dev", "lo", "root")
