"""moto's WSGI application and its HTTP server: the one place that knows moto's app factory.

What ``ThreadedMotoServer`` does, in two pieces, so that ``emulator.application`` can wrap the
app in filegate's middleware before it is served: :func:`moto_application` builds moto's
dispatcher (one WSGI app for every service, found by host and path) and :func:`make_server`
serves a WSGI app with moto's request handler.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from werkzeug.serving import BaseWSGIServer

from filegate.local.iam import WsgiApp


def moto_application() -> WsgiApp:
    """moto's own WSGI app, as its ``ThreadedMotoServer`` builds it, routing remembered."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class Dispatcher(DomainDispatcherApplication):
        """moto's dispatcher, remembering which backend serves a host: moto finds it by
        listing its own package directory (a ``listdir`` and ~250 ``stat`` calls) and trying
        its URL patterns under one global lock, on every request; the answer cannot change
        while the server runs."""

        @functools.cache  # noqa: B019 - one dispatcher per process, alive as long as it
        def get_backend_for_host(self, host: str | None) -> Any:
            return super().get_backend_for_host(host)

    return cast(WsgiApp, Dispatcher(create_backend_app))


def make_server(host: str, port: int, app: WsgiApp) -> BaseWSGIServer:
    """A threaded HTTP server for ``app`` with moto's request handler, not yet serving."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server as werkzeug_server

    return werkzeug_server(host, port, app, True, request_handler=MotoRequestHandler)
