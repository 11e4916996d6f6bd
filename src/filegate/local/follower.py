"""Keeps the local workers on the code a deploy or a rollback says should run.

On AWS, moving an alias (``filegate deploy``, ``filegate rollback``) or updating a function's
code takes effect on the next invocation. Locally the warm workers hold the code they were
started with, so the supervisor follows each function: every second it asks the emulator what
should run (the version an alias names, or the function's CodeSha256) and, when that changed,
has fresh workers take over (the caller's ``switch``), letting work in flight finish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import FilegateError

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0


@dataclass
class _Followed:
    name: str
    wanted: Callable[[], str]  # what should run now, as the emulator says
    switch: Callable[[str], None]  # make that run
    running: str
    reported: str = ""  # the last failure, logged once rather than every second


class CodeFollower:
    """A thread that switches followed functions to what should run."""

    def __init__(self, interval: float = POLL_SECONDS) -> None:
        self._interval = interval
        self._followed: list[_Followed] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="code-follower", daemon=True)

    def follow(
        self, name: str, wanted: Callable[[], str], switch: Callable[[str], None], running: str
    ) -> None:
        """Follow one function (before ``start``)."""
        self._followed.append(_Followed(name, wanted, switch, running))

    def start(self) -> None:
        if self._followed:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            for followed in self._followed:
                self._check(followed)

    def _check(self, followed: _Followed) -> None:
        try:
            wanted = followed.wanted()
            if wanted != followed.running:
                followed.switch(wanted)
                logger.info("%s: now running %s (was %s)", followed.name, wanted, followed.running)
                followed.running = wanted
            followed.reported = ""
        except (ClientError, BotoCoreError, FilegateError) as exc:
            if str(exc) != followed.reported:
                logger.warning("%s: cannot switch to what should run: %s", followed.name, exc)
                followed.reported = str(exc)
