"""Cold start of the ingestion function against its floor, from the real zip, as on Lambda.

Builds the Lambda zip (``filegate.package.build``: with the runtime's cpython-312 bytecode),
unpacks it twice, as shipped and with its ``__pycache__`` removed (the zip as it was before it
shipped bytecode, or as built where no 3.12 interpreter exists), and copies the runtime's
package directory (``filegate.local.runtime.runtime_packages_dir``: boto3, botocore and their
dependencies only), compiled by the same interpreter (unchecked-hash .pyc), as the runtime's
own SDK is assumed to be. Every directory is made read-only, as /var/task is.

Each sample is a FRESH ``python3.12 -I -S -B`` subprocess (the interpreter of the template's
Runtime, found as the build finds it: ``package.build_python``; ``--python`` overrides) whose
``sys.path`` is exactly [unpacked zip, runtime packages], with the function's environment as
the template sets it, tracing ACTIVE: POWERTOOLS_TRACE_DISABLED unset, LAMBDA_TASK_ROOT set (so
the X-Ray SDK takes its Lambda context and Powertools traces), AWS_XRAY_DAEMON_ADDRESS
127.0.0.1:2000 as Lambda provides one. No daemon listens here: the X-Ray SDK sends each finished
subsegment as one UDP datagram (``sendto`` on an unconnected socket), which returns at once
whether or not anything listens, so nothing waits on the network. ``-B`` and the read-only
directories because Lambda's /var/task is read-only: nothing is written at run time, so a
module without matching bytecode is compiled at every cold start (the script checks that no
``__pycache__`` appeared where none was shipped).

Variants, interleaved so machine noise hits every one alike (median of ``--runs``, default 9):

- ``interpreter``: ``pass`` (interpreter start-up, paid by every variant);
- ``boto3``: ``import boto3`` (the zip's own, pinned, with its shipped bytecode);
- ``floor``: ``import boto3`` + an S3 and a DynamoDB client: what any function doing this job
  pays before its first request;
- ``handler``: ``import filegate.ingest.handler`` (Lambda's init phase);
- ``handler+clients``: the import plus ``build_ingestor()`` (boto3 imported, the two clients);
- ``handler+invocation``: the import plus one invocation with an SQS batch whose one message is
  S3's ``s3:TestEvent``, under a sampled X-Ray trace header set as the runtime sets it: the
  init phase plus the first invocation of a cold container. The figure the target is about;
- ``floor, source only`` and ``handler+invocation, source only``: the same on the zip without
  its bytecode (every module compiled at the cold start);
- ``floor, runtime SDK`` and ``handler+clients, runtime SDK``: with the zip's SDK removed, so
  the runtime's copy (compiled) is imported: what bundling the SDK costs.

Each sample reports the process's wall time, and the wall and CPU time (``time.process_time``)
measured inside it from just before the statement to just after it (no interpreter start-up,
no process spawn). The figure: ``handler+invocation`` minus ``floor``, medians of the
in-process CPU time (target: 50 ms at most). CPU time because on a shared 2-core machine wall
time mostly measures the queue for a core; importing is single-threaded CPU work, and CPU
time is that work (on Lambda, wall time is it divided by the function's CPU share).

    .venv/bin/python benchmarks/cold_import.py [--runs 9] [--python PATH]
    .venv/bin/python benchmarks/cold_import.py --profile handler+invocation   # -X importtime
"""

from __future__ import annotations

import argparse
import json
import os
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
    "interpreter": ("pass", "shipped"),
    "boto3": ("import boto3", "shipped"),
    "floor": (FLOOR, "shipped"),
    "handler": ("import filegate.ingest.handler", "shipped"),
    "handler+clients": (BUILD_INGESTOR, "shipped"),
    "handler+invocation": (INVOKE, "shipped"),
    "floor, source only": (FLOOR, "source"),
    "handler+invocation, source only": (INVOKE, "source"),
    "floor, runtime SDK": (FLOOR, "without-sdk"),
    "handler+clients, runtime SDK": (BUILD_INGESTOR, "without-sdk"),
}
# The top-level names the SDK's distributions put into the zip.
SDK_TOP_LEVEL = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six.py")
_IN_PROCESS = re.compile(r"^in-process-ms (\S+) (\S+)$", re.MULTILINE)


