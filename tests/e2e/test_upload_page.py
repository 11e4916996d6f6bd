"""The browser upload page end to end: Debian's Chromium, headless, against the local stack.

Playwright drives /usr/bin/chromium (it never downloads a browser of its own): the page comes
from the stack's upload API at GET /, a partner key from `filegate partner add` goes in the
key field, files go on the file input, and each row must reach the ledger's verdict, which the
ledger itself confirms. Set FILEGATE_SCREENSHOT=docs/upload-page.png to save the page after
the multi-file upload (tests write nothing to the repository otherwise).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, sync_playwright

from tests.e2e.conftest import REPO, Stack, filegate, wait_for

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and quiet: this machine's network is closed, so Chromium must not phone home.
# Playwright gives every launch a fresh, empty profile (--user-data-dir) of its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VERDICT_TIMEOUT_MS = 120_000
MiB = 1024 * 1024
PRESIGN_EXPIRY = timedelta(seconds=900)  # the template's default PresignExpirySeconds

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no /usr/bin/chromium: `apt-get install chromium` (CI's .ci/run installs it)",
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def console() -> list[str]:
    """What the page wrote to the console, and its uncaught errors."""
    return []


@pytest.fixture
def page(browser: Browser, stack: Stack, console: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 960, "height": 900})
    page = context.new_page()
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.goto(stack.env["upload_api_url"])
    yield page
    context.close()
    # No script error and no Content-Security-Policy violation, whatever the test did.
    assert not [m for m in console if m.startswith("pageerror") or "Security Policy" in m]


@pytest.fixture(scope="module")
def partner(stack: Stack) -> dict[str, Any]:
    add = ("partner", "add", "browser partner", "--max-size", "200000000", "--output", "json")
    done = filegate(stack.state_dir, *add)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def row_of(page: Page, filename: str) -> Locator:
    return page.locator("li.file", has=page.locator(".name", has_text=filename))


def finished(page: Page, filename: str) -> Locator:
    """The file's row once it has a final state (a verdict or an error)."""
    row = row_of(page, filename)
    row.and_(page.locator("li.file:not(.busy)")).wait_for(timeout=VERDICT_TIMEOUT_MS)
    return row


def assert_accepted(stack: Stack, row: Locator) -> dict[str, Any]:
    assert row.get_attribute("data-status") == "ACCEPTED", row.inner_text()
    key = row.get_attribute("data-key")
    assert key
    item = stack.item(key)
    assert item is not None
    assert item["processing_status"]["S"] == "ACCEPTED"
    return item


def test_a_file_is_uploaded_and_the_ledger_accepts_it(
    page: Page, stack: Stack, partner: dict[str, Any], tmp_path: Path, console: list[str]
) -> None:
    report = tmp_path / "report 2026-10.csv"
    report.write_text("id,amount\n1,100\n2,250\n")

    page.fill("#api-key", partner["api_key"])
    page.set_input_files("#file-input", str(report))
    row = finished(page, report.name)

    item = assert_accepted(stack, row)
    assert item["size"]["N"] == str(report.stat().st_size)
    assert str(row.get_attribute("data-key")).startswith(partner["prefix"])
    assert "Accepted" in row.locator(".detail").inner_text()
    # The key stays in this tab's sessionStorage: not in the URL, not in the console.
    assert page.evaluate("sessionStorage.getItem('filegate.apiKey')") == partner["api_key"]
    assert partner["api_key"] not in page.url
    assert not [m for m in console if partner["api_key"] in m]


