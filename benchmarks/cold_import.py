"""Cold start of the ingestion function against its floor, from the real zip, as on Lambda.

Builds the Lambda zip (``filegate.package.build``), unpacks it, and makes the runtime's package
directory (``filegate.local.runtime.runtime_packages_dir``: boto3, botocore and their
dependencies only). Each sample is a FRESH ``python -I -S -B`` subprocess whose ``sys.path`` is
exactly [unpacked zip, runtime packages], with the function's environment as the template sets
it, tracing ACTIVE: POWERTOOLS_TRACE_DISABLED unset, LAMBDA_TASK_ROOT set (so the X-Ray SDK
takes its Lambda context and Powertools traces), AWS_XRAY_DAEMON_ADDRESS 127.0.0.1:2000 as
Lambda provides one. No daemon listens here: the X-Ray SDK sends each finished subsegment as
one UDP datagram (``sendto`` on an unconnected socket), which returns at once whether or not
anything listens, so nothing waits on the network. ``-B`` because Lambda's /var/task is
read-only: nothing is written at run time, so every module the zip ships as source is compiled
on every cold start (the unpacked zip is checked to hold no ``__pycache__`` afterwards).

Variants, interleaved so machine noise hits every one alike (median of ``--runs``, default 9):

- ``interpreter``: ``pass`` (interpreter start-up, paid by every variant);
- ``boto3``: ``import boto3`` (the zip's own, pinned);
- ``floor``: ``import boto3`` + an S3 and a DynamoDB client: what any function doing this job
  pays before its first request;
- ``handler``: ``import filegate.ingest.handler`` (Lambda's init phase);
- ``handler+clients``: the import plus ``build_ingestor()`` (boto3 imported, the two clients);
- ``handler+invocation``: the import plus one invocation with an SQS batch whose one message is
  S3's ``s3:TestEvent``, under a sampled X-Ray trace header set as the runtime sets it: the
  init phase plus the first invocation of a cold container. The figure the target is about;
- ``handler+clients, runtime SDK``: ``handler+clients`` with the zip's SDK removed, so the
  runtime's copy (compiled, from site-packages) is imported;
- with ``--pyc``, ``floor, .pyc`` and ``handler+invocation, .pyc``: the same on a copy of the
  unpacked zip compiled by THIS interpreter (unchecked-hash .pyc), i.e. what shipping bytecode
  would save where the bytecode matches the runtime.

Each sample reports the process's wall time, and the wall and CPU time (``time.process_time``)
measured inside it from just before the statement to just after it (no interpreter start-up,
no process spawn). The figure: ``handler+invocation`` minus ``floor``, medians of the
in-process CPU time (target: 50 ms at most). CPU time because on a shared 2-core machine wall
time mostly measures the queue for a core; importing is single-threaded CPU work, and CPU
time is that work (on Lambda, wall time is it divided by the function's CPU share).

    .venv/bin/python benchmarks/cold_import.py [--runs 9] [--pyc]
    .venv/bin/python benchmarks/cold_import.py --profile handler+invocation   # -X importtime
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT, median, save, table
from filegate import package
from filegate.local.runtime import runtime_packages_dir

PRELUDE = (
    "import sys, time; sys.path[:0] = sys.argv[1:3]\n"
    "_t0, _c0 = time.perf_counter(), time.process_time()\n"
)
EPILOGUE = (
    "\nprint('in-process-ms', (time.perf_counter() - _t0) * 1000,"
    " (time.process_time() - _c0) * 1000)"
)
FLOOR = "import boto3; boto3.client('s3'); boto3.client('dynamodb')"
BUILD_INGESTOR = "import filegate.ingest.handler as h; h.build_ingestor()"
# A sampled trace header, set by the runtime in the environment for each invocation.
TRACE_HEADER = "Root=1-67a0b1c2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
SQS_TEST_EVENT = json.loads((ROOT / "tests" / "events" / "sqs_test_event.json").read_text())
INVOKE = f"""
import os
import filegate.ingest.handler as h
class Context:
    function_name = "filegate-ingest"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-central-1:123456789012:function:filegate-ingest"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    def get_remaining_time_in_millis(self): return 60000