def interpreter(given: str | None) -> tuple[str, package.Runtime]:
    """The interpreter to sample with: the template's Runtime version, as the build finds it."""
    runtime = package.lambda_runtime()
    python, why_not = (given, "") if given else package.build_python(runtime)
    if python is None:
        raise SystemExit(f"no {runtime.name} interpreter ({why_not}): pass --python")
    return python, runtime


def prepare(work: Path, python: str) -> tuple[dict[str, Path], Path, package.Package]:
    """The code directories by name (the zip as shipped, without its bytecode, without its
    SDK), the runtime packages directory (compiled by ``python``) and the built zip."""
    built = package.build(work / "lambda.zip")
    if built.bytecode is None:
        raise SystemExit("the zip was built without bytecode: see the build's warning above")
    dirs = {name: work / name for name in ("shipped", "source", "without-sdk")}
    for path in dirs.values():
        with zipfile.ZipFile(built.path) as archive:
            archive.extractall(path)
    for cache in list(dirs["source"].rglob("__pycache__")):
        shutil.rmtree(cache)
    for name in SDK_TOP_LEVEL:
        path = dirs["without-sdk"] / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    runtime = work / "runtime"
    shutil.copytree(
        runtime_packages_dir(work), runtime, ignore=shutil.ignore_patterns("__pycache__")
    )
    subprocess.run(
        [python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(runtime)],
        check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0"},
    )
    return dirs, runtime, built


def read_only(paths: list[Path], writable: bool = False) -> None:
    """Make the trees read-only, as /var/task (or writable again, to clean up)."""
    for root in paths:
        for path in [root, *root.rglob("*")]:
            if path.is_symlink():
                continue
            path.chmod((0o755 if writable else 0o555) if path.is_dir() else 0o444)


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
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{package.lambda_runtime().name}",
        "LAMBDA_TASK_ROOT": str(code),
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "DDB_TABLE": "filegate-ledger",
        "UPLOAD_BUCKET": "filegate-uploads",
        "POWERTOOLS_SERVICE_NAME": "filegate-ingest",
        "POWERTOOLS_METRICS_NAMESPACE": "filegate",
        "LOG_LEVEL": "INFO",
    }


def run(
    python: str, code: Path, runtime: Path, statement: str, *flags: str
) -> subprocess.CompletedProcess[str]:
    command = [python, "-I", "-S", "-B", *flags, "-c", PRELUDE + statement + EPILOGUE]
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


def sample(
    python: str, dirs: dict[str, Path], runtime: Path, variant: str
) -> tuple[float, float, float]:
    """One fresh process: (wall ms, in-process ms, in-process CPU ms)."""
    statement, where = VARIANTS[variant]
    started = time.perf_counter()
    done = run(python, dirs[where], runtime, statement)
    wall_ms = (time.perf_counter() - started) * 1000
    match = _IN_PROCESS.search(done.stdout)
    assert match, done.stdout
    return wall_ms, float(match.group(1)), float(match.group(2))


def measure(runs: int, python: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="filegate-import-") as work:
        dirs, runtime, built = prepare(Path(work), python)
        shipped = sorted(p.relative_to(work) for p in Path(work).rglob("*"))
        read_only([*dirs.values(), runtime])
        try:
            walls, inside, cpu = _interleaved(runs, python, dirs, runtime)
        finally:
            read_only([*dirs.values(), runtime], writable=True)
        if sorted(p.relative_to(work) for p in Path(work).rglob("*")) != shipped:
            raise RuntimeError("a file was written at run time (bytecode?)")
    medians = {
        v: {
            "wall_ms": median(walls[v]),
            "in_process_ms": median(inside[v]),
            "cpu_ms": median(cpu[v]),
        }
        for v in VARIANTS
    }
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    figures: dict[str, Any] = {
        "runs": runs,
        "python": f"{python} ({version})",
        "zip": {"bytes": built.size, "bytecode": built.bytecode},
        "environment": "tracing active (LAMBDA_TASK_ROOT set, AWS_XRAY_DAEMON_ADDRESS"
        " 127.0.0.1:2000, POWERTOOLS_TRACE_DISABLED unset); python -I -S -B, read-only code",
        "medians": medians,
        "samples_wall_ms": walls,
        "samples_in_process_ms": inside,
        "samples_cpu_ms": cpu,
    }
    figures.update(_derived(medians))
    return figures


