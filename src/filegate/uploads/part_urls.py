"""The upload client's view of a multipart plan's part URLs: signed in pages, renewed on expiry.

A plan holds no URLs: each part's URL binds the SHA-256 the client computed for it, so the
client asks the API (``POST /uploads/{id}/parts``) for them a page at a time, just before the
first part of a page is sent (the part and the next unsent ones already hashed, ``hashed``, at
most ``REFRESH_BATCH``, the API's page limit), so a plan of 10,000 parts never comes in one
response. URLs and the declaration expire together (``expires_at``), and a large file over a
slow link takes longer than that: ``PartUrls`` asks again before a part whose URL is about to
expire is sent, or after S3 refused one as expired, and keeps the declaration alive (an empty
list of parts) while bytes flow and before completing. Each refresh moves the declaration's
expiry on. Times are compared on the injected clock; a URL just signed again is used as it is
even if that clock says it is near its expiry, so a client clock ahead of the API's costs one
refresh per half margin, never a loop. The reading thread takes pages ahead of the senders
(``page_ahead``), as soon as enough parts are hashed, and other threads ask for them
(``sign``); a request to the API is never made while the state's lock is held, so a sender
whose URL is ready never waits behind another's request.
Thread-safe: parts are sent from several threads. No AWS SDK here (the client's rule).
"""

from __future__ import annotations

import itertools
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
# Parts signed in one request at most: the API's page limit (the plan's sign_parts.max_parts;
# 1,000 URLs are ~1.8 MB of the function's 6 MB response). Each request is a Lambda invocation
# and DynamoDB calls, so the client asks for pages as large as the parts hashed ahead allow.
REFRESH_BATCH = 1_000


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
        self._unsigned: dict[int, None] = {}  # hashed, never signed, not started; in order
        self._signing: set[int] = set()  # asked for, the answer not in yet
        self._ask = ask
        self._clock = clock
        self._margin = timedelta(seconds=margin)
        # Held while the state is read or changed, never during a request to the API: a
        # sender whose part is being signed by another thread waits for that answer.
        self._lock = threading.Condition()

    def skip(self, numbers: list[int]) -> None:
        """Parts not to send (S3 holds them already, from a run that was interrupted): never
        signed."""
        with self._lock:
            self._started.update(numbers)

    def hashed(self, number: int) -> None:
        """The part's SHA-256 is known now: it may join the next page asked for."""
        with self._lock:
            if number not in self._started and number not in self._parts:
                self._unsigned[number] = None

    def page_ahead(self, at_least: int) -> list[int]:
        """The parts hashed and not signed yet, as a page to ask for (at most ``REFRESH_BATCH``),
        once ``at_least`` of them wait; else none. The reading thread takes pages ahead of the
        senders and another thread asks for them (``sign``), so that reading never waits for
        the API and a sender rarely waits for a URL: a sender whose part is on a page asked
        for waits for that answer."""
        with self._lock:
            if not self._unsigned or len(self._unsigned) < at_least:
                return []
            batch = self._take_unsigned(REFRESH_BATCH)
            self._signing.update(batch)
            return batch

    def sign(self, page: list[int]) -> None:
        """Ask for a page taken by ``page_ahead``, or several merged, in requests of at most
        ``REFRESH_BATCH`` parts (the API refuses more)."""
        for start in range(0, len(page), REFRESH_BATCH):
            self._sign(page[start : start + REFRESH_BATCH])

    def for_sending(self, number: int) -> dict[str, Any]:
        """The part to send now, signed again first if its URL is about to expire."""
        with self._lock:
            self._started.add(number)
            self._unsigned.pop(number, None)
            while number in self._signing:
                self._lock.wait()
            if not self._stale(number):
                return self._parts[number]
            batch = self._batch(number)
            self._signing.update(batch)
        self._sign(batch)
        with self._lock:
            return self._parts[number]

    def after_expired(self, number: int) -> dict[str, Any]:
        """S3 refused the part's URL as expired: the part signed again."""
        with self._lock:
            while number in self._signing:
                self._lock.wait()
            self._signing.add(number)
        self._sign([number])
        with self._lock:
            return self._parts[number]

    def keep_alive(self) -> None:
        """Move the declaration's expiry on when it is near (at most once per half margin)."""
        with self._lock:
            now = self._clock()
            if not self._near(self._upload_expiry, now) or self._recent(self._refreshed_at, now):
                return
            self._refreshed_at = now  # this thread does it; the others go on
        try:
            self._sign([])
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
        """This part; if it was signed before, the next unsent parts whose URLs are about to
        expire too; then parts hashed and never signed, up to a page."""
        batch = [number]
        if number in self._parts:
            for other in self._numbers[number:]:
                if len(batch) == REFRESH_BATCH:
                    break
                unsent = other in self._parts and other not in self._started
                if unsent and other not in self._signing and self._stale(other):
                    batch.append(other)
        return batch + self._take_unsigned(REFRESH_BATCH - len(batch))

    def _take_unsigned(self, count: int) -> list[int]:
        taken = list(itertools.islice(self._unsigned, max(count, 0)))
        for number in taken:
            del self._unsigned[number]
        return taken

    def _sign(self, numbers: list[int]) -> None:
        """POST .../parts for ``numbers`` (none: a keep-alive), outside the lock; the answer
        stored, and whoever waits for these parts woken, whatever the outcome."""
        try:
            answer = self._ask(numbers)
        except BaseException:
            with self._lock:
                self._signing.difference_update(numbers)
                self._lock.notify_all()
            raise
        with self._lock:
            self._store(answer, len(numbers))
            self._signing.difference_update(numbers)
            self._lock.notify_all()

    def _store(self, answer: dict[str, Any], asked: int) -> None:
        now = self._clock()
        expiry = parse_expiry(answer.get("expires_at"))
        for part in answer.get("parts", []):
            number = part["part_number"]
            self._parts[number] = part
            self._expiry[number] = expiry
            self._signed_at[number] = now
        self._upload_expiry = expiry
        self._refreshed_at = now
        logger.info("signed %d part URLs; the upload now expires at %s", asked, expiry)

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
