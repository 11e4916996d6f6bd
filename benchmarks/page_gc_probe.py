"""The upload page's renderer memory after an upload: before and after a forced garbage collection.

One file (``SIZE_MIB`` argument, random bytes) uploaded through the page as ``upload_page.py``
does; then the renderer's and browser's RSS growth over the value before the file was chosen,
with the page's JavaScript heap (CDP ``Runtime.getHeapUsage``), and the same after CDP's
``HeapProfiler.collectGarbage``: what the page holds, against what waits for the collector.

    .venv/bin/python benchmarks/page_gc_probe.py 2048
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import upload_page
from upload_transfer import add_partner, local_stack, write_random_file

MiB = 1024 * 1024
KINDS = ("renderer", "browser")


def growth(now: dict[str, int], before: dict[str, int]) -> dict[str, float]:
    return {kind: round((now[kind] - before[kind]) / MiB, 1) for kind in KINDS}


def heap(cdp: Any) -> str:
    usage = cdp.send("Runtime.getHeapUsage")
    return f"{usage['usedSize'] / MiB:.1f} used / {usage['totalSize'] / MiB:.1f} MiB"


def main() -> None:
    from playwright.sync_api import sync_playwright

    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    upload_page.require_chromium()
    with tempfile.TemporaryDirectory(prefix="filegate-bench-file-") as folder:
        path = Path(folder) / "probe.bin"
        write_random_file(path, size_mib * MiB)
        with local_stack() as state, sync_playwright() as playwright:
            api_key = add_partner(state, "probe partner")
            browser = playwright.chromium.launch(
                executable_path=str(upload_page.CHROMIUM),
                args=upload_page.CHROMIUM_FLAGS,
                headless=True,
            )
            context = browser.new_context()
            page = context.new_page()
            page.goto(state.env()["upload_api_url"])
            page.fill("#api-key", api_key)
            chromium = upload_page.chromium_browser()
            before = upload_page.rss_by_kind(chromium)
            cdp = context.new_cdp_session(page)
            started = time.monotonic()
            page.set_input_files("#file-input", str(path))
            row = page.locator("li.file", has=page.locator(".name", has_text=path.name))
            row.and_(page.locator("li.file:not(.busy)")).wait_for(timeout=900_000)
            seconds = time.monotonic() - started
            after = upload_page.rss_by_kind(chromium)
            print(f"{size_mib} MiB: {row.get_attribute('data-status')} in {seconds:.1f} s")
            print(f"after the verdict: +MiB {growth(after, before)}, JS heap {heap(cdp)}")
            cdp.send("HeapProfiler.enable")
            cdp.send("HeapProfiler.collectGarbage")
            time.sleep(2)
            collected = upload_page.rss_by_kind(chromium)
            print(f"after a forced GC: +MiB {growth(collected, before)}, JS heap {heap(cdp)}")
            browser.close()


if __name__ == "__main__":
    main()
