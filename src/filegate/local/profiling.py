"""Profiling the emulator's requests (``FILEGATE_EMULATOR_PROFILE=<file>``): WSGI middleware.

Each request is profiled in a cProfile of its own (werkzeug serves each in a new thread) and the
merged statistics (``pstats`` format) are written to the file when the emulator stops. The
profiler's clock is the thread's CPU time: with a dozen request threads taking turns at one
GIL, wall time would charge every function for the time its thread spent waiting for the GIL.
"""

from __future__ import annotations

import cProfile
import pstats
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ProfiledRequests:
    """Runs ``app`` under a per-request profiler; :meth:`dump` writes what they measured."""

    def __init__(self, app: WsgiApp, stats_path: str) -> None:
        self._app = app
        self._path = stats_path
        self._idle: list[cProfile.Profile] = []
        self._every: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self._lock:
            profile = self._idle.pop() if self._idle else self._new()
        try:
            # the body too: moto builds most answers lazily, while they are read
            return profile.runcall(lambda: list(self._app(environ, start_response)))
        finally:
            with self._lock:
                self._idle.append(profile)

    def _new(self) -> cProfile.Profile:
        profile = cProfile.Profile(time.thread_time)
        self._every.append(profile)
        return profile

    def dump(self) -> None:
        with self._lock:
            if self._every:
                stats = pstats.Stats(self._every[0])
                for profile in self._every[1:]:
                    stats.add(profile)
                stats.dump_stats(self._path)
