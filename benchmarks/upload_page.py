"""One file uploaded through the browser upload page: time to the verdict, Chromium's memory.

Starts a local stack on a free port (emulator, upload API, ingestion workers) and a partner,
writes a file of random bytes, 1 GiB unless ``--size-mib`` (as ``upload_transfer.py`` does:
incompressible, flushed, page-cached), and launches Debian's Chromium headless through
playwright with the flags of ``tests/e2e/test_upload_page.py``. Each run opens a new page
(a new browser context) on the page the upload API serves at GET /, enters the partner's key,
chooses the file (playwright hands a local browser the file's path above 50 MB, not its bytes)
and waits for the file's row to reach its verdict; the ledger must say ACCEPTED too. Between
runs, untimed, the object is deleted and the delete recorded (``clear_bucket``). The first run
is in a fresh stack and browser, with no warm-up: each run's figures are kept.

Per run:

- seconds from choosing the file to the verdict on the page;
- peak RSS growth, MiB, of Chromium's renderer process(es), of its browser process, of the
  two together, and of its other processes (zygote, network service, ...), each the peak of
  the summed VmRSS over the value just before the file was chosen. VmRSS, not VmHWM: VmHWM is
  a process's peak since it started, so a browser that already peaked in an earlier run would
  hide this run's growth. Polled every 50 ms from a thread (a peak shorter than that can be
  missed). RSS counts shared pages (Blob data Chromium keeps in shared memory) in every
  process that maps them. Target (issue 11): < 150 MB;
- the requests the page made: ``POST /uploads/{id}/parts`` (part URLs asked for) and the
  part PUTs, counted through playwright's request events;
- seconds from choosing the file to the row's "Checking" stage: the file is sent and the upload
  completed (CompleteMultipartUpload returned), the verdict not yet in;
- with ``--against-aws``, the same file sent with ``aws s3 cp`` to the same endpoint in the same
  round (``upload_transfer.run_aws``), the two alternating which goes first, and the ratio of
  the aws seconds to the page's seconds to "Checking" (>= 1: the page at least as fast);
- CPU seconds to "Checking": Chromium's processes and the local stack's (emulator, upload API,
  function workers), and with ``--against-aws`` those of ``aws s3 cp`` and of the stack during
  it (that figure counts an idle Chromium too): where the two cores went.

    .venv/bin/python benchmarks/upload_page.py [--runs 3] [--size-mib 1024] [--label L]
        [--against-aws] [--link-mbit N] [--warm-up]

``--link-mbit N`` limits the bytes to the emulator's S3 endpoint to N Mbit/s for the whole
run (``link.py``: a partner's link instead of loopback; root and tc), for the page and
``aws s3 cp`` alike. (A round trip's delay cannot be added here: this kernel has no netem.)

``--warm-up`` first sends a 65 MiB file (multipart: nine parts) through the page and with
``aws s3 cp``, untimed, so that every run finds the upload API's functions started, as a
partner's upload does on a stack in use; without it the first run pays their cold starts on
the twin (about 0.6 s each for the declaration and the first part URLs, measured at 500 Mbit/s).
Each run also records the seconds from choosing the file to the first part PUT.

Figures go to ``results/upload_page.json`` (``upload_page_<N>mib.json`` at another size;
``--label`` adds ``_<label>``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
from botocore.exceptions import BotoCoreError, ClientError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import link
from common import median, save, table
from upload_transfer import (
    add_partner,
    clear_bucket,
    client_env,
    ledger_status,
    local_stack,
    run_aws,
    write_random_file,
)

MiB = 1024 * 1024
RSS_TARGET_MB = 150
POLL_SECONDS = 0.05
VERDICT_TIMEOUT_MS = 900_000
WARM_UP_BYTES = 65 * MiB  # above the page's 64 MiB single PUT: declared, signed, completed
STALL_SECONDS = 120  # no part PUT ended for this long: the run is reported stalled
CHROMIUM = Path("/usr/bin/chromium")
# As tests/e2e/test_upload_page.py: headless, and quiet (the network here is closed).
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
PARTS_URL = re.compile(r"/uploads/[^/]+/parts/?(\?|$)")
# The row's badge once the file is sent and its upload completed (or already judged).
SENT_BADGE = re.compile(r"^(Checking|ACCEPTED|REJECTED|ABORTED|Error.*|Failed)$")
KINDS = ("renderer", "browser", "other")


def require_chromium() -> None:
    """Exit with a message saying how to install it when Debian's Chromium is not there."""
    if not CHROMIUM.exists():
        sys.exit(f"no {CHROMIUM}: `apt-get install chromium` (the e2e tests use it too)")


