"""The emulator process: moto's WSGI app composed with filegate's middleware, on 127.0.0.1.

Run as ``python -m filegate.local.emulator --port N``; the local stack starts it as a child
process so the emulator has a core (and a GIL) of its own. It refuses to start on a moto it was
not built against (``moto_version``). :func:`application` is the one place where moto's app is
wrapped: presigned S3 requests checked as S3 checks them (``s3_presign``), the function roles'
IAM check (``iam``), DynamoDB forwarded to its own process (``dynamodb_process``), DynamoDB
requests served one at a time, as DynamoDB's writes are atomic (``dynamodb_atomic``), S3
payloads checked against their checksums (``s3_checksum_check``), Lambda Invoke run on the local
stack's workers (``invoke_forwarding``), Lambda's GetAccountSettings (``lambda_account``),
CloudFormation's 51,200-byte limit on an inline template (``cfn_template_size``), its change
sets (``cfn_change_sets``), EventBridge's API-destination targets called after a PutEvents
(``api_destinations``), profiling (``profiling``); moto's app and server themselves are built
in ``moto_server``, so this module imports nothing of moto's. What cannot be done around moto
is a seam into it (``patches``, ``cfn_models``), each correcting a behaviour AWS documents or
buying measured speed. Besides serving, it publishes the AWS/SQS metrics SQS would
(``sqs_metrics``) and, when the local stack asks, serves its event source
mapping's line to the queues (``queue_channel``). The local stack also starts a second one with
``--dynamodb-only``, which serves the stack's DynamoDB tables and publishes nothing. Its
settings (what the local stack tells it, the speed switches) are ``settings.EmulatorSettings``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from filegate.aws import Target
from filegate.errors import LocalStackError
from filegate.local import cfn_models, patches, s3_checksum_check, s3_presign
from filegate.local.api_destinations import ApiDestinationDelivery
from filegate.local.cfn_change_sets import ChangeSets
from filegate.local.cfn_template_size import InlineTemplateLimit
from filegate.local.dynamodb_atomic import OneDynamoDBRequestAtATime
from filegate.local.dynamodb_process import DynamoDBForwarding
from filegate.local.iam import IamMiddleware, PrincipalFile, WsgiApp
from filegate.local.invoke_forwarding import InvokeForwarding
from filegate.local.lambda_account import AccountSettings
from filegate.local.moto_server import make_server, moto_application
from filegate.local.moto_version import require_supported_moto
from filegate.local.processes import listening_line
from filegate.local.profiling import ProfiledRequests
from filegate.local.queue_channel import QueueChannelServer
from filegate.local.sqs_metrics import QueueMetricsPublisher
from filegate.settings import EmulatorSettings


def serve(port: int, host: str = "127.0.0.1", publish_metrics: bool = True) -> None:
    """Serve until SIGTERM or SIGINT."""
    # Both are blocked here, and so in every thread started from here, until sigwait takes
    # them below. With a Python handler that set a threading.Event, a signal the kernel handed
    # to another thread never woke the main thread blocked in Event.wait: an emulator that
    # never exited after SIGTERM (seen in CI; py-spy: the main thread in Event.wait).
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    settings = EmulatorSettings.resolve()
    patches.apply(settings)
    cfn_models.register()
    # werkzeug logs every request (a line to the emulator's log, under a lock every request
    # thread takes): ~4 % of the emulator's time in a burst, and a log that grows without end.
    # Warnings and errors are still logged.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = _Server(host, port, settings)  # bound and listening from here
    print(listening_line(port), flush=True)  # what the local stack waits for (processes.py)
    metrics = (
        QueueMetricsPublisher(functools.cache(functools.partial(_cloudwatch, host, port)))
        if publish_metrics
        else None
    )
    channel = _queue_channel(settings)
    if channel:
        channel.start()
    server.start()
    if metrics:
        metrics.start()
    signal.sigwait(signals)
    if metrics:
        metrics.stop()
    if channel:
        channel.stop()
    server.stop()
    if isinstance(server.app, ProfiledRequests):
        server.app.dump()


def application(moto_app: WsgiApp, settings: EmulatorSettings | None = None) -> WsgiApp:
    """moto's WSGI app composed with filegate's middleware, in the order AWS checks a request:
    S3 authenticates it before it authorises it, so a forged or expired URL is refused as such
    (``s3_presign``), then the signer's role is checked (``iam``, when the local stack names
    its principals in ``settings``); then DynamoDB goes to its own process
    (``dynamodb_process``, when ``settings`` name one) and Lambda Invoke to the local stack's
    workers (``invoke_forwarding``, when they name the invoke server); an S3 payload is checked
    against its checksums (``s3_checksum_check``); a TemplateBody over 51,200 bytes is refused
    as CloudFormation refuses it (``cfn_template_size``), then change sets are served and
    executed through moto's CreateStack / UpdateStack (``cfn_change_sets``); Lambda's
    GetAccountSettings, which moto lacks, is answered from moto's functions
    (``lambda_account``); a PutEvents moto accepted is delivered to its rules' API
    destinations (``api_destinations``); moto answers the rest, its DynamoDB requests one at a
    time (``dynamodb_atomic``). With a profile file named, each request is profiled
    (outermost)."""
    settings = settings or EmulatorSettings()
    app: WsgiApp = OneDynamoDBRequestAtATime(AccountSettings(moto_app))
    app = ApiDestinationDelivery(app)
    app = ChangeSets(app)  # CloudFormation's change sets, executed through moto's stacks
    app = InlineTemplateLimit(app)  # CloudFormation's 51,200 bytes of TemplateBody
    app = s3_checksum_check.ChecksumCheck(app)  # S3 checks a payload after authenticating it
    if settings.invoke_url:
        app = InvokeForwarding(app, settings.invoke_url)
    if settings.dynamodb_url:
        app = DynamoDBForwarding(app, settings.dynamodb_url)
    if settings.principals:
        app = IamMiddleware(app, PrincipalFile(Path(settings.principals)))
    app = s3_presign.PresignedRequestCheck(app)
    return ProfiledRequests(app, settings.profile) if settings.profile else app


class _Server:
    """moto's server (what ``ThreadedMotoServer`` does), its app wrapped in our middleware."""

    def __init__(self, host: str, port: int, settings: EmulatorSettings) -> None:
        self.app = application(moto_application(), settings=settings)
        self._server = make_server(host, port, self.app)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()


def _queue_channel(settings: EmulatorSettings) -> QueueChannelServer | None:
    """The event source mapping's line to the queues, when the local stack asked for one."""
    if not settings.queue_channel or not settings.queue_channel_key:
        return None
    return QueueChannelServer(settings.queue_channel, bytes.fromhex(settings.queue_channel_key))


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