os.environ["_X_AMZN_TRACE_ID"] = {TRACE_HEADER!r}
result = h.lambda_handler({SQS_TEST_EVENT!r}, Context())
assert result == {{"batchItemFailures": []}}, result
"""
VARIANTS = {
    "interpreter": ("pass", "code"),
    "boto3": ("import boto3", "code"),
    "floor": (FLOOR, "code"),
    "handler": ("import filegate.ingest.handler", "code"),
    "handler+clients": (BUILD_INGESTOR, "code"),
    "handler+invocation": (INVOKE, "code"),
    "handler+clients, runtime SDK": (BUILD_INGESTOR, "without-sdk"),
}
PYC_VARIANTS = {
    "floor, .pyc": (FLOOR, "compiled"),
    "handler+invocation, .pyc": (INVOKE, "compiled"),
}
# The top-level names the SDK's distributions put into the zip.
SDK_TOP_LEVEL = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six.py")
_IN_PROCESS = re.compile(r"^in-process-ms (\S+) (\S+)$", re.MULTILINE)


def prepare(work: Path, with_pyc: bool) -> tuple[dict[str, Path], Path]:
    """The code directories by name (the unpacked zip, without its SDK, compiled) and the
    runtime packages directory."""
    built = package.build(work / "lambda.zip")
    dirs = {"code": work / "code", "without-sdk": work / "without-sdk"}
    if with_pyc:
        dirs["compiled"] = work / "compiled"
    for path in dirs.values():
        with zipfile.ZipFile(built.path) as archive:
            archive.extractall(path)
    for name in SDK_TOP_LEVEL:
        path = dirs["without-sdk"] / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    if with_pyc:
        compileall.compile_dir(
            dirs["compiled"],
            quiet=1,
            workers=1,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    return dirs, runtime_packages_dir(work)


def lambda_env(code: Path) -> dict[str, str]:
    """The template's function environment, tracing active, pointed nowhere (no call is made)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "AWS_REGION": "eu-central-1",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": "filegate-ingest",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "LAMBDA_TASK_ROOT": str(code),
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "DDB_TABLE": "filegate-ledger",
        "UPLOAD_BUCKET": "filegate-uploads",
        "POWERTOOLS_SERVICE_NAME": "filegate-ingest",
        "POWERTOOLS_METRICS_NAMESPACE": "filegate",
        "LOG_LEVEL": "INFO",
    }