def chromium_browser() -> psutil.Process:
    """Chromium's browser process: the descendant of this process running the chromium binary
    with no ``--type=`` (every child process of Chromium's has one)."""
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if Path(process.exe()).name == "chromium" and not any(
                arg.startswith("--type=") for arg in process.cmdline()
            ):
                return process
    raise RuntimeError("no Chromium browser process among this process's descendants")


def cpu_split() -> dict[str, float]:
    """User + system CPU seconds so far of Chromium's processes (all, and by the process's
    ``--type``: renderer, network utility, gpu, browser...) and of the local stack (this process
    and its other descendants: emulator, upload API, function workers; playwright's driver is
    left out). Live processes only, which both are for a whole run."""
    split = {"chromium": 0.0, "stack": 0.0}
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            name = Path(process.exe()).name
            if name == "node":
                continue
            times = process.cpu_times()
            spent = times.user + times.system
            if not name.startswith("chrom"):
                split["stack"] += spent
                continue
            split["chromium"] += spent
            label = f"chromium {chromium_type(process.cmdline())}"
            split[label] = split.get(label, 0.0) + spent
    return split


def chromium_type(arguments: list[str]) -> str:
    """A Chromium process's kind: its utility sub-type's last name (NetworkService...), else
    its ``--type`` (renderer, gpu-process, zygote...), else browser."""
    found = {}
    for argument in arguments:
        name, _, value = argument.partition("=")
        if name in ("--type", "--utility-sub-type"):
            found[name] = value
    if "--utility-sub-type" in found:
        return found["--utility-sub-type"].rsplit(".", 1)[-1]
    return found.get("--type", "browser")


def kind(process: psutil.Process) -> str:
    """renderer, browser, or other (every other Chromium process), for the RSS figures."""
    found = chromium_type(process.cmdline())
    return found if found in ("renderer", "browser") else "other"


def vm_rss(process: psutil.Process) -> int:
    return int(process.memory_info().rss)


