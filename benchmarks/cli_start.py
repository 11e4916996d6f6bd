"""The CLI's start: what `filegate upload` pays before it reads the file, against `aws`.

Each sample is one child process timed from spawn to exit (output to /dev/null):

- ``interpreter``: ``python -c pass`` (paid by every variant);
- ``import filegate.cli``: ``python -c "import filegate.cli"`` (the entry point's module);
- ``filegate upload --help``: the console script, which imports the entry point and the
  upload command, builds the command and prints its help;
- ``filegate upload MISSING --api URL``: an upload's start up to reading the file (the file
  does not exist: the command exits 2 there, before any request);
- ``aws --version``: the AWS CLI's start, for reference (`aws s3 cp` pays at least that).

The filegate variants run with ``PYTHONPATH`` at this tree's ``src`` and, given ``--baseline
SRC`` (another checkout's ``src``, e.g. main's), at that one too. Variants are interleaved, in
an order rotated each round, so that the shared machine's load hits them alike; the figures
are medians of ``--runs`` (default 15) and the ratio of this tree's median over the baseline's,
with the 1-minute load average before and after.

    .venv/bin/python benchmarks/cli_start.py [--runs 15] [--baseline /path/to/main/src] [--label L]

Figures go to ``results/cli_start.json`` (``--label`` adds ``_<label>``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, median, save, table

BIN = Path(sys.executable).parent


Variant = tuple[list[str], str | None, int]  # command line, PYTHONPATH or None, exit code


def variants(baseline: str | None) -> dict[str, Variant]:
    python, filegate = sys.executable, str(BIN / "filegate")
    missing = [filegate, "upload", "/nonexistent/file", "--api", "http://127.0.0.1:9"]
    trees = {"": str(ROOT / "src"), **({" (baseline)": baseline} if baseline else {})}
    found: dict[str, Variant] = {"interpreter": ([python, "-c", "pass"], None, 0)}
    for suffix, src in trees.items():
        found[f"import filegate.cli{suffix}"] = ([python, "-c", "import filegate.cli"], src, 0)
        found[f"filegate upload --help{suffix}"] = ([filegate, "upload", "--help"], src, 0)
        found[f"filegate upload MISSING --api URL{suffix}"] = (missing, src, 2)
    found["aws --version"] = ([str(BIN / "aws"), "--version"], None, 0)
    return found


def run_once(command: list[str], pythonpath: str | None, code: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    started = time.perf_counter()
    done = subprocess.run(
        command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    elapsed = time.perf_counter() - started
    if done.returncode != code:
        raise SystemExit(f"{' '.join(command)}: exit {done.returncode}, expected {code}")
    return elapsed


def measure(runs: int, baseline: str | None) -> dict[str, Any]:
    chosen = variants(baseline)
    names = list(chosen)
    samples: dict[str, list[float]] = {name: [] for name in names}
    load_before = os.getloadavg()[0]
    for round_number in range(runs):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(run_once(*chosen[name]))
    load_after = os.getloadavg()[0]
    medians = {name: median(values) for name, values in samples.items()}
    ratios = {
        name: round(medians[name] / medians[f"{name} (baseline)"], 3)
        for name in names
        if f"{name} (baseline)" in medians
    }
    return {
        "runs": runs,
        "baseline_src": baseline,
        "load_1min": [round(load_before, 2), round(load_after, 2)],
        "median_s": {name: round(value, 4) for name, value in medians.items()},
        "samples_s": {name: [round(v, 4) for v in values] for name, values in samples.items()},
        "ratio_over_baseline": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--baseline", help="another checkout's src directory, for A/B")
    parser.add_argument("--label", default="", help="suffix of the results file's name")
    args = parser.parse_args()
    figures = measure(args.runs, args.baseline)
    rows = [
        (name, f"{value:.3f}", figures["ratio_over_baseline"].get(name, ""))
        for name, value in figures["median_s"].items()
    ]
    print(table(("variant", "median s", "ratio over baseline"), rows))
    print(f"load average (1 min) before/after: {figures['load_1min']}")
    save("cli_start" + (f"_{args.label}" if args.label else ""), figures)


if __name__ == "__main__":
    main()
