"""Per-partner quotas under load on the local stack (issue 12, item 4; docs/quotas.md).

Eight partners declare at once, from many threads, against their limits: for each, exactly
its limit is declared (201), the rest are refused with a 429 naming the quota, nothing
answers 5xx, and `filegate partner usage` counts exactly what was declared. Then one of the
pending uploads arrives and the ingestion (a worker with the function's role) gives its
pending count back, which admits exactly one more.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import urllib3

from tests.e2e.conftest import Stack, filegate, wait_for

DECLARATIONS = 12  # per partner, all in flight together
THREADS = 32
SIZE = 200
BODY = b"q" * SIZE
# Each partner is limited by one quota; its others (and the rate) are far from reach.
LIMITS = {
    "daily_uploads": (["--daily-uploads", "5"], 5),
    "max_pending": (["--max-pending", "3"], 3),
    "daily_bytes": (["--daily-bytes", str(4 * SIZE)], 4),  # room for 4 declarations
}
PARTNERS = [
    "daily_uploads",
    "daily_uploads",
    "daily_uploads",
    "max_pending",
    "max_pending",
    "max_pending",
    "daily_bytes",
    "daily_bytes",
]
THROTTLE_RETRIES = 20


@pytest.fixture(scope="module")
def partners(stack: Stack) -> list[dict[str, Any]]:
    added = []
    for number, quota in enumerate(PARTNERS):
        options, limit = LIMITS[quota]
        done = filegate(
            stack.state_dir,
            *("partner", "add", f"quota {number}", *options, "--rate", "1000"),
            *("--output", "json"),
        )
        assert done.returncode == 0, done.stderr
        added.append({**json.loads(done.stdout), "quota": quota, "limit": limit})
    return added


def declare(
    stack: Stack, http: urllib3.PoolManager, partner: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """POST /uploads; a throttle of the local function URL (all workers busy: Lambda's 429,
    which names no quota) is sent again, as a client would."""
    body = json.dumps(
        {
            "filename": "load.bin",
            "size": SIZE,
            "sha256": hashlib.sha256(BODY).hexdigest(),
            "content_type": "application/octet-stream",
        }
    ).encode()
    for _ in range(THROTTLE_RETRIES):
        answer = http.request(
            "POST",
            stack.env["upload_api_url"] + "uploads",
            headers={"x-api-key": partner["api_key"]},
            body=body,
            retries=False,
        )
        document = dict(json.loads(answer.data))
        if answer.status != 429 or "error" in document:
            headers = {"retry-after": answer.headers.get("Retry-After")}
            return answer.status, document | {"_headers": headers}
    raise AssertionError(f"still throttled after {THROTTLE_RETRIES} tries")


@pytest.fixture(scope="module")
def answers(stack: Stack, partners: list[dict[str, Any]]) -> dict[str, list[tuple[int, Any]]]:
    """Every partner's DECLARATIONS declarations, all at once; the answers by partner id."""
    http = urllib3.PoolManager(maxsize=THREADS)
    calls = [p for p in partners for _ in range(DECLARATIONS)]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(lambda p: (p["partner_id"], declare(stack, http, p)), calls))
    by_partner: dict[str, list[tuple[int, Any]]] = {p["partner_id"]: [] for p in partners}
    for partner_id, answer in results:
        by_partner[partner_id].append(answer)
    return by_partner


def usage(stack: Stack, partner_id: str) -> dict[str, dict[str, Any]]:
    done = filegate(stack.state_dir, "partner", "usage", partner_id, "--output", "json")
    assert done.returncode == 0, done.stderr
    return {use["quota"]: use for use in json.loads(done.stdout)["quotas"]}


def test_each_partner_gets_exactly_its_limit_and_429s_naming_its_quota(
    partners: list[dict[str, Any]], answers: dict[str, list[tuple[int, Any]]]
) -> None:
    for partner in partners:
        got = answers[partner["partner_id"]]
        statuses = sorted(status for status, _ in got)
        assert statuses == [201] * partner["limit"] + [429] * (DECLARATIONS - partner["limit"])
        for status, document in got:
            if status == 429:
                error = document["error"]
                assert (error["code"], error["quota"]) == ("quota_exceeded", partner["quota"])
                assert error["limit"] == (
                    partner["limit"] * SIZE
                    if partner["quota"] == "daily_bytes"
                    else partner["limit"]
                )
                assert int(document["_headers"]["retry-after"]) >= 1


def test_no_declaration_answers_5xx(answers: dict[str, list[tuple[int, Any]]]) -> None:
    assert [s for got in answers.values() for s, _ in got if s >= 500] == []


def test_the_counters_equal_what_was_declared(
    stack: Stack, partners: list[dict[str, Any]], answers: dict[str, list[tuple[int, Any]]]
) -> None:
    for partner in partners:
        declared = [doc for status, doc in answers[partner["partner_id"]] if status == 201]
        uses = usage(stack, partner["partner_id"])
        assert uses["daily_uploads"]["used"] == len(declared)
        assert uses["daily_bytes"]["used"] == len(declared) * SIZE
        assert uses["max_pending"]["used"] == len(declared)
        for plan in declared:
            item = stack.item(plan["key"])
            assert item is not None
            assert item["processing_status"]["S"] == "PENDING"


def test_an_upload_that_arrives_gives_its_pending_count_back_once(
    stack: Stack, partners: list[dict[str, Any]], answers: dict[str, list[tuple[int, Any]]]
) -> None:
    # GIVEN a partner at its max_pending (3), WHEN one of its uploads arrives as declared
    partner = next(p for p in partners if p["quota"] == "max_pending")
    plan = next(doc for status, doc in answers[partner["partner_id"]] if status == 201)
    put = urllib3.PoolManager().request(
        "PUT", plan["url"], body=BODY, headers={**plan["headers"], "content-length": str(SIZE)}
    )
    assert put.status == 200, put.data
    # THEN the ingestion judges it and gives the count back (2 pending)
    wait_for(lambda: usage(stack, partner["partner_id"])["max_pending"]["used"] == 2, timeout=30)
    item = stack.item(plan["key"])
    assert item is not None
    assert item["processing_status"]["S"] == "ACCEPTED"
    assert "quota_partner" not in item
    # and exactly one more declaration is admitted
    http = urllib3.PoolManager()
    again = [declare(stack, http, partner)[0] for _ in range(2)]
    assert again == [201, 429]
    assert usage(stack, partner["partner_id"])["max_pending"]["used"] == 3


def test_raising_a_limit_admits_more_at_once(
    stack: Stack, partners: list[dict[str, Any]], answers: dict[str, list[tuple[int, Any]]]
) -> None:
    # The runbook's step 9: a partner at its daily_uploads (5) gets 2 more by `partner update`.
    partner = next(p for p in partners if p["quota"] == "daily_uploads")
    done = filegate(
        stack.state_dir, "partner", "update", partner["partner_id"], "--daily-uploads", "7"
    )
    assert done.returncode == 0, done.stderr
    http = urllib3.PoolManager()
    assert [declare(stack, http, partner)[0] for _ in range(3)] == [201, 201, 429]
    use = usage(stack, partner["partner_id"])["daily_uploads"]
    assert (use["limit"], use["used"], use["left"]) == (7, 7, 0)
