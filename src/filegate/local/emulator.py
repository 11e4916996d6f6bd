"""The emulator process: moto's server, patched, bound to 127.0.0.1 until told to stop.

Run as ``python -m filegate.local.emulator --port N``; the local stack starts it as a child
process so the emulator has a core (and a GIL) of its own.
"""

from __future__ import annotations

import argparse
import signal
import threading

from filegate.local import cfn_models, patches, s3_checksums


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve until SIGTERM or SIGINT."""
    patches.apply()
    cfn_models.register()
    s3_checksums.apply()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    serve(args.port, args.host)


if __name__ == "__main__":
    main()
