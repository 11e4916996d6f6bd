"""The upload client's view of a multipart plan's part URLs: signed in pages, renewed on expiry.

A plan holds no URLs: each part's URL binds the SHA-256 the client computed for it, so the
client asks the API (``POST /uploads/{id}/parts``) for them a page at a time, just before the
first part of a page is sent (the part and the next unsent ones already hashed, ``hashed``, at
most ``REFRESH_BATCH``), so a plan of 10,000 parts never comes in one response. URLs and the
declaration expire together (``expires_at``), and a large file over a slow link takes longer
than that: ``PartUrls`` asks again before a part whose URL is about to expire is sent, or
after S3 refused one as expired,
and keeps the declaration alive (an empty list of parts) while bytes flow and before
completing. Each refresh moves the declaration's expiry on. Times are compared on the injected
clock; a URL just signed again is used as it is even if that clock says it is near its expiry,
so a client clock ahead of the API's costs one refresh per half margin, never a loop.
Thread-safe: parts are sent from several threads. No AWS SDK here (the client's rule).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from filegate.errors import UploadClientError

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# POST /uploads/{upload_id}/parts for these part numbers (with their checksums); the answer.
AskForParts = Callable[[list[int]], dict[str, Any]]
# Parts signed in one request: enough to stay ahead of the parallel senders, far below the
# API's page limit (1,000), so one answer stays small.
REFRESH_BATCH = 64


class PartUrls:
    """The plan's parts (url, headers, offset, size) by part number, signed again on demand."""

    def __init__(self, plan: dict[str, Any], ask: AskForParts, clock: Clock, margin: float) -> None:
        self._parts: dict[int, dict[str, Any]] = {}  # signed so far
        self._numbers = range(1, int(plan["part_count"]) + 1)
        expiry = parse_expiry(plan.get("expires_at"))
        self._expiry: dict[int, datetime | None] = {}
        self._signed_at: dict[int, datetime] = {}  # parts signed again, on the client's clock
        self._upload_expiry = expiry
        self._refreshed_at: datetime | None = None
        self._started: set[int] = set()
        self._hashed: set[int] = set()  # parts whose SHA-256 is known: they can be signed
        self._ask = ask
        self._clock = clock
        self._margin = timedelta(seconds=margin)
        self._lock = threading.Lock()

    def skip(self, numbers: list[int]) -> None:
        """Parts not to send (S3 holds them already, from a run that was interrupted): never
        signed."""
        with self._lock:
            self._started.update(numbers)

    def hashed(self, number: int) -> None:
        """The part's SHA-256 is known now: it may join the next page asked for."""
        with self._lock:
            self._hashed.add(number)

    def for_sending(self, number: int) -> dict[str, Any]:
        """The part to send now, signed again first if its URL is about to expire."""
        with self._lock:
            self._started.add(number)
            if self._stale(number):
                self._refresh(self._batch(number))
            return self._parts[number]

    def after_expired(self, number: int) -> dict[str, Any]:
        """S3 refused the part's URL as expired: the part signed again."""
        with self._lock:
            self._refresh([number])
            return self._parts[number]

    def keep_alive(self) -> None:
        """Move the declaration's expiry on when it is near (at most once per half margin)."""
        with self._lock:
            now = self._clock()
            if not self._near(self._upload_expiry, now) or self._recent(self._refreshed_at, now):
                return
            try:
                self._refresh([])
            except UploadClientError as exc:
                # The transfer goes on; completing will say what became of the upload.
                logger.warning("could not extend the upload's expiry: %s", exc)

    def _stale(self, number: int) -> bool:
        if number not in self._parts:
            return True  # not signed yet
        now = self._clock()
        return self._near(self._expiry[number], now) and not self._recent(
            self._signed_at.get(number), now
        )

    def _batch(self, number: int) -> list[int]:
        """This part, then the next unsent parts whose URLs are about to expire too."""
        others = (n for n in self._numbers[number:] if n in self._hashed and n not in self._started)
        batch = [number]
        for other in others:
            if len(batch) == REFRESH_BATCH:
                break
            if self._stale(other):
                batch.append(other)
        return batch

    def _refresh(self, numbers: list[int]) -> None:
        answer = self._ask(numbers)
        now = self._clock()
        expiry = parse_expiry(answer.get("expires_at"))
        for part in answer.get("parts", []):
            number = part["part_number"]
            self._parts[number] = part
            self._expiry[number] = expiry
            self._signed_at[number] = now
        self._upload_expiry = expiry
        self._refreshed_at = now
        logger.info("signed %d part URLs again; the upload now expires at %s", len(numbers), expiry)

    def _near(self, expiry: datetime | None, now: datetime) -> bool:
        return expiry is not None and expiry - self._margin <= now

    def _recent(self, moment: datetime | None, now: datetime) -> bool:
        return moment is not None and now - moment < self._margin / 2


def parse_expiry(text: Any) -> datetime | None:
    """The API's ``expires_at`` (``...T12:00:00.000Z``) as an aware datetime; None if absent."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
