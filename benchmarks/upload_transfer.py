"""One file uploaded with `filegate upload` and with `aws s3 cp`, same endpoint, same run.

Starts a local stack on a free port (emulator, upload API, ingestion workers) and a partner,
writes a file of random bytes, 1 GiB unless ``--size-mib`` (incompressible; flushed to disk,
and in the page cache up to the RAM's size, so the disk is not what is measured) and uploads
it with each tool: once each untimed (a warm-up: the first run in a fresh stack pays costs the
others do not), then in rounds, the tools taking turns to go first (filegate then aws, aws then
filegate, ...). Each run is one child process, timed from spawn to exit:

- ``filegate upload FILE --api URL`` (defaults: SHA-256 of the file, declaration, a multipart
  plan of 8 MiB parts, 4 parts in flight, complete);
- ``aws s3 cp FILE s3://bucket/key --endpoint-url URL`` (the AWS CLI from PyPI, defaults: 8 MiB
  parts, 10 in flight, botocore's default checksums).

MB/s = file size / wall time, median of the runs; the ratio is filegate's median over aws's
(target: >= 1.0), and each round's own ratio is kept too, with the machine's 1-minute load
average before and after each run (the machine is shared). The client's peak RSS is the
kernel's high-water mark (VmHWM) of the child's process tree, polled every 50 ms (neither
tool starts processes of its own); target < 150 MB.
Between runs, untimed: wait for the ledger to record the object (for filegate's upload that
includes the ingestion hashing 1 GiB), delete every version of it, and wait for the delete
to be recorded, so that no run shares the emulator with the previous run's work, and the
emulator does not grow by 1 GiB a run.

    .venv/bin/python benchmarks/upload_transfer.py [--runs 3] [--size-mib 1024] [--label L]

Figures go to ``results/upload_transfer.json`` (``upload_transfer_<N>mib.json`` at another size;
``--label`` adds ``_<label>``, so that a new run does not overwrite figures a page cites).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import urllib3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, median, save, table

BIN = Path(sys.executable).parent
MiB = 1024 * 1024
RSS_TARGET_MB = 150
SETTLE_TIMEOUT = 300.0
POLL_SECONDS = 0.05
# ACCEPTED/REJECTED for a declared upload, RECEIVED for any other object.
FINAL = {"ACCEPTED", "REJECTED", "RECEIVED"}


@contextlib.contextmanager
def local_stack() -> Iterator[Any]:
    """A fresh local stack on a free port, with its own state directory."""
    from filegate.local.stack import LocalStack
    from filegate.settings import LocalSettings

    with tempfile.TemporaryDirectory(prefix="filegate-bench-") as state_dir:
        os.environ["FILEGATE_STATE_DIR"] = state_dir
        settings = LocalSettings.resolve(port=free_port())
        with LocalStack(settings, progress=lambda _: None).running() as state:
            yield state


def add_partner(state: Any, name: str) -> str:
    """A new partner on the stack; its API key."""
    from filegate.uploads.partners import PartnerRegistry

    env = state.env()
    registry = PartnerRegistry(env["PartnersTableName"], state.target.client("dynamodb"))
    _, api_key = registry.add(name)
    return api_key


def write_random_file(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        for _ in range(size // (8 * MiB)):
            handle.write(os.urandom(8 * MiB))
        handle.write(os.urandom(size % (8 * MiB)))
        handle.flush()
        # On disk before the first run: its writeback would otherwise slow the first run's
        # emulator, which writes every part to a temporary file.
        os.fsync(handle.fileno())


def timed_child(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run one child: wall and CPU seconds, peak RSS (MB) of its tree, exit code, stdout, and
    the CPU the local stack spent meanwhile (the two share the machine's cores)."""
    cpu_before = _children_cpu()
    stack_before = _stack_cpu()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        peak_kib = 0
        while child.poll() is None:
            peak_kib = max(peak_kib, tree_hwm_kib(child.pid))
            time.sleep(POLL_SECONDS)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    return {
        "exit_code": child.returncode,
        "seconds": seconds,
        "cpu_seconds": round(_children_cpu() - cpu_before, 2),
        "stack_cpu_seconds": round(_stack_cpu() - stack_before, 2),
        "peak_rss_mb": peak_kib / 1024,
        # The machine is shared: its 1-minute load average before and after the run.
        "load_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "stdout": stdout,
        **({"stderr_tail": stderr[-1000:]} if child.returncode else {}),
    }


