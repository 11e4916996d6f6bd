"""The emulator process: moto's server, patched, bound to 127.0.0.1 until told to stop.

Run as ``python -m filegate.local.emulator --port N``; the local stack starts it as a child
process so the emulator has a core (and a GIL) of its own. Presigned S3 requests are checked as
S3 checks them (``s3_presign``) before moto serves them. Besides serving, it publishes the
AWS/SQS metrics SQS would (``sqs_metrics``) and, when the local stack asks, serves its event
source mapping's line to the queues (``queue_channel``). The local stack also starts a second
one with ``--dynamodb-only``, which serves the stack's DynamoDB tables
(``patches.dynamodb_process``) and publishes nothing. Both serve moto's WSGI app wrapped in
the function roles' IAM check (``iam``), when the local stack names their principals.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from typing import Any

from filegate.aws import Target
from filegate.errors import LocalStackError
from filegate.local import cfn_models, patches, s3_checksums, s3_presign
from filegate.local.iam import WsgiApp, middleware_from_env
from filegate.local.moto_version import require_supported_moto
from filegate.local.queue_channel import ENV_CHANNEL, ENV_CHANNEL_KEY, QueueChannelServer
from filegate.local.sqs_metrics import QueueMetricsPublisher


def serve(port: int, host: str = "127.0.0.1", publish_metrics: bool = True) -> None:
    """Serve until SIGTERM or SIGINT."""
    patches.apply()
    cfn_models.register()
    s3_checksums.apply()
    # werkzeug logs every request (a line to the emulator's log, under a lock every request
    # thread takes): ~4 % of the emulator's time in a burst, and a log that grows without end.
    # Warnings and errors are still logged.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = _Server(host, port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    metrics = (
        QueueMetricsPublisher(functools.cache(functools.partial(_cloudwatch, host, port)))
        if publish_metrics
        else None
    )
    channel = _queue_channel()
    if channel:
        channel.start()
    server.start()
    if metrics:
        metrics.start()
    stop.wait()
    if metrics:
        metrics.stop()
    if channel:
        channel.stop()
    server.stop()


def application(moto_app: WsgiApp, env: Mapping[str, str] | None = None) -> WsgiApp:
    """moto's WSGI app composed with filegate's middleware, in the order AWS checks a request:
    S3 authenticates it before it authorises it, so a forged or expired URL is refused as such
    (``s3_presign``), then the signer's role is checked (``iam``, when the local stack names
    its principals in ``env``), then moto answers."""
    return s3_presign.PresignedRequestCheck(middleware_from_env(moto_app, env))


class _Server:
    """moto's server (what ``ThreadedMotoServer`` does), its app wrapped in our middleware."""

    def __init__(self, host: str, port: int) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = application(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(host, port, app, True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()


def _queue_channel() -> QueueChannelServer | None:
    """The event source mapping's line to the queues, when the local stack asked for one."""
    address = os.environ.get(ENV_CHANNEL)
    if not address:
        return None
    return QueueChannelServer(address, bytes.fromhex(os.environ[ENV_CHANNEL_KEY]))


def _cloudwatch(host: str, port: int, region: str) -> Any:
    """A client of this emulator's own CloudWatch API, in one region."""
    return Target(region=region, endpoint_url=f"http://{host}:{port}").client("cloudwatch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--dynamodb-only",
        action="store_true",
        help="the local stack's DynamoDB process: serve, publish no queue metrics",
    )
    args = parser.parse_args()
    try:
        require_supported_moto()
    except LocalStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    serve(args.port, args.host, publish_metrics=not args.dynamodb_only)


if __name__ == "__main__":
    main()
