"""SHA-256 against CRC64NVME (and CRC32) over the same bytes: the figures behind the choice of
a composite SHA-256 for multipart uploads (docs/integrity.md, "Why composite SHA-256 and not
full-object CRC64NVME").

Times ``hashlib.sha256(data).digest()``, ``zlib.crc32(data)`` and, when ``awscrt`` can be
imported, ``awscrt.checksums.crc64nvme(data)`` on ``data = os.urandom(--mib MiB)``, the
algorithms interleaved round by round (``--rounds``, default 5); medians in MiB/s. ``awscrt``
is not a filegate dependency (``filegate upload`` ships without it): install it somewhere else
and put it on the path for this run only::

    .venv/bin/pip install --target /tmp/awscrt awscrt
    PYTHONPATH=/tmp/awscrt .venv/bin/python benchmarks/checksum_speed.py [--mib 64] [--rounds 5]

Figures go to ``results/checksum_speed.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median, save, table

MiB = 1024 * 1024


def algorithms() -> dict[str, Callable[[bytes], object]]:
    found: dict[str, Callable[[bytes], object]] = {
        "sha256 (hashlib)": lambda data: hashlib.sha256(data).digest(),
        "crc32 (zlib)": zlib.crc32,
    }
    try:
        from awscrt import checksums
    except ImportError:
        print(
            "awscrt not importable: CRC64NVME skipped (see the module's docstring)", file=sys.stderr
        )
    else:
        found["crc64nvme (awscrt)"] = checksums.crc64nvme
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = os.urandom(args.mib * MiB)
    chosen = algorithms()
    speeds: dict[str, list[float]] = {name: [] for name in chosen}
    for _ in range(args.rounds):
        for name, function in chosen.items():
            started = time.perf_counter()
            function(data)
            speeds[name].append(args.mib / (time.perf_counter() - started))
    sha256 = median(speeds["sha256 (hashlib)"])
    rows: list[list[Any]] = [
        [
            name,
            " / ".join(f"{s:.0f}" for s in runs),
            f"{median(runs):.0f}",
            f"{median(runs) / sha256:.1f}",
        ]
        for name, runs in speeds.items()
    ]
    print(table(["algorithm", "MiB/s per round", "median MiB/s", "x SHA-256"], rows))
    save(
        "checksum_speed",
        {
            "buffer_mib": args.mib,
            "rounds": args.rounds,
            "mib_per_s": {name: [round(s, 1) for s in runs] for name, runs in speeds.items()},
        },
    )


if __name__ == "__main__":
    main()