Samples = dict[str, list[float]]


def _interleaved(
    runs: int, python: str, dirs: dict[str, Path], runtime: Path
) -> tuple[Samples, Samples, Samples]:
    for variant in VARIANTS:  # warm the page cache (and check every variant runs)
        sample(python, dirs, runtime, variant)
    walls: Samples = {v: [] for v in VARIANTS}
    inside: Samples = {v: [] for v in VARIANTS}
    cpu: Samples = {v: [] for v in VARIANTS}
    for _ in range(runs):
        for variant in VARIANTS:
            wall, in_process, cpu_ms = sample(python, dirs, runtime, variant)
            walls[variant].append(wall)
            inside[variant].append(in_process)
            cpu[variant].append(cpu_ms)
    return walls, inside, cpu


def _derived(medians: dict[str, dict[str, float]]) -> dict[str, float]:
    def cpu(variant: str) -> float:
        return medians[variant]["cpu_ms"]

    return {
        "handler_invocation_minus_floor_cpu_ms": cpu("handler+invocation") - cpu("floor"),
        "handler_invocation_minus_floor_in_process_ms": medians["handler+invocation"][
            "in_process_ms"
        ]
        - medians["floor"]["in_process_ms"],
        "handler_invocation_over_floor_cpu_ratio": cpu("handler+invocation") / cpu("floor"),
        "source_only_minus_floor_cpu_ms": cpu("handler+invocation, source only")
        - cpu("floor, source only"),
        "bytecode_saves_handler_invocation_cpu_ms": cpu("handler+invocation, source only")
        - cpu("handler+invocation"),
        "handler_invocation_minus_runtime_sdk_floor_cpu_ms": cpu("handler+invocation")
        - cpu("floor, runtime SDK"),
        "bundled_sdk_costs_floor_cpu_ms": cpu("floor") - cpu("floor, runtime SDK"),
        "bundled_sdk_costs_handler_clients_cpu_ms": cpu("handler+clients")
        - cpu("handler+clients, runtime SDK"),
    }


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
    lines.append(
        "without bytecode (source only): handler + first invocation - floor"
        f" {figures['source_only_minus_floor_cpu_ms']:+.0f} ms; the shipped bytecode saves"
        f" {figures['bytecode_saves_handler_invocation_cpu_ms']:.0f} ms of handler + invocation"
    )
    lines.append(
        "bundled SDK vs the runtime's (compiled): floor"
        f" {figures['bundled_sdk_costs_floor_cpu_ms']:+.0f} ms, handler + clients"
        f" {figures['bundled_sdk_costs_handler_clients_cpu_ms']:+.0f} ms; handler + invocation"
        " - floor on the runtime's SDK"
        f" {figures['handler_invocation_minus_runtime_sdk_floor_cpu_ms']:+.0f} ms"
    )
    return "\n".join(lines)


def profile(variant: str, python: str) -> None:
    """One -X importtime run of a variant: the imports over 2 ms, slowest first."""
    statement, where = VARIANTS[variant]
    with tempfile.TemporaryDirectory(prefix="filegate-import-") as work:
        dirs, runtime, _ = prepare(Path(work), python)
        stderr = run(python, dirs[where], runtime, statement, "-X", "importtime").stderr
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
    parser.add_argument("--python", help="the interpreter to sample with (default: the Runtime's)")
    parser.add_argument("--profile", choices=list(VARIANTS))
    args = parser.parse_args()
    python, runtime = interpreter(args.python)
    if args.profile:
        profile(args.profile, python)
        return
    figures = measure(max(7, args.runs), python)
    print(
        f"cold start, fresh `{runtime.name} -I -S -B` processes ({figures['python']}), tracing"
        f" active, read-only code, median of {figures['runs']} interleaved runs"
    )
    print(render(figures))
    save("cold_import", figures)


if __name__ == "__main__":
    main()
