"""How Chromium reads a chosen file and sends it, by the API the page uses: time and memory.

Why the upload page reads and sends the way it does (docs/benchmarks-uploads.md, "The upload
page's memory"). A headless Chromium (the flags of ``tests/e2e/test_upload_page.py``) loads a
page from a local sink server (HTTP/1.1, keeps nothing), a file of random bytes is chosen, and
the page goes through it in 8 MiB slices, four at a time, one way per run:

- ``array_buffer``: each slice read with ``Blob.arrayBuffer()`` (a new buffer per slice);
- ``byob``: each slice read into one buffer per reader, reused (a BYOB read of the slice's stream);
- ``blob_copy``: read as ``array_buffer``, sent as ``new Blob([bytes])`` (XMLHttpRequest);
- ``uint8array``: read as ``array_buffer``, sent as the ``Uint8Array`` itself (XMLHttpRequest);
- ``fetch_uint8array``: the same with ``fetch``;
- ``file_slice``: nothing read by the script; the slice of the File sent (the browser reads it);
- ``byob_file_slice``: read as ``byob``, then the slice of the File sent;
- ``byob_webcrypto_file_slice``: the same, and each slice's SHA-256 computed with Web Crypto;
- ``byob_sha256s_file_slice``: the same, and each slice also fed to hash-wasm's SHA-256 (one
  per sender): the page's own work on each byte (a part's SHA-256, the whole file's), without
  the upload API or S3.

Per run: seconds in the page, the peak growth of the summed anonymous RSS (RssAnon: memory
that is not the file cache) of the renderer and of the browser process, polled every 50 ms,
and the CPU seconds Chromium's processes spent (by kind: renderer, browser, network service...)
and the sink's (this process), while the page ran: what a way costs the client's cores, the
floor of any page that uses it. A fresh browser per run; modes interleaved round by round.

    .venv/bin/python benchmarks/page_bodies.py [--size-mib 512] [--rounds 2] [--modes a,b]
        [--label L]

Figures go to ``results/page_bodies.json`` (``--label`` adds ``_<label>``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import median, save, table
from upload_page import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    PeakRss,
    chromium_browser,
    cpu_split,
    require_chromium,
)

MiB = 1024 * 1024
SLICE_BYTES = 8 * MiB
MODES = (
    "array_buffer",
    "byob",
    "blob_copy",
    "uint8array",
    "fetch_uint8array",
    "file_slice",
    "byob_file_slice",
    "byob_webcrypto_file_slice",
    "byob_sha256s_file_slice",
)
HASH_WASM = Path(__file__).resolve().parent.parent / "src/filegate/uploads/vendor/sha256.umd.min.js"
PAGE = """<!doctype html><input type=file id=f><script>
const put = (body) => new Promise((ok, bad) => {
  const xhr = new XMLHttpRequest();
  xhr.open("PUT", "/sink");
  xhr.upload.onprogress = () => {};
  xhr.onload = () => ok();
  xhr.onerror = () => bad(new Error("the PUT failed"));
  xhr.send(body);
});
async function readByob(slice, buffer) {
  const reader = slice.stream().getReader({ mode: "byob" });
  let filled = 0;
  while (filled < slice.size) {
    const { done, value } = await reader.read(new Uint8Array(buffer, filled, slice.size - filled));
    if (value) buffer = value.buffer;
    if (done) break;
    filled += value.byteLength;
  }
  reader.releaseLock();
  return buffer;
}
window.run = async (mode, sliceBytes, senders) => {
  const file = document.getElementById("f").files[0];
  const count = Math.ceil(file.size / sliceBytes);
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    let buffer = new ArrayBuffer(sliceBytes);
    const whole = mode === "byob_sha256s_file_slice" ? await hashwasm.createSHA256() : null;
    while (next < count) {
      const i = next++;
      const slice = file.slice(i * sliceBytes, Math.min(file.size, (i + 1) * sliceBytes));
      if (mode === "file_slice") { await put(slice); continue; }
      if (mode.startsWith("byob")) {
        buffer = await readByob(slice, buffer);
        const view = new Uint8Array(buffer, 0, slice.size);
        const hashed = mode.includes("webcrypto") || mode.includes("sha256s");
        const digest = hashed ? crypto.subtle.digest("SHA-256", view) : null;
        if (whole) whole.update(view);
        if (digest) await digest;
        if (mode !== "byob") await put(slice);
        continue;
      }
      const bytes = new Uint8Array(await slice.arrayBuffer());
      if (mode === "blob_copy") await put(new Blob([bytes]));
      else if (mode === "uint8array") await put(bytes);
      else if (mode === "fetch_uint8array") {
        await (await fetch("/sink", { method: "PUT", body: bytes })).arrayBuffer();
      }
    }
  };
  await Promise.all(Array.from({ length: senders }, worker));
  return (performance.now() - started) / 1000;
};
</script>"""


class Sink(BaseHTTPRequestHandler):
    """Serves the page; reads and drops each PUT's body."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:
        html = PAGE.replace("<input", f"<script>{HASH_WASM.read_text()}</script><input", 1)
        body = html.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        left = int(self.headers.get("Content-Length", 0))
        while left:
            left -= len(self.rfile.read(min(left, MiB)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def rss_anon(process: psutil.Process) -> int:
    """RssAnon of ``process``, bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def one_run(playwright: Any, url: str, path: Path, mode: str) -> dict[str, Any]:
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
    )
    try:
        page = browser.new_page()
        page.goto(url)
        page.set_input_files("#f", str(path))
        with PeakRss(chromium_browser(), rss_anon) as peak:
            before = cpu_split()
            seconds = page.evaluate("([m, s]) => window.run(m, s, 4)", [mode, SLICE_BYTES])
            after = cpu_split()
    finally:
        browser.close()
    growth = peak.growth_mib()
    return {
        "mode": mode,
        "seconds": round(seconds, 2),
        "anon_growth_mib": {kind: growth[kind] for kind in ("renderer", "browser")},
        # "stack": this process, the sink; "chromium": all of Chromium's processes
        "cpu_seconds": {k: round(v - before.get(k, 0.0), 2) for k, v in after.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--label", default="", help="suffix of the results file's name")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown --modes {unknown}; choose from {', '.join(MODES)}")
    require_chromium()
    from playwright.sync_api import sync_playwright

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="filegate-bench-bodies-") as folder:
        path = Path(folder) / "bodies.bin"
        with path.open("wb") as out:
            for _ in range(args.size_mib):
                out.write(os.urandom(MiB))
        with sync_playwright() as playwright:
            for number in range(args.rounds):
                for mode in modes:
                    run = {"round": number + 1, **one_run(playwright, url, path, mode)}
                    print(run, flush=True)
                    runs.append(run)
    server.shutdown()
    rows = []
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode]
        rows.append(
            [
                mode,
                median([r["seconds"] for r in mine]),
                median([r["anon_growth_mib"]["renderer"] for r in mine]),
                median([r["anon_growth_mib"]["browser"] for r in mine]),
                median([r["cpu_seconds"]["chromium"] for r in mine]),
                median([r["cpu_seconds"]["stack"] for r in mine]),
            ]
        )
    headers = ["mode", "s (median)", "renderer +MiB", "browser +MiB", "Chromium CPU s", "sink CPU"]
    print(table(headers, rows))
    name = f"page_bodies_{args.label}" if args.label else "page_bodies"
    save(name, {"size_mib": args.size_mib, "slice_mib": 8, "runs": runs})


if __name__ == "__main__":
    main()
