"""The local event source mapping's own line to the emulator's SQS queues.

On AWS, Lambda's SQS pollers are part of the service: reading and deleting a batch costs your
machine nothing. Locally the pollers run in the supervisor, and through the SQS API each batch
cost two HTTP round trips to the emulator (ReceiveMessage, DeleteMessageBatch): botocore in
the supervisor and moto's HTTP server and request framework in the emulator, ~1-2 ms of CPU
each, for what are two calls into moto's SQS backend. On a two-core machine that CPU is taken
from the uploads and the function being measured (docs/benchmarks.md).

This module is that line. The emulator serves three operations on a Unix socket in the local
stack's work directory (``multiprocessing.connection``, authenticated with a key the
supervisor hands it): ``receive`` (long polling, visibility timeout, receive counts and the
redrive to the dead-letter queue are moto's, with ``patches.sqs``), ``delete`` and ``release``
(make messages visible again after a delay), each one call into moto's SQS backend
(``queue_backend``, the one part of the line that touches moto).
:class:`ChannelQueue` is the poller's end: the messages it returns are shaped as
``ReceiveMessage`` returns them with every attribute requested, its errors are botocore's
(``ClientError`` with SQS's code; ``EndpointConnectionError`` when the emulator is gone), so
the poller treats both lines alike. ``FILEGATE_LOCAL_QUEUE_CHANNEL=0`` makes the local stack
poll through the SQS API instead.
"""

from __future__ import annotations

import logging
import threading
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

from filegate.local.queue_backend import handle
from filegate.settings import ENV_EMULATOR_QUEUE_CHANNEL, ENV_EMULATOR_QUEUE_CHANNEL_KEY

logger = logging.getLogger(__name__)

# Read by the emulator process (settings.EmulatorSettings): where to listen, and the key a
# client must hold (hex).
ENV_CHANNEL = ENV_EMULATOR_QUEUE_CHANNEL
ENV_CHANNEL_KEY = ENV_EMULATOR_QUEUE_CHANNEL_KEY
# A Unix socket's path is limited to 107 bytes on Linux; past this the stack uses the SQS API.
MAX_SOCKET_PATH = 100

# --- the emulator's end -------------------------------------------------------------------------


class QueueChannelServer:
    """Serves the channel in the emulator process: a thread per connected poller."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self._listener = Listener(address, family="AF_UNIX", authkey=authkey)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="queue-channel", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection = self._listener.accept()
            except (AuthenticationError, EOFError, ConnectionError):
                continue  # a client without the key, or one that hung up during the handshake
            except OSError:
                if self._closed.is_set():
                    return
                raise
            threading.Thread(
                target=_serve, args=(connection,), name="queue-channel-client", daemon=True
            ).start()


def _serve(connection: Connection) -> None:
    with connection:
        while True:
            try:
                request = connection.recv()
            except (EOFError, OSError):
                return
            try:
                response = handle(request)
            except Exception as exc:  # a bad request or a fault in moto: answer it, keep serving
                logger.exception("queue channel: request failed")
                response = {"error": {"Code": "InternalError", "Message": repr(exc)}}
            connection.send(response)


# --- the poller's end ---------------------------------------------------------------------------


class ChannelQueue:
    """One poller's line to one queue in the emulator; not shared between threads."""

    def __init__(self, address: str, authkey: bytes, queue_url: str, region: str) -> None:
        self._address = address
        self._authkey = authkey
        account, name = queue_url.rstrip("/").split("/")[-2:]
        self._request = {"account": account, "region": region, "queue": name}
        self._connection: Connection | None = None

    def receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._call("ReceiveMessage", op="receive", max=max_messages, wait=wait_seconds)
        messages: list[dict[str, Any]] = response["messages"]
        return messages

    def delete(self, entries: list[dict[str, str]]) -> None:
        self._call("DeleteMessageBatch", op="delete", entries=entries)

    def release(self, entries: list[dict[str, str]], delay_seconds: int) -> None:
        self._call(
            "ChangeMessageVisibilityBatch", op="release", entries=entries, delay=delay_seconds
        )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _call(self, operation: str, **arguments: Any) -> dict[str, Any]:
        try:
            if self._connection is None:
                self._connection = Client(self._address, family="AF_UNIX", authkey=self._authkey)
            self._connection.send({**self._request, **arguments})
            response: dict[str, Any] = self._connection.recv()
        except (OSError, EOFError, AuthenticationError) as exc:
            self.close()
            raise EndpointConnectionError(endpoint_url=f"unix:{self._address}", error=exc) from exc
        if "error" in response:
            raise ClientError({"Error": response["error"]}, operation)
        return response