def rss_by_kind(
    browser: psutil.Process, measure: Callable[[psutil.Process], int] = vm_rss
) -> dict[str, int]:
    """Summed memory, bytes (VmRSS unless ``measure`` says otherwise), of Chromium's processes
    by kind (the browser and its descendants, listed afresh: renderers come and go)."""
    totals = dict.fromkeys(KINDS, 0)
    with contextlib.suppress(psutil.NoSuchProcess):
        for process in [browser, *browser.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                totals[kind(process)] += measure(process)
    return totals


class PeakRss:
    """Polls ``rss_by_kind`` in a thread; the peak per kind and of renderer + browser."""

    def __init__(
        self, browser: psutil.Process, measure: Callable[[psutil.Process], int] = vm_rss
    ) -> None:
        self.browser = browser
        self.measure = measure
        self.before = rss_by_kind(browser, measure)
        self.before["renderer+browser"] = self.before["renderer"] + self.before["browser"]
        self.peak = dict(self.before)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            now = rss_by_kind(self.browser, self.measure)
            now["renderer+browser"] = now["renderer"] + now["browser"]
            for name, value in now.items():
                self.peak[name] = max(self.peak[name], value)
            self.samples += 1
            self._stop.wait(POLL_SECONDS)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth_mib(self) -> dict[str, float]:
        before = {
            **self.before,
            "renderer+browser": self.before["renderer"] + self.before["browser"],
        }
        return {name: round((self.peak[name] - before[name]) / MiB, 1) for name in self.peak}


def one_run(state: Any, browser: Any, api_key: str, path: Path) -> dict[str, Any]:
    """A new page, the key, the file chosen, the verdict awaited; figures of this run."""
    context = browser.new_context(viewport={"width": 960, "height": 900})
    page = context.new_page()
    requests = {"sign_parts": 0, "part_puts": 0, "part_puts_done": 0}
    errors: list[str] = []
    first_put: list[float] = []

    def on_request(request: Any) -> None:
        if request.method == "POST" and PARTS_URL.search(request.url):
            requests["sign_parts"] += 1
        elif request.method == "PUT":
            requests["part_puts"] += 1
            if not first_put:
                first_put.append(time.monotonic())

    def on_done(request: Any) -> None:
        if request.method == "PUT":
            requests["part_puts_done"] += 1

    page.on("request", on_request)
    page.on("requestfinished", on_done)
    page.on("requestfailed", on_done)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(state.env()["upload_api_url"])
    page.fill("#api-key", api_key)
    process = chromium_browser()
    load_before = os.getloadavg()[0]
    with PeakRss(process) as rss:
        cpu_before = cpu_split()
        started = time.monotonic()
        page.set_input_files("#file-input", str(path))
        row = page.locator("li.file", has=page.locator(".name", has_text=path.name))
        sent = row.locator(".badge", has_text=SENT_BADGE)
        wait_sent(sent, requests)
        seconds_sent = time.monotonic() - started
        cpu_sent = {k: round(v - cpu_before.get(k, 0.0), 2) for k, v in cpu_split().items()}
        row.and_(page.locator("li.file:not(.busy)")).wait_for(timeout=VERDICT_TIMEOUT_MS)
        seconds = time.monotonic() - started
    status = row.get_attribute("data-status")
    key = row.get_attribute("data-key")
    detail = row.locator(".detail").inner_text()
    context.close()
    return {
        "seconds": round(seconds, 2),
        "seconds_sent": round(seconds_sent, 2),
        "seconds_to_first_put": round(first_put[0] - started, 2) if first_put else None,
        # CPU seconds to "Checking": Chromium's processes, and the local stack's
        "cpu_seconds_sent": cpu_sent,
        "page_status": status,
        "ledger_status": ledger_status(state, key) if key else None,
        **({"detail": detail} if status != "ACCEPTED" else {}),
        "rss_growth_mib": rss.growth_mib(),
        "rss_before_mib": {name: round(value / MiB, 1) for name, value in rss.before.items()},
        "rss_samples": rss.samples,
        "requests": requests,
        "page_errors": errors,
        "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


class StalledError(RuntimeError):
    """No part PUT ended for ``STALL_SECONDS`` while the file was being sent."""


def wait_sent(sent: Any, requests: dict[str, int]) -> None:
    """Until ``sent`` shows; StalledError, saying what was in flight, when no part PUT has
    ended for STALL_SECONDS (seen in 16 GiB runs: everything idle at part ~676 of 2,048)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    done, moved = -1, time.monotonic()
    while True:
        try:
            sent.wait_for(timeout=5_000)  # returns as soon as it shows
            return
        except PlaywrightTimeout:
            pass
        if requests["part_puts_done"] != done:
            done, moved = requests["part_puts_done"], time.monotonic()
        elif time.monotonic() - moved > STALL_SECONDS:
            raise StalledError(
                f"no part PUT ended for {STALL_SECONDS} s: {requests['part_puts']} started, "
                f"{done} ended, {requests['sign_parts']} POST .../parts"
            )


def measure(
    runs: int,
    size: int,
    against_aws: bool = False,
    link_mbit: int | None = None,
    warm_up: bool = False,
) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="filegate-bench-file-") as folder:
        path = Path(folder) / "bench-page.bin"
        write_random_file(path, size)
        small = Path(folder) / "bench-warm-up.bin"
        if warm_up:
            write_random_file(small, WARM_UP_BYTES)
        with (
            local_stack() as state,
            link.limited(urlsplit(state.endpoint_url).port or 0, link_mbit),
            sync_playwright() as playwright,
        ):
            api_key = add_partner(state, "bench page partner")
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
            )
            try:
                if warm_up:
                    one_run(state, browser, api_key, small)
                    clear_bucket(state)
                    if against_aws:
                        aws_run(state, api_key, small, -1)
                for number in range(runs):
                    aws_first = against_aws and number % 2 == 1
                    aws = aws_run(state, api_key, path, number) if aws_first else None
                    run = one_run(state, browser, api_key, path)
                    run["ledger"] = clear_bucket(state)
                    if against_aws:
                        run["aws"] = aws or aws_run(state, api_key, path, number)
                        run["aws_first"] = aws_first
                        run["aws_over_page"] = round(run["aws"]["seconds"] / run["seconds_sent"], 3)
                    samples.append(run)
                    print(f"run {number + 1}: {_line(run)}", file=sys.stderr)
            finally:
                browser.close()
    return {**summarize(samples, size), "link_mbit": link_mbit, "warm_up": warm_up}


def aws_run(state: Any, api_key: str, path: Path, number: int) -> dict[str, Any]:
    """``aws s3 cp`` of the same file to the same endpoint; the object deleted after, untimed."""
    run = run_aws(state, client_env(state, api_key), path, f"bench/aws-{number}.bin")
    clear_bucket(state)
    if run["exit_code"]:
        sys.exit(f"aws s3 cp failed (exit {run['exit_code']}): {run.get('stderr_tail')}")
    return {
        "seconds": round(run["seconds"], 2),
        "cpu_seconds": run["cpu_seconds"],
        "stack_cpu_seconds": run["stack_cpu_seconds"],
    }


def _line(run: dict[str, Any]) -> str:
    growth = run["rss_growth_mib"]
    aws = run.get("aws", {})
    return (
        f"{run['page_status']} (ledger {run['ledger_status']}) in {run['seconds']:.1f} s,"
        f" RSS growth MiB: renderer {growth['renderer']:.0f}, browser {growth['browser']:.0f},"
        f" sum {growth['renderer+browser']:.0f}, other {growth['other']:.0f};"
        f" {run['requests']}, load {run['load_1m'][0]:.1f} -> {run['load_1m'][1]:.1f}"
        f"; first part PUT at {run['seconds_to_first_put']} s"
        f"; sent in {run['seconds_sent']:.1f} s (CPU s: Chromium"
        f" {run['cpu_seconds_sent']['chromium']:.1f}, stack {run['cpu_seconds_sent']['stack']:.1f})"
        + (
            f"; aws s3 cp {aws['seconds']:.1f} s (CPU s: aws {aws['cpu_seconds']:.1f},"
            f" stack {aws['stack_cpu_seconds']:.1f}), aws/page {run['aws_over_page']:.2f}"
            if "aws" in run
            else ""
        )
    )


def summarize(samples: list[dict[str, Any]], size: int) -> dict[str, Any]:
    ok = [run for run in samples if run["page_status"] == "ACCEPTED"]
    peaks = {
        name: max(run["rss_growth_mib"][name] for run in samples)
        for name in ("renderer", "browser", "renderer+browser", "other")
    }
    # The target is in MB (10^6 bytes), the growth in MiB; it is the client's, so it applies to
    # renderer + browser together.
    peak_mb = peaks["renderer+browser"] * MiB / 1e6
    return {
        "file": {"size_bytes": size, "content": "random bytes (os.urandom), page-cached"},
        "browser": "Debian's /usr/bin/chromium, headless, through playwright",
        "runs": samples,
        "failed_runs": len(samples) - len(ok),
        "median_seconds": round(median([run["seconds"] for run in ok]), 2),
        "median_mb_per_s": round(median([size / run["seconds"] / 1e6 for run in ok]), 2),
        "peak_rss_growth_mib": peaks,
        "median_sign_parts_requests": median([run["requests"]["sign_parts"] for run in samples]),
        "median_seconds_sent": round(median([run["seconds_sent"] for run in ok]), 2),
        **(
            {
                "median_aws_seconds": round(median([r["aws"]["seconds"] for r in samples]), 2),
                "median_aws_over_page": median([r["aws_over_page"] for r in samples]),
            }
            if samples and "aws" in samples[0]
            else {}
        ),
        "target_rss_mb": RSS_TARGET_MB,
        "target_rss_met": peak_mb < RSS_TARGET_MB and len(ok) == len(samples),
    }


def render(figures: dict[str, Any]) -> str:
    rows = [
        [
            number,
            run["page_status"],
            f"{run['seconds']:.1f}",
            f"{run['rss_growth_mib']['renderer']:.0f}",
            f"{run['rss_growth_mib']['browser']:.0f}",
            f"{run['rss_growth_mib']['renderer+browser']:.0f}",
            f"{run['rss_growth_mib']['other']:.0f}",
            run["requests"]["sign_parts"],
            run["requests"]["part_puts"],
            f"{run['load_1m'][0]:.1f} -> {run['load_1m'][1]:.1f}",
        ]
        for number, run in enumerate(figures["runs"], start=1)
    ]
    headers = [
        "run", "verdict", "s to verdict", "renderer +MiB", "browser +MiB",
        "renderer+browser +MiB", "other +MiB", "POST .../parts", "PUTs", "load 1m",
    ]  # fmt: skip
    peaks = figures["peak_rss_growth_mib"]
    met = "met" if figures["target_rss_met"] else "MISSED"
    return (
        table(headers, rows)
        + f"\nmedian {figures['median_seconds']:.1f} s ({figures['median_mb_per_s']:.1f} MB/s);"
        + f" peak RSS growth MiB: renderer {peaks['renderer']:.0f}, browser"
        + f" {peaks['browser']:.0f}, renderer+browser {peaks['renderer+browser']:.0f}"
        + f" (target < {RSS_TARGET_MB} MB: {met}); failed runs: {figures['failed_runs']}"
        + f"; sent (to Checking) in {figures['median_seconds_sent']:.1f} s"
        + (
            f"; aws s3 cp {figures['median_aws_seconds']:.1f} s, median aws/page"
            f" {figures['median_aws_over_page']:.2f}"
            if "median_aws_seconds" in figures
            else ""
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--label", default="", help="suffix of the results file's name")
    parser.add_argument(
        "--against-aws", action="store_true", help="send the file with aws s3 cp too, each round"
    )
    parser.add_argument(
        "--link-mbit",
        type=int,
        help="limit the traffic to the emulator's S3 port to this many Mbit/s, a partner's"
        " link (benchmarks/link.py: tc, root)",
    )
    parser.add_argument(
        "--warm-up",
        action="store_true",
        help="send a 65 MiB file through the page and aws s3 cp first, untimed: no run pays"
        " the API functions' cold starts",
    )
    args = parser.parse_args()
    require_chromium()
    try:
        figures = measure(
            args.runs,
            args.size_mib * MiB,
            args.against_aws,
            args.link_mbit,
            args.warm_up,
        )
    except (BotoCoreError, ClientError) as exc:
        # Seen at 16 GiB before patches/s3_listing.py: the kernel killed the emulator when
        # the clean-up listed the bucket's versions (moto copied the object's bytes twice).
        sys.exit(f"the local stack stopped answering ({exc}): see `dmesg` and its log")
    except StalledError as exc:
        sys.exit(f"the upload stalled: {exc}")
    print(render(figures))
    name = "upload_page" if args.size_mib == 1024 else f"upload_page_{args.size_mib}mib"
    save(f"{name}_{args.label}" if args.label else name, figures)


if __name__ == "__main__":
    main()