def run(code: Path, runtime: Path, statement: str, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-I", "-S", "-B", *flags, "-c", PRELUDE + statement + EPILOGUE]
    done = subprocess.run(
        [*command, str(code), str(runtime)],
        env=lambda_env(code),
        capture_output=True,
        text=True,
        check=False,
        cwd=code,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{statement[:60]!r} failed:\n{done.stderr[-3000:]}")
    return done


def sample(dirs: dict[str, Path], runtime: Path, variant: str) -> tuple[float, float, float]:
    """One fresh process: (wall ms, in-process ms, in-process CPU ms)."""
    statement, where = {**VARIANTS, **PYC_VARIANTS}[variant]
    started = time.perf_counter()
    done = run(dirs[where], runtime, statement)
    wall_ms = (time.perf_counter() - started) * 1000
    match = _IN_PROCESS.search(done.stdout)
    assert match, done.stdout
    return wall_ms, float(match.group(1)), float(match.group(2))


def measure(runs: int, with_pyc: bool) -> dict[str, Any]:
    variants = {**VARIANTS, **(PYC_VARIANTS if with_pyc else {})}
    with tempfile.TemporaryDirectory(prefix="filegate-import-") as work:
        dirs, runtime = prepare(Path(work), with_pyc)
        for variant in variants:  # warm the page cache (and check every variant runs)
            sample(dirs, runtime, variant)
        walls: dict[str, list[float]] = {v: [] for v in variants}
        inside: dict[str, list[float]] = {v: [] for v in variants}
        cpu: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(runs):
            for variant in variants:
                wall, in_process, cpu_ms = sample(dirs, runtime, variant)
                walls[variant].append(wall)
                inside[variant].append(in_process)
                cpu[variant].append(cpu_ms)
        written = sorted(str(p) for p in dirs["code"].rglob("__pycache__"))
        if written:
            raise RuntimeError(f"bytecode was written at run time: {written[:3]}")
    medians = {
        v: {
            "wall_ms": median(walls[v]),
            "in_process_ms": median(inside[v]),
            "cpu_ms": median(cpu[v]),
        }
        for v in variants
    }
    figures: dict[str, Any] = {
        "runs": runs,
        "environment": "tracing active (LAMBDA_TASK_ROOT set, AWS_XRAY_DAEMON_ADDRESS"
        " 127.0.0.1:2000, POWERTOOLS_TRACE_DISABLED unset); python -I -S -B",
        "medians": medians,
        "samples_wall_ms": walls,
        "samples_in_process_ms": inside,
        "samples_cpu_ms": cpu,
    }
    figures.update(_derived(medians, with_pyc))
    return figures


def _derived(medians: dict[str, dict[str, float]], with_pyc: bool) -> dict[str, float]:
    def over(variant: str, floor: str = "floor", key: str = "cpu_ms") -> float:
        return medians[variant][key] - medians[floor][key]

    derived = {
        "handler_invocation_minus_floor_cpu_ms": over("handler+invocation"),
        "handler_invocation_minus_floor_in_process_ms": over(
            "handler+invocation", key="in_process_ms"
        ),
        "handler_invocation_over_floor_cpu_ratio": medians["handler+invocation"]["cpu_ms"]
        / medians["floor"]["cpu_ms"],
    }
    if with_pyc:
        derived["pyc_saves_floor_cpu_ms"] = -over("floor, .pyc")
        derived["pyc_saves_handler_invocation_cpu_ms"] = -over(
            "handler+invocation, .pyc", "handler+invocation"
        )
        derived["pyc_handler_invocation_minus_floor_cpu_ms"] = over(
            "handler+invocation, .pyc", "floor, .pyc"
        )
    return derived


def render(figures: dict[str, Any]) -> str:
    medians = figures["medians"]
    floor = medians["floor"]
    rows = [
        [
            variant,
            f"{values['wall_ms']:.0f}",
            f"{values['in_process_ms']:.0f}",
            f"{values['cpu_ms']:.0f}",
            f"{values['cpu_ms'] - floor['cpu_ms']:+.0f}",
        ]
        for variant, values in medians.items()
    ]
    headers = ["variant", "wall ms", "in-process ms", "in-process CPU ms", "CPU vs floor"]
    lines = [
        table(headers, rows),
        "handler + first invocation - floor: CPU"
        f" {figures['handler_invocation_minus_floor_cpu_ms']:+.0f} ms (target <= +50),"
        f" in-process wall {figures['handler_invocation_minus_floor_in_process_ms']:+.0f} ms,"
        f" CPU ratio {figures['handler_invocation_over_floor_cpu_ratio']:.2f}",
    ]
    if "pyc_saves_floor_cpu_ms" in figures:
        lines.append(
            f".pyc ({sys.version_info.major}.{sys.version_info.minor}) saves CPU: floor"
            f" {figures['pyc_saves_floor_cpu_ms']:.0f} ms, handler + invocation"
            f" {figures['pyc_saves_handler_invocation_cpu_ms']:.0f} ms; with .pyc, handler +"
            f" invocation - floor {figures['pyc_handler_invocation_minus_floor_cpu_ms']:+.0f} ms"
        )
    return "\n".join(lines)


def profile(variant: str) -> None:
    """One -X importtime run of a variant: the imports over 2 ms, slowest first."""
    statement, where = {**VARIANTS, **PYC_VARIANTS}[variant]
    with tempfile.TemporaryDirectory(prefix="filegate-import-") as work:
        dirs, runtime = prepare(Path(work), where == "compiled")
        stderr = run(dirs[where], runtime, statement, "-X", "importtime").stderr
    rows = []
    for line in stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]) / 1000, int(parts[0]) / 1000, parts[2].rstrip()))
    for cumulative, own, name in sorted(rows, reverse=True):
        if cumulative >= 2:
            print(f"{cumulative:8.1f} {own:7.1f} {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--pyc", action="store_true", help="also measure with .pyc compiled here")
    parser.add_argument("--profile", choices=[*VARIANTS, *PYC_VARIANTS])
    args = parser.parse_args()
    if args.profile:
        profile(args.profile)
        return
    figures = measure(max(7, args.runs), args.pyc)
    print(
        "cold start, fresh `python -I -S -B` processes, tracing active,"
        f" median of {figures['runs']} interleaved runs"
    )
    print(render(figures))
    save("cold_import", figures)


if __name__ == "__main__":
    main()