def _children_cpu() -> float:
    """User + system CPU seconds of every child reaped so far (CPU time, unlike RSS, starts
    at zero in a forked child)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stack_cpu() -> float:
    """User + system CPU seconds of this process and its live descendants: the local stack
    (emulator, upload API, function workers), measured while no client runs."""
    total = 0.0
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def tree_hwm_kib(pid: int) -> int:
    """The summed VmHWM (peak RSS since exec) of a process and its descendants, in KiB.

    Not ``ru_maxrss``: a child forked from this (large) process starts with the parent's RSS
    as its high-water mark, and exec does not reset it. VmHWM belongs to the address space,
    which exec replaces. Being a high-water mark, polling it misses no peak, only growth in
    the last poll interval before exit.
    """
    try:
        processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


def client_env(state: Any, api_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "FILEGATE_API_KEY": api_key,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": state.region,
            "NO_COLOR": "1",
        }
    )
    return env


def run_filegate(state: Any, env: dict[str, str], path: Path) -> dict[str, Any]:
    api = state.env()["upload_api_url"]
    command = [str(BIN / "filegate"), "upload", str(path), "--api", api, "--output", "json"]
    run = timed_child(command, env)
    run.pop("stdout")
    return run


def run_aws(state: Any, env: dict[str, str], path: Path, key: str) -> dict[str, Any]:
    bucket = state.env()["BucketName"]
    command = [
        str(BIN / "aws"),
        "s3",
        "cp",
        str(path),
        f"s3://{bucket}/{key}",
        "--endpoint-url",
        state.endpoint_url,
        "--region",
        state.region,
        "--no-progress",
        "--only-show-errors",
    ]
    run = timed_child(command, env)
    run.pop("stdout")
    return run


def ledger_status(state: Any, key: str) -> str | None:
    ddb = state.target.client("dynamodb")
    found = ddb.get_item(
        TableName=state.env()["TableName"], Key={"s3_key": {"S": key}}, ConsistentRead=True
    ).get("Item")
    return None if found is None else str(found["processing_status"]["S"])


def wait_status(state: Any, key: str, wanted: set[str]) -> str:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        status = ledger_status(state, key)
        if status in wanted:
            return status
        time.sleep(0.5)
    raise RuntimeError(f"{key} did not reach {wanted} within {SETTLE_TIMEOUT:.0f} s")


def clear_bucket(state: Any) -> list[str]:
    """Wait for the ledger's verdict on every object, delete every version, wait for that
    to be recorded; the verdicts. Whole bucket: a failed run leaves keys nobody printed."""
    s3 = state.target.client("s3")
    bucket = state.env()["BucketName"]
    listed = s3.list_object_versions(Bucket=bucket)
    entries = listed.get("Versions", []) + listed.get("DeleteMarkers", [])
    keys = sorted({entry["Key"] for entry in entries})
    verdicts = [wait_status(state, key, FINAL) for key in keys]
    for entry in entries:
        s3.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])
    for key in keys:
        wait_status(state, key, {"DELETED"})
    return verdicts


def measure(runs: int, size: int) -> dict[str, Any]:
    samples: dict[str, list[dict[str, Any]]] = {"filegate": [], "aws": []}
    with tempfile.TemporaryDirectory(prefix="filegate-bench-file-") as folder:
        path = Path(folder) / "bench.bin"
        write_random_file(path, size)
        with local_stack() as state:
            env = client_env(state, add_partner(state, "bench partner"))
            tools = {
                "filegate": lambda _: run_filegate(state, env, path),
                "aws": lambda number: run_aws(state, env, path, f"bench/a-{number}.bin"),
            }
            for run_tool in tools.values():  # warm-up, untimed: first-run costs
                run_tool("warm-up")
                clear_bucket(state)
            for number in range(runs):
                # Alternate who goes first, so that neither always follows the other.
                order = list(tools) if number % 2 == 0 else list(reversed(tools))
                for tool in order:
                    run = tools[tool](number)
                    run["ledger"] = clear_bucket(state)
                    samples[tool].append(run)
                    print(f"run {number + 1} {tool}: {_line(run, size)}", file=sys.stderr)
            phases = filegate_phases(state, env["FILEGATE_API_KEY"], path)
    return {**summarize(samples, runs, size), "filegate_phases_s": phases}


def _line(run: dict[str, Any], size: int) -> str:
    if run["exit_code"]:
        return f"FAILED (exit {run['exit_code']}): {run['stderr_tail'][-300:]}"
    return (
        f"{size / run['seconds'] / 1e6:.1f} MB/s, {run['seconds']:.1f} s, CPU"
        f" {run['cpu_seconds']:.1f} s (local stack {run['stack_cpu_seconds']:.1f} s),"
        f" peak RSS {run['peak_rss_mb']:.0f} MB,"
        f" ledger {run['ledger']}, load {run['load_1m'][0]:.1f} -> {run['load_1m'][1]:.1f}"
    )


def filegate_phases(state: Any, api_key: str, path: Path) -> dict[str, float]:
    """One more upload through the client library, with a timing connection pool injected:
    where the time goes (hash, declare, sign, parts, complete). In this process, untimed above."""
    from filegate.uploads.client import UploadClient

    marks: list[tuple[str, str, float, float]] = []

    class TimedPool(urllib3.PoolManager):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return super().request(method, url, *args, **kwargs)
            finally:
                marks.append((method, url, started, time.monotonic()))

    client = UploadClient(state.env()["upload_api_url"], api_key, http=TimedPool(maxsize=6))
    started = time.monotonic()
    client.upload(path)
    ended = time.monotonic()
    clear_bucket(state)
    declare, puts = marks[0], [m for m in marks[1:] if m[0] == "PUT"]
    posts = [m for m in marks[1:] if m[0] == "POST"]  # none for a single PUT
    signs = [m for m in posts if m[1].rstrip("/").endswith("/parts")]
    completes = [m for m in posts if m[1].rstrip("/").endswith("/complete")]
    return {
        "hash": round(declare[2] - started, 2),
        "declare": round(declare[3] - declare[2], 2),
        "sign": round(sum(m[3] - m[2] for m in signs), 2),
        "parts": round(max(p[3] for p in puts) - min(p[2] for p in puts), 2),
        "complete": round(sum(m[3] - m[2] for m in completes), 2),
        "total": round(ended - started, 2),
    }


def summarize(samples: dict[str, list[dict[str, Any]]], runs: int, size: int) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for tool, tool_runs in samples.items():
        ok = [run for run in tool_runs if run["exit_code"] == 0]
        rates = [size / run["seconds"] / 1e6 for run in ok]
        tools[tool] = {
            "runs": tool_runs,
            "failed_runs": len(tool_runs) - len(ok),
            "mb_per_s": [round(rate, 2) for rate in rates],
            "median_mb_per_s": round(median(rates), 2),
            "median_seconds": round(median([run["seconds"] for run in ok]), 2),
            "median_cpu_seconds": round(median([run["cpu_seconds"] for run in ok]), 2),
            "median_stack_cpu_seconds": round(median([run["stack_cpu_seconds"] for run in ok]), 2),
            "peak_rss_mb": round(max(run["peak_rss_mb"] for run in tool_runs), 1),
        }
    ratio = tools["filegate"]["median_mb_per_s"] / tools["aws"]["median_mb_per_s"]
    # Same-round ratios (filegate's run, then aws's): less exposed to the load moving.
    pairs = [
        round(aws["seconds"] / fg["seconds"], 3)
        for fg, aws in zip(samples["filegate"], samples["aws"], strict=True)
        if not fg["exit_code"] and not aws["exit_code"]
    ]
    return {
        "file": {"size_bytes": size, "content": "random bytes (os.urandom), page-cached"},
        "runs_per_tool": runs,
        "order": "one untimed warm-up each, then rounds alternating who goes first: fa, af, ...",
        "tools": tools,
        "throughput_ratio_filegate_over_aws": round(ratio, 3),
        "pair_ratios_filegate_over_aws": pairs,
        "median_pair_ratio": round(median(pairs), 3) if pairs else None,
        "target_throughput_met": ratio >= 1.0 and not tools["filegate"]["failed_runs"],
        "target_rss_met": tools["filegate"]["peak_rss_mb"] < RSS_TARGET_MB,
    }


def render(figures: dict[str, Any]) -> str:
    rows = [
        [
            name,
            " / ".join(f"{rate:.1f}" for rate in tool["mb_per_s"]),
            f"{tool['median_mb_per_s']:.1f}",
            f"{tool['median_seconds']:.1f}",
            f"{tool['median_cpu_seconds']:.1f}",
            f"{tool['median_stack_cpu_seconds']:.1f}",
            f"{tool['peak_rss_mb']:.0f}",
            tool["failed_runs"],
        ]
        for name, tool in (("filegate upload", figures["tools"]["filegate"]),
                           ("aws s3 cp", figures["tools"]["aws"]))
    ]  # fmt: skip
    headers = [
        "client", "MB/s per run", "median MB/s", "median s", "median CPU s",
        "median local stack CPU s", "peak RSS MB", "failed runs",
    ]  # fmt: skip
    ratio = figures["throughput_ratio_filegate_over_aws"]
    rss = figures["tools"]["filegate"]["peak_rss_mb"]
    return (
        table(headers, rows)
        + f"\nthroughput ratio filegate/aws: {ratio:.2f}"
        + f" (per round: {figures['pair_ratios_filegate_over_aws']})"
        + f" (target >= 1.00: {'met' if figures['target_throughput_met'] else 'MISSED'});"
        + f" filegate peak RSS {rss:.0f} MB"
        + f" (target < {RSS_TARGET_MB} MB: {'met' if figures['target_rss_met'] else 'MISSED'})"
        + f"\nfilegate phases (one library upload), s: {figures['filegate_phases_s']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--label", default="", help="suffix of the results file's name")
    args = parser.parse_args()
    figures = measure(args.runs, args.size_mib * MiB)
    print(render(figures))
    name = "upload_transfer" if args.size_mib == 1024 else f"upload_transfer_{args.size_mib}mib"
    save(f"{name}_{args.label}" if args.label else name, figures)


if __name__ == "__main__":
    main()
