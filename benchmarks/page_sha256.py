"""The upload page's whole-file SHA-256 in Chromium: the JavaScript one against hash-wasm's.

The evidence behind the page's hasher (docs/benchmarks-uploads.md, "The page's SHA-256:
JavaScript against WebAssembly"). Writes a file of random bytes (512 MiB unless
``--size-mib``), hands it to Debian's Chromium, headless through playwright with the flags of
``tests/e2e/test_upload_page.py``, on a file input of a new page per run, and there reads it as
the upload page does (its own ``SliceReader``, taken from ``src/filegate/uploads/page.html``:
8 MiB slices into one reused buffer) with, round by round and in rotating order:

- ``read``: the slices only, nothing hashed (what reading costs);
- ``js``: each slice fed to the hand-written JavaScript ``Sha256`` the page had until it took
  hash-wasm, taken from ``git show <--js-from>:src/filegate/uploads/page.html``;
- ``wasm``: each slice fed to hash-wasm's ``createSHA256()`` (WebAssembly), from the file the
  page serves (``src/filegate/uploads/vendor/sha256.umd.min.js`` unless ``--hash-wasm``).

Per variant: seconds for the whole file, seconds inside the hasher (update and digest), MiB/s
of each, medians over ``--rounds`` (default 3); the ratio of js's hasher seconds to wasm's (of
the medians, and round by round), and of their whole seconds. Each digest is checked against
hashlib's.

    .venv/bin/python benchmarks/page_sha256.py [--rounds 3] [--size-mib 512] [--js-from REV]
        [--hash-wasm PATH]

Figures go to ``results/page_sha256.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, median, save, table
from upload_page import CHROMIUM, CHROMIUM_FLAGS, require_chromium

MiB = 1024 * 1024
SLICE_BYTES = 8 * MiB  # the page's READ_BYTES
PAGE = "src/filegate/uploads/page.html"
HASH_WASM = ROOT / "src/filegate/uploads/vendor/sha256.umd.min.js"
# The last commit whose page hashed with its own JavaScript Sha256.
JS_FROM = "b5f7a8d"
VARIANTS = ("read", "js", "wasm")
RUN_TIMEOUT_S = 120  # a run that hangs ends the benchmark, saying where it was

# Runs in the page: reads window.benchFile (the chosen File) with the page's SliceReader and
# feeds each slice to the variant's hasher, timing the hasher's calls apart from the reading.
BENCH = """async (variant) => {
  const file = document.querySelector("input").files[0];
  let hash = null;
  if (variant === "js") hash = new Sha256();
  if (variant === "wasm") hash = await hashwasm.createSHA256();
  let inside = 0;
  const started = performance.now();
  await new SliceReader(SLICE_BYTES).each(file, 0, file.size, async (view) => {
    window.benchAt = variant + ", " + (inside / 1000).toFixed(2) + " s in the hasher";
    const t = performance.now();
    if (hash) hash.update(view);
    inside += performance.now() - t;
  });
  const t = performance.now();
  let digest = null;
  if (variant === "js") digest = hex(hash.digest());
  if (variant === "wasm") digest = hash.digest("hex");
  inside += performance.now() - t;
  return { seconds: (performance.now() - started) / 1000, hasher: inside / 1000, digest };
}"""


def block(source: str, opening: str, closing: str) -> str:
    """The text from the line holding `opening` to the first line after it equal to `closing`."""
    match = re.search(rf"^[ \t]*{re.escape(opening)}.*?^{re.escape(closing)}$", source, re.M | re.S)
    if not match:
        raise SystemExit(f"{opening!r} not found in the page: is --js-from right?")
    return match.group(0)


def page_scripts(js_from: str, hash_wasm: Path) -> list[str]:
    """The page's SliceReader and hex (today's page), the old Sha256 and hash-wasm's file."""
    today = (ROOT / PAGE).read_text("utf-8")
    old = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{js_from}:{PAGE}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [
        f"const SLICE_BYTES = {SLICE_BYTES};",
        block(today, "class SliceReader {", "  }"),
        block(today, "function hex(bytes) {", "  }"),
        block(old, "const K = new Uint32Array([", "  ]);"),
        block(old, "class Sha256 {", "  }"),
        hash_wasm.read_text("utf-8"),
    ]


