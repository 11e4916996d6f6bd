"""Part URLs asked for from the upload API: a page merged from several is split at the API's
limit of REFRESH_BATCH parts per request, which refuses more with a 400."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from filegate.uploads.part_urls import REFRESH_BATCH, PartUrls


def test_a_merged_page_above_the_api_limit_goes_in_requests_of_at_most_the_limit() -> None:
    asked: list[list[int]] = []

    def ask(numbers: list[int]) -> dict[str, Any]:
        asked.append(list(numbers))
        return {"parts": [{"part_number": n, "url": f"https://s3/{n}"} for n in numbers]}

    count = REFRESH_BATCH + 250
    urls = PartUrls({"part_count": count}, ask, lambda: datetime.now(UTC), 60.0)
    # GIVEN pages that queued up while the API answered, merged by a signer (900 + 350)
    urls.sign(list(range(1, count + 1)))
    # THEN no request exceeds the API's limit, and every part is signed, each once
    assert [len(numbers) for numbers in asked] == [REFRESH_BATCH, 250]
    assert sorted(n for numbers in asked for n in numbers) == list(range(1, count + 1))
    assert urls.for_sending(count)["url"] == f"https://s3/{count}"