def test_several_files_one_of_them_multipart_are_all_accepted(
    page: Page, stack: Stack, partner: dict[str, Any], tmp_path: Path
) -> None:
    files = {
        "invoices-2026-10.csv": b"invoice,amount,currency\nINV-1041,1200.00,EUR\n" * 200,
        "orders.json": json.dumps([{"order": n, "qty": n % 7} for n in range(500)]).encode(),
        "archive-2026-10.bin": hashlib.sha256(b"seed").digest() * (70 * MiB // 32),
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)

    page.fill("#api-key", partner["api_key"])
    page.set_input_files("#file-input", [str(tmp_path / name) for name in files])
    rows = {name: finished(page, name) for name in files}

    for name, row in rows.items():
        item = assert_accepted(stack, row)
        assert item["size"]["N"] == str(len(files[name]))
    assert page.locator("#summary").inner_text() == "3 accepted"
    screenshot = os.environ.get("FILEGATE_SCREENSHOT")
    if screenshot:
        page.locator("#api-key").blur()
        page.mouse.move(0, 0)
        page.screenshot(path=str(REPO / screenshot), full_page=True)


def test_a_wrong_key_shows_the_401_message(page: Page, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")

    page.fill("#api-key", "fg_nobody_not-a-real-secret")
    page.set_input_files("#file-input", str(notes))
    row = finished(page, notes.name)

    assert row.get_attribute("data-error-status") == "401"
    assert row.locator(".badge").inner_text() == "Error 401"
    assert "The API key was not accepted (HTTP 401)" in row.locator(".detail").inner_text()
    assert "not accepted" in page.locator("#key-message").inner_text()
    assert page.get_attribute("#api-key", "aria-invalid") == "true"


@pytest.fixture(scope="module")
def strict_partner(stack: Stack) -> dict[str, Any]:
    """A partner that may send CSV files of up to 10 bytes."""
    add = ("partner", "add", "strict", "--max-size", "10", "--allow-type", "text/csv")
    done = filegate(stack.state_dir, *add, "--output", "json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize(
    ("filename", "content", "status", "message"),
    [
        ("big.csv", b"a,b\n" * 10, "413", "too large for your account (HTTP 413)"),
        ("data.json", b"{}", "415", "may not be sent by your account (HTTP 415)"),
    ],
)
def test_a_file_the_partner_may_not_send_shows_why(
    page: Page,
    strict_partner: dict[str, Any],
    tmp_path: Path,
    filename: str,
    content: bytes,
    status: str,
    message: str,
) -> None:
    (tmp_path / filename).write_bytes(content)

    page.fill("#api-key", strict_partner["api_key"])
    page.set_input_files("#file-input", str(tmp_path / filename))
    row = finished(page, filename)

    assert row.get_attribute("data-error-status") == status
    assert message in row.locator(".detail").inner_text()


def test_a_partner_over_its_daily_quota_is_told_which_at_once(
    page: Page, stack: Stack, tmp_path: Path
) -> None:
    # GIVEN a partner that may declare one upload a day, which it has used
    add = ("partner", "add", "one a day", "--daily-uploads", "1", "--output", "json")
    done = filegate(stack.state_dir, *add)
    assert done.returncode == 0, done.stderr
    key = json.loads(done.stdout)["api_key"]
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("one\n")
    second.write_text("two\n")
    page.fill("#api-key", key)
    page.set_input_files("#file-input", str(first))
    assert_accepted(stack, finished(page, first.name))

    # WHEN it sends another
    page.set_input_files("#file-input", str(second))
    row = finished(page, second.name)

    # THEN the page names the quota (no retries: the quota resets at the next UTC day)
    assert row.get_attribute("data-error-status") == "429"
    detail = row.locator(".detail").inner_text()
    assert "Your account reached its daily_uploads quota (HTTP 429)" in detail
    assert "1 of 1 used" in detail


def test_a_refused_part_aborts_the_multipart_upload(
    page: Page, stack: Stack, partner: dict[str, Any], tmp_path: Path
) -> None:
    big = tmp_path / "refused.bin"
    big.write_bytes(bytes(70 * MiB))
    page.route(
        "**/*partNumber=*",
        lambda route: route.fulfill(
            status=403,
            headers={"Access-Control-Allow-Origin": "*"},
            body="<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        ),
    )

    page.fill("#api-key", partner["api_key"])
    page.set_input_files("#file-input", str(big))
    row = finished(page, big.name)

    assert "The storage refused the upload (HTTP 403): Access Denied" in row.inner_text()
    item = stack.item(str(row.get_attribute("data-key")))
    assert item is not None
    assert item["processing_status"]["S"] == "ABORTED"


def test_no_key_asks_for_one_and_uploads_nothing(page: Page, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")

    page.set_input_files("#file-input", str(notes))

    assert "Enter your API key first" in page.locator("#key-message").inner_text()
    assert page.locator("li.file").count() == 0


@pytest.mark.parametrize("slice_bytes", [7, 63, 64, 65, 1000])
def test_the_sliced_sha256_for_large_files_matches_hashlib(page: Page, slice_bytes: int) -> None:
    # Files are hashed a slice at a time by the page's own SHA-256: checked here on small
    # inputs, at every padding boundary, with slices that cut the 64-byte blocks.
    rng = random.Random(slice_bytes)
    for size in (0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 4099):
        data = rng.randbytes(size)
        digest = page.evaluate(
            """async ([data, sliceBytes]) => {
                const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
                return window.filegateSha256Sliced(new Blob([bytes]), sliceBytes);
            }""",
            [base64.b64encode(data).decode(), slice_bytes],
        )
        assert digest == hashlib.sha256(data).hexdigest(), size


# A Blob whose slices' streams never answer a read for the first `stalls` streams asked for
# (Chromium has been seen never to answer after several GiB read), then read as a Blob reads.
STALLING_BLOB = """(bytes, stalls) => {
    const real = new Blob([bytes]);
    const counts = { streams: 0 };
    const never = () => new ReadableStream({ type: "bytes", pull: () => new Promise(() => {}) });
    return { counts, blob: { size: real.size, slice: (start, end) => {
        const part = real.slice(start, end);
        return { size: part.size, arrayBuffer: () => part.arrayBuffer(),
            stream: () => (counts.streams++ < stalls ? never() : part.stream()) };
    } } };
}"""


def test_a_slice_read_the_browser_never_answers_is_read_again(page: Page) -> None:
    # GIVEN a file whose first two slice reads never answer
    data = random.Random(3).randbytes(3 * 1000 + 7)
    # WHEN the page hashes it a slice at a time, giving up on a read after 100 ms
    found = page.evaluate(
        f"""async (data) => {{
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const {{ counts, blob }} = ({STALLING_BLOB})(bytes, 2);
            const digest = await Promise.race([  // a page that waits for ever: "hung"
                window.filegateSha256Sliced(blob, 1000, undefined, 100),
                new Promise((resolve) => setTimeout(resolve, 20000, "hung")),
            ]);
            return {{ digest, streams: counts.streams }};
        }}""",
        base64.b64encode(data).decode(),
    )
    # THEN the first slice was read again from a new stream, which went on to the end
    assert found == {"digest": hashlib.sha256(data).hexdigest(), "streams": 2 + 1}


def test_a_file_the_browser_stops_reading_fails_saying_so(page: Page) -> None:
    # GIVEN a file whose slice reads never answer
    # WHEN the page hashes it, giving up on a read after 50 ms
    found = page.evaluate(
        f"""async () => {{
            const {{ counts, blob }} = ({STALLING_BLOB})(new Uint8Array(5000), 1000);
            try {{
                const digest = await Promise.race([  // a page that waits for ever: "hung"
                    window.filegateSha256Sliced(blob, 1000, undefined, 50),
                    new Promise((resolve) => setTimeout(resolve, 20000, "hung")),
                ]);
                return {{ error: null, digest }};
            }} catch (error) {{
                return {{ error: error.message, streams: counts.streams }};
            }}
        }}"""
    )
    # THEN it fails after three attempts at the first slice, saying what happened and what to do
    assert found.get("streams") == 3, found
    assert "stopped reading the file" in found["error"]
    assert "choose it again" in found["error"]


def test_the_page_hashes_with_hash_wasm_under_its_own_policy(page: Page, stack: Stack) -> None:
    # GIVEN the page as the stack's API serves it from the Lambda zip, under its CSP, which
    # admits WebAssembly and still no eval() of JavaScript
    policy = page.request.get(stack.env["upload_api_url"]).headers["content-security-policy"]
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src")).split()
    assert "'wasm-unsafe-eval'" in script_src
    assert not {"'unsafe-eval'", "'unsafe-inline'", "*", "data:", "blob:"} & set(script_src)
    data = random.Random(11).randbytes(3 * MiB + 5)
    # WHEN it hashes a file a slice at a time, as it hashes every file it sends
    found = page.evaluate(
        """async (data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            return {
                library: typeof hashwasm.createSHA256,
                digest: await window.filegateSha256Sliced(new Blob([bytes]), 1 << 20),
            };
        }""",
        base64.b64encode(data).decode(),
    )
    # THEN hash-wasm's WebAssembly SHA-256 ran (the fixture sees no CSP violation) and agrees
    # with hashlib
    assert found == {"library": "function", "digest": hashlib.sha256(data).hexdigest()}


def declared_expiry_moved_on(item: dict[str, Any]) -> bool:
    """The ledger's expires_at is past what the declaration got (first_seen_at + 900 s)."""
    declared_at = datetime.fromisoformat(item["first_seen_at"]["S"])
    return datetime.fromisoformat(item["expires_at"]["S"]) > declared_at + PRESIGN_EXPIRY


def test_a_part_refused_as_expired_is_signed_again_and_the_upload_is_accepted(
    page: Page, stack: Stack, partner: dict[str, Any], tmp_path: Path
) -> None:
    big = tmp_path / "slow link.bin"
    big.write_bytes(hashlib.sha256(b"slow").digest() * (66 * MiB // 32))
    refused: list[str] = []

    def expire_once(route: Route) -> None:
        # S3's answer to a presigned URL past X-Amz-Expires; the emulator gives it too, but only
        # once the URL has really expired, so the test forges it for the first part.
        if refused:
            route.continue_()
            return
        refused.append(route.request.url)
        route.fulfill(
            status=403,
            headers={"Access-Control-Allow-Origin": "*"},
            body="<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        )

    page.route(lambda url: part_number(url) == 2, expire_once)
    page.fill("#api-key", partner["api_key"])
    page.set_input_files("#file-input", str(big))
    row = finished(page, big.name)

    assert len(refused) == 1
    item = assert_accepted(stack, row)
    assert declared_expiry_moved_on(item)


def test_part_urls_about_to_expire_are_signed_again_before_they_are_sent(
    page: Page, stack: Stack, partner: dict[str, Any], tmp_path: Path
) -> None:
    big = tmp_path / "later.bin"
    big.write_bytes(hashlib.sha256(b"later").digest() * (66 * MiB // 32))
    # The page's clock 14.5 minutes ahead: every URL of the plan (900 s) is about to expire.
    page.clock.set_system_time(datetime.now(UTC) + timedelta(minutes=14, seconds=30))

    page.fill("#api-key", partner["api_key"])
    page.set_input_files("#file-input", str(big))
    row = finished(page, big.name)

    item = assert_accepted(stack, row)
    assert declared_expiry_moved_on(item)


def refuse_as_bad_digest(route: Route) -> None:
    """S3's answer to a part whose bytes do not match its SHA-256 (the test in S3's place)."""
    route.fulfill(
        status=400,
        headers={"Access-Control-Allow-Origin": "*"},
        body="<Error><Code>BadDigest</Code><Message>The SHA256 you specified did not"
        " match the calculated checksum.</Message></Error>",
    )


def refused_every_time(page: Page, matching: Callable[[str], bool]) -> list[str]:
    """S3 (the test in its place) answers BadDigest to every PUT to a URL ``matching``
    accepts; the list of the URLs it refused, as they come."""
    refused: list[str] = []

    def damaged(route: Route) -> None:
        if route.request.method != "PUT":
            route.continue_()
            return
        refused.append(route.request.url)
        refuse_as_bad_digest(route)

    page.route(matching, damaged)
    return refused


def test_a_part_s3_refuses_for_its_checksum_is_read_and_sent_again_and_accepted(
    page: Page, stack: Stack, partner: dict[str, Any], tmp_path: Path
) -> None:
    # GIVEN part 2 damaged on its way once: S3 (here, the test in its place) answers BadDigest
    big = tmp_path / "flaky link.bin"
    big.write_bytes(hashlib.sha256(b"flaky").digest() * (66 * MiB // 32))
    refused: list[str] = []
    signed: list[dict[str, Any]] = []

    def damaged_once(route: Route) -> None:
        if refused:
            route.continue_()
            return
        refused.append(route.request.url)
        refuse_as_bad_digest(route)

    def record_signing(route: Route) -> None:
        if route.request.method == "POST":
            signed.append(json.loads(route.request.post_data or "{}"))
        route.continue_()

    page.route(lambda url: part_number(url) == 2, damaged_once)
    page.route("**/uploads/*/parts", record_signing)
    page.fill("#api-key", partner["api_key"])
    page.set_input_files("#file-input", str(big))
    row = finished(page, big.name)

    # THEN the page sent part 2 again and the upload was ACCEPTED; each part's URL was asked
    # for with the SHA-256 of that part's slice
    assert len(refused) == 1
    assert_accepted(stack, row)
    data = big.read_bytes()
    size = 8 * MiB
    asked = {p["part_number"]: p["checksum_sha256"] for body in signed for p in body["parts"]}
    assert asked[1] == base64.b64encode(hashlib.sha256(data[:size]).digest()).decode()
    assert asked[9] == base64.b64encode(hashlib.sha256(data[8 * size :]).digest()).decode()


def test_a_part_s3_refuses_for_its_checksum_every_time_ends_the_upload_rejected(
    page: Page, stack: Stack, partner: dict[str, Any], tmp_path: Path
) -> None:
    # GIVEN part 2 damaged on its way every time: S3 (here, the test in its place) answers
    # BadDigest to each attempt
    big = tmp_path / "broken link.bin"
    big.write_bytes(hashlib.sha256(b"broken").digest() * (66 * MiB // 32))
    refused = refused_every_time(page, lambda url: part_number(url) == 2)
    page.fill("#api-key", partner["api_key"])
    page.set_input_files("#file-input", str(big))
    row = finished(page, big.name)

    # THEN the page sent part 2 four times, then said which part failed and why, and the
    # upload is REJECTED in the ledger, naming the part, with nothing left open in S3
    assert len(refused) == 4
    said = row.inner_text()
    assert "Part 2 of broken link.bin did not match its SHA-256 (BadDigest) after 4" in said
    assert "The upload is REJECTED." in said
    item = stack.item(str(row.get_attribute("data-key")))
    assert item is not None
    assert item["processing_status"]["S"] == "REJECTED"
    assert item["reason"]["S"].startswith("S3 refused the bytes sent for part 2 as not")
    uploads = stack.s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    assert [u for u in uploads if u["Key"] == row.get_attribute("data-key")] == []


def test_a_file_s3_refuses_for_its_declared_sha256_every_time_ends_rejected_with_nothing_stored(
    page: Page, stack: Stack, partner: dict[str, Any], tmp_path: Path
) -> None:
    # GIVEN a one-PUT file whose bytes S3 (the test in its place) refuses as not matching the
    # SHA-256 declared for it, every time (the file changed after it was hashed)
    small = tmp_path / f"changed {uuid.uuid4().hex[:8]}.csv"
    small.write_text("id,amount\n1,100\n")
    refused = refused_every_time(
        page, lambda url: "X-Amz-Signature" in url and part_number(url) is None
    )
    page.fill("#api-key", partner["api_key"])
    page.set_input_files("#file-input", str(small))
    row = finished(page, small.name)

    # THEN the page sent it four times, said why it gave up, and the upload is REJECTED,
    # the reason naming the declared SHA-256; nothing is in the bucket
    assert len(refused) == 4
    said = row.inner_text()
    assert "did not match the SHA-256 declared for it (BadDigest) after 4 attempts" in said
    assert "The upload is REJECTED." in said
    key = str(row.get_attribute("data-key"))
    item = stack.item(key)
    assert item is not None
    assert item["processing_status"]["S"] == "REJECTED"
    declared = hashlib.sha256(small.read_bytes()).hexdigest()
    assert f"not matching the declared sha256 {declared}" in item["reason"]["S"]
    assert stack.s3.list_objects_v2(Bucket=stack.bucket, Prefix=key).get("KeyCount") == 0


def part_number(url: str) -> int | None:
    found = re.search(r"[?&]partNumber=(\d+)", url)
    return int(found.group(1)) if found else None


def parts_sent(page: Page) -> list[int]:
    """The part numbers of the PUTs ``page`` sends from now on (0 for a single PUT)."""
    sent: list[int] = []
    page.on(
        "request",
        lambda request: (
            sent.append(part_number(request.url) or 0) if request.method == "PUT" else None
        ),
    )
    return sent


def held_parts(stack: Stack, name: str, at_least: int) -> tuple[str, list[dict[str, Any]]] | None:
    """The key and the parts the emulator holds for the open multipart upload of ``name``
    (ListParts); None until there are ``at_least``."""
    uploads = stack.s3.list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])
    for upload in (u for u in uploads if u["Key"].endswith("/" + name)):
        listed = stack.s3.list_parts(
            Bucket=stack.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        ).get("Parts", [])
        if len(listed) >= at_least:
            return upload["Key"], list(listed)
    return None


def reload_while_parts_are_held(
    page: Page, stack: Stack, api_key: str, path: Path, init_script: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Choose ``path`` on ``page`` with parts 3 and up left without an answer, and reload the
    page (adding ``init_script``) once S3 holds parts 1 and 2: the upload's key and those parts."""
    holding = [True]

    def hold(route: Route) -> None:
        # Left pending while holding: the page waits for S3's answer until it is reloaded.
        if not holding[0]:
            route.continue_()

    page.route(lambda url: (part_number(url) or 0) >= 3, hold)
    page.fill("#api-key", api_key)
    page.set_input_files("#file-input", str(path))
    # Playwright runs the route's handler only while this thread is inside a Playwright call:
    # the probe lets it run between two looks at ListParts.
    key, held = wait_for(
        lambda: page.wait_for_timeout(100) or held_parts(stack, path.name, 2),
        timeout=VERDICT_TIMEOUT_MS / 1000,
    )
    page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" (a file is busy)
    if init_script:
        page.add_init_script(init_script)
    page.reload()
    # Only now: the old page's part requests, held until it went, were never sent.
    holding[0] = False
    return key, held


def test_a_reloaded_page_resumes_when_the_same_file_is_chosen_again(
    page: Page, stack: Stack, partner: dict[str, Any], tmp_path: Path
) -> None:
    # GIVEN a 9-part upload whose parts 3 and up never get an answer, and a page reloaded once
    # S3 holds parts 1 and 2
    big = tmp_path / "reloaded.bin"
    big.write_bytes(os.urandom(66 * MiB))
    key, held = reload_while_parts_are_held(page, stack, partner["api_key"], big)

    # WHEN the same file is chosen again on the reloaded page
    sent = parts_sent(page)
    page.set_input_files("#file-input", str(big))
    row = finished(page, big.name)

    # THEN the parts S3 held were not sent again, the row says so, the ledger ACCEPTS the upload
    # begun before the reload, and the page forgot it
    assert [p["PartNumber"] for p in held] == [1, 2]
    assert sorted(sent) == list(range(3, 10))
    assert row.get_attribute("data-resumed-bytes") == str(16 * MiB)
    assert "2 stored before the page was reloaded" in row.locator(".detail").inner_text()
    assert row.get_attribute("data-key") == key
    assert_accepted(stack, row)
    assert page.evaluate("Object.keys(localStorage).length") == 0


# Counts, in the page, the bytes it takes from a chosen file (a File or a slice of one): read
# by its script through Blob methods or a FileReader (`filegateBytesRead`), of which those read
# into a new buffer each time (`Blob.arrayBuffer()`/`bytes()`, a FileReader) separately
# (`filegateFreshBufferBytes`: memory that waits for the garbage collector); and handed to
# XMLHttpRequest as a body, which the browser reads from the file as it sends it
# (`filegateBytesSent`). Any other body (bytes in memory) is `filegateBytesCopied`.
COUNT_BYTES_READ = """
(() => {
  Object.assign(window, {
    filegateBytesRead: 0, filegateFreshBufferBytes: 0, filegateBytesSent: 0, filegateBytesCopied: 0,
  });
  const slices = new WeakSet();
  const fromFile = (blob) => blob instanceof File || slices.has(blob);
  const slice = Blob.prototype.slice;
  Blob.prototype.slice = function (...args) {
    const part = slice.apply(this, args);
    if (fromFile(this)) slices.add(part);
    return part;
  };
  const wrap = (owner, name, blobOf, fresh) => {
    const original = owner[name];
    if (!original) return;
    owner[name] = function (...args) {
      const blob = blobOf(this, args);
      if (fromFile(blob)) {
        window.filegateBytesRead += blob.size;
        if (fresh) window.filegateFreshBufferBytes += blob.size;
      }
      return original.apply(this, args);
    };
  };
  for (const name of ["arrayBuffer", "bytes", "text"]) {
    wrap(Blob.prototype, name, (blob) => blob, true);
  }
  wrap(Blob.prototype, "stream", (blob) => blob, false);
  for (const name of ["readAsArrayBuffer", "readAsText", "readAsDataURL", "readAsBinaryString"]) {
    wrap(FileReader.prototype, name, (_, args) => args[0], true);
  }
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (body) {
    if (body instanceof Blob && fromFile(body)) window.filegateBytesSent += body.size;
    else if (body && (body.size || body.byteLength)) {
      window.filegateBytesCopied += body.size || body.byteLength;
    }
    return send.call(this, body);
  };
})();
"""
HASH_FIRST_MAX = 64 * MiB  # the page's HASH_FIRST_MAX_BYTES


def counting_reads(page: Page) -> None:
    page.add_init_script(COUNT_BYTES_READ)
    page.reload()


def bytes_taken(page: Page) -> dict[str, int]:
    """What the page took from the chosen files since it loaded (see COUNT_BYTES_READ)."""
    return dict(
        page.evaluate(
            """({read: window.filegateBytesRead, fresh: window.filegateFreshBufferBytes,
                sent: window.filegateBytesSent, copied: window.filegateBytesCopied})"""
        )
    )


def read_once_sent_from_the_file(size: int) -> dict[str, int]:
    """What the page takes of ``size`` bytes of files sent once: each byte read once by its
    script (into a buffer it reuses), sent once by the browser from the file, none copied."""
    return {"read": size, "fresh": 0, "sent": size, "copied": 0}


def write_random(path: Path, size: int) -> str:
    """``size`` random bytes (each part different) at ``path``; their SHA-256 (hex)."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for offset in range(0, size, 16 * MiB):
            chunk = os.urandom(min(16 * MiB, size - offset))
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def large_partner(stack: Stack) -> dict[str, Any]:
    """A partner that may send files of a few hundred MiB."""
    add = ("partner", "add", "large files", "--max-size", str(16 * HASH_FIRST_MAX))
    done = filegate(stack.state_dir, *add, "--output", "json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_each_byte_is_read_once_by_the_page_into_one_buffer_and_sent_from_the_file(
    page: Page, stack: Stack, partner: dict[str, Any], tmp_path: Path
) -> None:
    # GIVEN a file sent in one PUT and one sent in 9 parts
    small, parted = tmp_path / "one put.csv", tmp_path / "nine parts.bin"
    small.write_text("id,amount\n1,100\n" * 1000)
    write_random(parted, 66 * MiB)
    counting_reads(page)

    # WHEN the page uploads them
    page.fill("#api-key", partner["api_key"])
    page.set_input_files("#file-input", [str(small), str(parted)])
    rows = [finished(page, small.name), finished(page, parted.name)]

    # THEN both are ACCEPTED; the page's script read each byte of each file once, into a buffer
    # it reuses (no new buffer per slice for the garbage collector), and handed the browser the
    # file's own slices to send (no copy of the bytes in memory)
    for row in rows:
        assert_accepted(stack, row)
    total = small.stat().st_size + parted.stat().st_size
    assert bytes_taken(page) == read_once_sent_from_the_file(total)


# Records each change of a row's progress bar: [performance.now(), its width].
WATCH_PROGRESS = """
window.filegateProgress = [];
new MutationObserver((changes) => {
  for (const change of changes) {
    if (change.target.classList.contains("fill")) {
      window.filegateProgress.push([performance.now(), change.target.style.width]);
    }
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["style"] });
"""
PROGRESS_MS = 250  # the page's PROGRESS_MS


def test_the_progress_bar_moves_at_most_four_times_a_second(
    page: Page, stack: Stack, partner: dict[str, Any], tmp_path: Path
) -> None:
    # GIVEN a file of 9 parts, and a page that records each change of its progress bar
    parted = tmp_path / "nine parts watched.bin"
    write_random(parted, 66 * MiB)
    page.add_init_script(WATCH_PROGRESS)
    page.reload()

    # WHEN the page uploads it (the browser reports each part's progress many times a second)
    page.fill("#api-key", partner["api_key"])
    page.set_input_files("#file-input", str(parted))
    assert_accepted(stack, finished(page, parted.name))

    # THEN the bar showed the progress while the parts were sent, at most once per PROGRESS_MS
    # (each change costs the page a layout and a paint): between the first and the last shown,
    # no more changes than that time allows (and two for the observer's own delays)
    changes = page.evaluate("window.filegateProgress")  # widths: "0.0%" ... "100.0%"
    moving = [at for at, width in changes if width and 0 < float(width.rstrip("%")) < 100]
    assert moving, "the bar never showed the progress between 0 and 100 %"
    assert len(moving) <= 2 + (moving[-1] - moving[0]) / PROGRESS_MS, moving


def record_posts(page: Page, pattern: str, bodies: list[dict[str, Any]]) -> None:
    """Keep the JSON body of each POST to the upload API's URLs that match ``pattern``."""

    def keep(route: Route) -> None:
        if route.request.method == "POST":
            bodies.append(json.loads(route.request.post_data or "{}"))
        route.continue_()

    page.route(pattern, keep)


def test_a_file_above_64_mib_is_read_once_and_its_sha256_given_at_completion(
    page: Page, stack: Stack, large_partner: dict[str, Any], tmp_path: Path
) -> None:
    # GIVEN a file just above what the page hashes before declaring it (9 parts)
    big = tmp_path / "above hash first.bin"
    sha256 = write_random(big, HASH_FIRST_MAX + MiB)
    counting_reads(page)
    declared: list[dict[str, Any]] = []
    completed: list[dict[str, Any]] = []
    record_posts(page, "**/uploads", declared)
    record_posts(page, "**/uploads/*/complete", completed)

    # WHEN the page uploads it
    page.fill("#api-key", large_partner["api_key"])
    page.set_input_files("#file-input", str(big))
    row = finished(page, big.name)

    # THEN it declared no SHA-256, gave the file's at completion, read each byte once, and the
    # ledger ACCEPTED it with that SHA-256 declared
    item = assert_accepted(stack, row)
    assert [("sha256" in body) for body in declared] == [False]
    assert [body.get("sha256") for body in completed] == [sha256]
    assert len(completed[0]["parts"]) == 9
    assert item["declared_sha256"]["S"] == sha256
    assert bytes_taken(page) == read_once_sent_from_the_file(big.stat().st_size)


def test_a_file_above_64_mib_the_stack_makes_one_put_is_hashed_before_it_is_declared(
    page: Page, stack: Stack, large_partner: dict[str, Any], tmp_path: Path
) -> None:
    # GIVEN a stack whose multipart threshold is above this file's size: it answers a declaration
    # without sha256 as the API does for a single PUT, 400 naming sha256 and nothing declared
    # (tests/functional/test_upload_api.py, test_a_single_put_upload_must_declare_its_sha256)
    big = tmp_path / "one put above hash first.bin"
    sha256 = write_random(big, HASH_FIRST_MAX + MiB)
    counting_reads(page)
    declared: list[dict[str, Any]] = []
    completed: list[dict[str, Any]] = []
    refusal = {"code": "invalid_request", "message": "sha256 is required", "field": "sha256"}

    def single_put_stack(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        declared.append(body)
        if "sha256" in body:
            route.continue_()
        else:
            route.fulfill(status=400, json={"error": refusal})

    page.route("**/uploads", single_put_stack)
    record_posts(page, "**/uploads/*/complete", completed)

    # WHEN the page uploads it
    page.fill("#api-key", large_partner["api_key"])
    page.set_input_files("#file-input", str(big))
    row = finished(page, big.name)

    # THEN it hashed the file and declared again with its SHA-256; the completion repeats no
    # SHA-256 and the ledger ACCEPTED the one declared. (The stack behind the route plans parts,
    # which the page hashes as it sends them: read twice, the one case it is. A stack whose
    # threshold is above the file plans one PUT, which the browser sends from the file.)
    item = assert_accepted(stack, row)
    assert [body.get("sha256") for body in declared] == [None, sha256]
    assert ["sha256" in body for body in completed] == [False]
    assert item["declared_sha256"]["S"] == sha256
    size = big.stat().st_size
    assert bytes_taken(page) == {**read_once_sent_from_the_file(size), "read": 2 * size}


@pytest.mark.parametrize("changed", [False, True], ids=["same file", "held part changed"])
def test_a_reloaded_page_resumes_a_file_above_64_mib(
    page: Page, stack: Stack, large_partner: dict[str, Any], tmp_path: Path, changed: bool
) -> None:
    # GIVEN a 9-part upload whose parts 3 and up never get an answer, and a page reloaded once
    # S3 holds parts 1 and 2
    big = tmp_path / f"reloaded above hash first {changed}.bin"
    write_random(big, HASH_FIRST_MAX + MiB)
    first_key, held = reload_while_parts_are_held(
        page, stack, large_partner["api_key"], big, COUNT_BYTES_READ
    )
    if changed:  # part 2's bytes, with the same size and modification time (the resume key)
        times = big.stat()
        with big.open("r+b") as out:
            out.seek(8 * MiB + 5)
            out.write(b"changed")
        os.utime(big, ns=(times.st_atime_ns, times.st_mtime_ns))
    sha256 = hashlib.sha256(big.read_bytes()).hexdigest()

    # WHEN the same file is chosen again on the reloaded page
    sent = parts_sent(page)
    page.set_input_files("#file-input", str(big))
    row = finished(page, big.name)

    # THEN the held parts are read (into the whole-file SHA-256) and not sent again, or, changed,
    # the earlier upload is aborted and the file sent anew; either way the ledger ACCEPTS it
    # with the file's SHA-256; resumed, the page read the file once and sent only what S3 lacked
    assert [p["PartNumber"] for p in held] == [1, 2]
    item = assert_accepted(stack, row)
    assert item["declared_sha256"]["S"] == sha256
    assert page.evaluate("Object.keys(localStorage).length") == 0
    if changed:
        assert sorted(sent) == list(range(1, 10))
        assert row.get_attribute("data-key") != first_key
        earlier = stack.item(first_key)
        assert earlier is not None
        assert earlier["processing_status"]["S"] == "ABORTED"
        assert "no longer matches the file" in (row.get_attribute("data-started-over") or "")
    else:
        assert sorted(sent) == list(range(3, 10))
        assert row.get_attribute("data-key") == first_key
        assert row.get_attribute("data-resumed-bytes") == str(16 * MiB)
        size = big.stat().st_size
        assert bytes_taken(page) == {**read_once_sent_from_the_file(size), "sent": size - 16 * MiB}


def test_an_accepted_upload_offers_its_signed_receipt(
    page: Page, stack: Stack, partner: dict[str, Any], tmp_path: Path
) -> None:
    """Issue 12: the receipt the page downloads is the API's, and it verifies (exit 0)."""
    report = tmp_path / "receipt me.csv"
    report.write_text("id,amount\n7,700\n")
    page.fill("#api-key", partner["api_key"])
    page.set_input_files("#file-input", str(report))
    row = finished(page, report.name)
    assert_accepted(stack, row)

    with page.expect_download() as download:
        row.locator("button.receipt").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)

    receipt = json.loads(saved.read_text())
    assert saved.name.startswith("receipt-up-")
    assert set(receipt) == {"payload", "signature", "key_id", "signing_algorithm"}
    statement = json.loads(base64.b64decode(receipt["payload"]))
    assert statement["key"] == row.get_attribute("data-key")
    checked = filegate(stack.state_dir, "receipt", "verify", str(saved))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert row.locator("button.receipt").inner_text() == "Receipt downloaded"


@pytest.mark.parametrize("size", [5, HASH_FIRST_MAX + 1])
def test_a_browser_without_webassembly_is_told_why_and_declares_nothing(
    page: Page, large_partner: dict[str, Any], tmp_path: Path, size: int
) -> None:
    # GIVEN a browser without WebAssembly (taken away before the page's scripts run), and a
    # file the page hashes before declaring it, or one it declares first (multipart)
    page.add_init_script("delete window.WebAssembly;")
    page.reload()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(f"{request.method} {request.url}"))
    chosen = tmp_path / "chosen.bin"
    with chosen.open("wb") as out:
        out.truncate(size)
    # WHEN it is chosen
    page.fill("#api-key", large_partner["api_key"])
    page.set_input_files("#file-input", str(chosen))
    row = finished(page, chosen.name)
    # THEN its row says why, and the API was asked nothing: no upload left to abort
    assert row.get_attribute("data-status") != "ACCEPTED"
    assert "needs WebAssembly" in row.locator(".detail").inner_text()
    assert not [line for line in asked if "/uploads" in line]