def one_run(page: Page, variant: str, expected: str) -> dict[str, Any]:
    figures: dict[str, Any] = page.evaluate(
        f"(variant) => Promise.race([({BENCH})(variant), new Promise((_, fail) => setTimeout("
        f"() => fail(new Error('no answer in {RUN_TIMEOUT_S} s: ' + window.benchAt)), "
        f"{RUN_TIMEOUT_S * 1000}))])",
        variant,
    )
    if variant != "read" and figures["digest"] != expected:
        raise SystemExit(f"{variant}: digest {figures['digest']} is not hashlib's {expected}")
    return figures


def measure(path: Path, rounds: int, scripts: list[str]) -> dict[str, list[dict[str, Any]]]:
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        for number in range(rounds):
            order = VARIANTS[number % 3 :] + VARIANTS[: number % 3]
            for variant in order:
                # A page of its own per run: one page reading the file run after run stalled
                # now and then (a slice's read never answered, after 3-7 GiB read).
                page = browser.new_page()
                page.set_content("<input type=file>")
                page.add_script_tag(content="\n".join(scripts))
                page.set_input_files("input", str(path))
                runs[variant].append(one_run(page, variant, expected))
                page.close()
                print(f"round {number + 1} {variant}: {runs[variant][-1]}", file=sys.stderr)
        browser.close()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--js-from", default=JS_FROM)
    parser.add_argument("--hash-wasm", type=Path, default=HASH_WASM)
    args = parser.parse_args()
    require_chromium()
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "random.bin"
        with path.open("wb") as out:
            for _ in range(args.size_mib):
                out.write(os.urandom(MiB))
        runs = measure(path, args.rounds, page_scripts(args.js_from, args.hash_wasm))
    summary = {
        variant: {
            "seconds": median([run["seconds"] for run in runs[variant]]),
            "hasher_seconds": median([run["hasher"] for run in runs[variant]]),
        }
        for variant in VARIANTS
    }
    ratio = summary["js"]["hasher_seconds"] / summary["wasm"]["hasher_seconds"]
    # Round by round (js and wasm ran within seconds of each other): less moved by the load.
    paired = [
        js["hasher"] / wasm["hasher"] for js, wasm in zip(runs["js"], runs["wasm"], strict=True)
    ]
    whole = summary["js"]["seconds"] / summary["wasm"]["seconds"]
    rows = [
        [
            variant,
            " ".join(f"{run['seconds']:.2f}" for run in runs[variant]),
            f"{summary[variant]['seconds']:.2f}",
            f"{args.size_mib / summary[variant]['seconds']:.0f}",
            f"{summary[variant]['hasher_seconds']:.2f}",
            f"{args.size_mib / summary[variant]['hasher_seconds']:.0f}"
            if variant != "read"
            else "-",
        ]
        for variant in VARIANTS
    ]
    headers = ["variant", "s per round", "median s", "MiB/s", "hasher s", "hasher MiB/s"]
    print(table(headers, rows))
    print(f"js hasher seconds / wasm hasher seconds, medians: {ratio:.2f}")
    print(f"  round by round: {' '.join(f'{r:.2f}' for r in paired)} (median {median(paired):.2f})")
    print(f"js seconds / wasm seconds (read and hash), medians: {whole:.2f}")
    save(
        "page_sha256",
        {
            "size_mib": args.size_mib,
            "rounds": args.rounds,
            "js_from": args.js_from,
            "runs": runs,
            "medians": summary,
            "js_over_wasm_hasher": ratio,
            "js_over_wasm_hasher_by_round": paired,
            "js_over_wasm_read_and_hash": whole,
        },
    )


if __name__ == "__main__":
    main()
