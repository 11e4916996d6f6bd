"""Local end to end: a burst of uploads through S3 -> SQS -> Lambda workers -> ledger.

Starts a local stack on a free port, then, against the same emulator, in pairs (3 by default):

1. FLOOR: the client itself does S3 put_object (to a bucket with no notification) and a
   DynamoDB put_item per object: no SQS, no Lambda. objects/s, and put -> item latency.
2. PIPELINE: the client uploads the burst to the stack's bucket (notifications to SQS, the local
   event source mapping, warm workers running the real zip). objects/s from the first upload to
   the last ledger write, and upload-to-ledger latency per object = the item's ``updated_at``
   (written by the function) minus the client's put-completion time (same machine clock).
   Progress is watched through DescribeTable's ItemCount (cheap in moto), and the table is
   scanned once at the end of the pair, so measuring adds little load on the emulator.

Each pair measures the floor and then the pipeline, one right after the other, and its ratio
is the pipeline's objects/s over that floor's: on a shared machine the speed of both moves
by tens of percent within minutes (other tenants), far less within one pair. The figures
reported are the median pair's (by ratio) and the median of the pairs' ratios. The first
pair also measures the ledger-write floor (diagnosis, below).

Each phase also records the CPU time (Linux /proc) that the emulator (both processes), the workers
and this process (client threads, event source mapping, log shipping) spent on it, per object:
on a shared machine these move far less between runs than objects/s do.

The floor's clients are the stack's own (``LocalState.target``): its DynamoDB calls go to the
DynamoDB emulator process, as the function's do.

Former targets, still reported: pipeline throughput >= half the floor's, latency p95 < 1 s.
Since issue 10 they are not targets: the local twin exists for correctness and fast tests, and
this benchmark decides whether a speed-only seam into moto earns its place (at least 10 % of
throughput). On a shared machine the steadiest figure is the emulator's CPU per object; compare
configurations in interleaved runs (docs/benchmarks.md, "Issue 10").
``FILEGATE_LOCAL_DYNAMODB_PROCESS=0`` in the environment serves DynamoDB from the one emulator
(the "before" of the fourth round).
``--unpatched-sqs`` runs the emulator without the SQS patch (FILEGATE_EMULATOR_SQS_PATCH=0),
``--unpatched-ddb`` without the DynamoDB UpdateItem patch (FILEGATE_EMULATOR_DDB_PATCH=0).

    .venv/bin/python benchmarks/e2e_burst.py [--count 2000] [--pairs 3] [--threads 4]
        [--unpatched-sqs] [--unpatched-ddb]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, median, percentile, save, table

BODY = b"x" * 1024
POLL_SECONDS = 0.5
FLOOR_BUCKET = "filegate-bench-floor"
FLOOR_TABLE = "filegate-bench-floor"


@contextlib.contextmanager
def local_stack(unpatched_sqs: bool, unpatched_ddb: bool = False) -> Iterator[Any]:
    """A fresh local stack on a free port, with its own state directory."""
    from filegate.local.stack import LocalStack
    from filegate.settings import LocalSettings

    switches = {
        "FILEGATE_EMULATOR_SQS_PATCH": unpatched_sqs,
        "FILEGATE_EMULATOR_DDB_PATCH": unpatched_ddb,
    }
    with tempfile.TemporaryDirectory(prefix="filegate-bench-") as state_dir:
        os.environ["FILEGATE_STATE_DIR"] = state_dir
        for name, off in switches.items():
            if off:
                os.environ[name] = "0"
        try:
            settings = LocalSettings.resolve(port=free_port(), api_port=free_port())
            with LocalStack(settings, progress=lambda _: None).running() as state:
                yield state
        finally:
            for name in switches:
                os.environ.pop(name, None)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, str]:
    """This process's child processes: pid -> "emulator" or "workers"."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if ppid == os.getpid():
            found[int(entry.name)] = (
                "emulator" if b"filegate.local.emulator" in command else "workers"
            )
    return found


def cpu_per_object(count: int, figures: dict[str, Any]) -> Generator[None, None, None]:
    """Adds to ``figures`` the CPU ms per object each process group spent between the first
    ``next()`` and ``close()`` (or the end of a ``with``, through :func:`cpu_block`)."""
    processes = {**_children(), os.getpid(): "client"}
    before = {pid: _cpu_seconds(pid) for pid in processes}
    try:
        yield
    finally:
        _record_cpu(count, figures, processes, before)


cpu_block = contextlib.contextmanager(cpu_per_object)


def _record_cpu(
    count: int, figures: dict[str, Any], processes: dict[int, str], before: dict[int, float]
) -> None:
    spent: dict[str, float] = {"emulator": 0.0, "workers": 0.0, "client": 0.0}
    for pid, group in processes.items():
        spent[group] += max(0.0, _cpu_seconds(pid) - before[pid])
    figures["cpu_ms_per_object"] = {g: round(1000 * s / count, 2) for g, s in spent.items()}


def _burst(count: int, threads: int, put: Callable[[int], None]) -> tuple[float, list[float]]:
    """Run ``put(i)`` for every i on a thread pool; the wall time and each completion time."""
    done = [0.0] * count

    def one(index: int) -> None:
        put(index)
        done[index] = time.time()

    started = time.time()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(count)))
    return started, done


def create_floor_resources(state: Any) -> None:
    """The floor's bucket (no notification) and table."""
    s3, ddb = state.target.client("s3"), state.target.client("dynamodb")
    s3.create_bucket(
        Bucket=FLOOR_BUCKET, CreateBucketConfiguration={"LocationConstraint": state.region}
    )
    ddb.create_table(
        TableName=FLOOR_TABLE,
        KeySchema=[{"AttributeName": "s3_key", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "s3_key", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def floor(state: Any, count: int, threads: int) -> dict[str, Any]:
    """The client doing S3 put + DynamoDB put itself: the best the emulator can do."""
    s3, ddb = state.target.client("s3"), state.target.client("dynamodb")
    run = uuid.uuid4().hex[:8]
    latencies = [0.0] * count

    def put(index: int) -> None:
        key = f"floor-{run}/{index:05d}.bin"
        s3.put_object(Bucket=FLOOR_BUCKET, Key=key, Body=BODY, ContentType="text/plain")
        put_done = time.time()
        ddb.put_item(
            TableName=FLOOR_TABLE,
            Item={"s3_key": {"S": key}, "updated_at": {"S": datetime.now().isoformat()}},
        )
        latencies[index] = time.time() - put_done

    started, done = _burst(count, threads, put)
    wall = max(done) - started
    return {"objects_per_s": count / wall, "wall_s": wall, **_latency(latencies)}


def floor_ledger_write(state: Any, count: int, threads: int) -> dict[str, Any]:
    """Diagnosis, not the target: the floor with the ledger's own conditional UpdateItem
    (``Ledger.record``) in place of PutItem. moto's UpdateItem is far dearer than PutItem."""
    from filegate.ledger import Ledger, LedgerEntry, Status

    s3, ddb = state.target.client("s3"), state.target.client("dynamodb")
    ledger = Ledger(FLOOR_TABLE, ddb)
    latencies = [0.0] * count

    def put(index: int) -> None:
        key = f"floor-ledger/{index:05d}.bin"
        s3.put_object(Bucket=FLOOR_BUCKET, Key=key, Body=BODY, ContentType="text/plain")
        put_done = time.time()
        entry = LedgerEntry(
            key=key, bucket=FLOOR_BUCKET, status=Status.RECEIVED, event_name="ObjectCreated:Put",
            event_time="2026-11-24T00:00:00.000Z", sequencer=f"{index + 1:018X}", size=len(BODY),
            content_type="text/plain", etag="0" * 32,
        )  # fmt: skip
        ledger.record(entry)
        latencies[index] = time.time() - put_done

    started, done = _burst(count, threads, put)
    wall = max(done) - started
    return {"objects_per_s": count / wall, "wall_s": wall, **_latency(latencies)}


def pipeline(
    state: Any, count: int, threads: int, timeout: float, cpu: Generator[None, None, None]
) -> dict[str, Any]:
    """Uploads to the stack's bucket; the ledger items the function writes say when.
    ``cpu`` (a started :func:`cpu_per_object`) is closed once every item is in the table."""
    s3, ddb = state.target.client("s3"), state.target.client("dynamodb")
    bucket, table_name = state.outputs["BucketName"], state.outputs["TableName"]
    run = uuid.uuid4().hex[:8]
    keys = [f"bench-{run}/{index:05d}.bin" for index in range(count)]

    def put(index: int) -> None:
        s3.put_object(Bucket=bucket, Key=keys[index], Body=BODY, ContentType="text/plain")

    before = _item_count(ddb, table_name)
    started, done = _burst(count, threads, put)
    uploaded = max(done)
    depth = _queue_depth(state)
    recorded = _wait_for_items(ddb, table_name, before + count, uploaded + timeout) - before
    cpu.close()  # the CPU figures end here: the scan below is the benchmark's, not the pipeline's
    updated = _updated_at(ddb, table_name, f"bench-{run}/")
    latencies = [updated[key] - done[i] for i, key in enumerate(keys) if key in updated]
    last = max(updated.values()) if updated else uploaded
    return {
        "objects_per_s": len(updated) / (last - started),
        "upload_rate_per_s": count / (uploaded - started),
        "queue_depth_after_upload": depth,
        "recorded": len(updated),
        "complete": len(updated) == count,
        "wait_seen_items": recorded,
        "wall_s": last - started,
        **_latency(latencies),
    }


def _queue_depth(state: Any) -> int:
    sqs = state.target.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=state.outputs["QueueUrl"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def _wait_for_items(ddb: Any, table_name: str, total: int, deadline: float) -> int:
    while True:
        seen = _item_count(ddb, table_name)
        if seen >= total or time.time() >= deadline:
            return seen
        time.sleep(POLL_SECONDS)


def _item_count(ddb: Any, table_name: str) -> int:
    return int(ddb.describe_table(TableName=table_name)["Table"]["ItemCount"])


def _updated_at(ddb: Any, table_name: str, prefix: str) -> dict[str, float]:
    updated: dict[str, float] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table_name):
        for item in page["Items"]:
            key = item["s3_key"]["S"]
            if key.startswith(prefix):
                stamp = item["updated_at"]["S"].replace("Z", "+00:00")
                updated[key] = datetime.fromisoformat(stamp).timestamp()
    return updated


def _latency(seconds: list[float]) -> dict[str, float]:
    ms = [value * 1000 for value in seconds]
    return {
        "latency_p50_ms": percentile(ms, 0.50),
        "latency_p95_ms": percentile(ms, 0.95),
        "latency_p99_ms": percentile(ms, 0.99),
        "latency_median_ms": median(ms),
    }


def measure(
    count: int,
    threads: int,
    timeout: float,
    unpatched_sqs: bool,
    unpatched_ddb: bool = False,
    pairs: int = 3,
) -> dict[str, Any]:
    load_before = os.getloadavg()
    measured: list[dict[str, Any]] = []
    with local_stack(unpatched_sqs, unpatched_ddb) as state:
        create_floor_resources(state)
        ledger_floor: dict[str, Any] = {}
        for number in range(pairs):
            measured.append(measure_pair(state, count, threads, timeout))
            if number == 0:
                with cpu_block(count, ledger_floor):
                    ledger_floor.update(floor_ledger_write(state, count, threads))
    by_ratio = sorted(measured, key=lambda r: float(r["throughput_ratio_vs_floor"]))
    middle = by_ratio[len(by_ratio) // 2]
    ratio = median([r["throughput_ratio_vs_floor"] for r in measured])
    p95 = median([r["pipeline"]["latency_p95_ms"] for r in measured])
    complete = all(r["pipeline"]["complete"] for r in measured)
    workers = os.environ.get("FILEGATE_LOCAL_WORKERS", "5 (default)")
    return {
        "count": count,
        "pairs": pairs,
        "client_threads": threads,
        "workers": workers,
        "dynamodb_process": os.environ.get("FILEGATE_LOCAL_DYNAMODB_PROCESS", "1") != "0",
        "queue_channel": os.environ.get("FILEGATE_LOCAL_QUEUE_CHANNEL", "1") != "0",
        "sqs_patch": not unpatched_sqs,
        "ddb_patch": not unpatched_ddb,
        "load_average_before_after": [list(load_before), list(os.getloadavg())],
        "floor": middle["floor"],
        "floor_ledger_write": ledger_floor,
        "pipeline": middle["pipeline"],
        "pair_ratios": [r["throughput_ratio_vs_floor"] for r in measured],
        "pairs_measured": measured,
        "throughput_ratio_vs_floor": ratio,
        "latency_p95_ms_median_of_pairs": p95,
        "throughput_ratio_vs_floor_ledger_write": middle["pipeline"]["objects_per_s"]
        / ledger_floor["objects_per_s"],
        "target_throughput_met": ratio >= 0.5 and complete,
        "target_p95_met": p95 < 1000 and complete,
    }


def measure_pair(state: Any, count: int, threads: int, timeout: float) -> dict[str, Any]:
    """The floor, then the pipeline, right after it; the queue drained before and after."""
    _wait_for_empty_queue(state)
    floor_figures: dict[str, Any] = {}
    with cpu_block(count, floor_figures):
        floor_figures.update(floor(state, count, threads))
    pipeline_figures: dict[str, Any] = {}
    cpu = cpu_per_object(count, pipeline_figures)
    next(cpu)
    pipeline_figures.update(pipeline(state, count, threads, timeout, cpu))
    _wait_for_empty_queue(state)
    return {
        "floor": floor_figures,
        "pipeline": pipeline_figures,
        "throughput_ratio_vs_floor": pipeline_figures["objects_per_s"]
        / floor_figures["objects_per_s"],
    }


def _wait_for_empty_queue(state: Any, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while _queue_depth(state) and time.time() < deadline:
        time.sleep(POLL_SECONDS)


def render(figures: dict[str, Any]) -> str:
    floor_f, pipe, ledger_f = figures["floor"], figures["pipeline"], figures["floor_ledger_write"]
    rows = [
        ["floor (client S3+DDB put)", f"{floor_f['objects_per_s']:.1f}", "-", "-",
         f"{floor_f['latency_p50_ms']:.0f}", f"{floor_f['latency_p95_ms']:.0f}",
         f"{floor_f['latency_p99_ms']:.0f}"],
        ["floor, ledger UpdateItem (diagnosis)", f"{ledger_f['objects_per_s']:.1f}", "-", "-",
         f"{ledger_f['latency_p50_ms']:.0f}", f"{ledger_f['latency_p95_ms']:.0f}",
         f"{ledger_f['latency_p99_ms']:.0f}"],
        ["pipeline (S3->SQS->Lambda->DDB)", f"{pipe['objects_per_s']:.1f}",
         f"{pipe['upload_rate_per_s']:.1f}", f"{pipe['recorded']}/{figures['count']}",
         f"{pipe['latency_p50_ms']:.0f}", f"{pipe['latency_p95_ms']:.0f}",
         f"{pipe['latency_p99_ms']:.0f}"],
    ]  # fmt: skip
    headers = ["path", "objects/s", "uploads/s", "recorded", "p50 ms", "p95 ms", "p99 ms"]
    cpu = "; ".join(
        f"{name}: " + ", ".join(f"{k} {v:.1f}" for k, v in part["cpu_ms_per_object"].items())
        for name, part in (("floor", floor_f), ("ledger floor", ledger_f), ("pipeline", pipe))
    )
    pairs = ", ".join(
        f"{r['pipeline']['objects_per_s']:.1f}/{r['floor']['objects_per_s']:.1f}"
        f" = {r['throughput_ratio_vs_floor']:.2f}"
        for r in figures["pairs_measured"]
    )
    return (
        f"median pair of {figures['pairs']}:\n"
        + table(headers, rows)
        + f"\nCPU ms per object: {cpu}"
        + f"\npairs, pipeline/floor objects/s: {pairs}"
        + "\nthroughput ratio pipeline/floor, median of the pairs:"
        + f" {figures['throughput_ratio_vs_floor']:.2f}"
        + f" (target >= 0.50: {'met' if figures['target_throughput_met'] else 'MISSED'});"
        + f" p95, median of the pairs: {figures['latency_p95_ms_median_of_pairs']:.0f} ms"
        + f" (target < 1000 ms: {'met' if figures['target_p95_met'] else 'MISSED'});"
        + f" queue depth when the uploads ended: {pipe['queue_depth_after_upload']};"
        + " pipeline / floor with the ledger's UpdateItem:"
        + f" {figures['throughput_ratio_vs_floor_ledger_write']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=3, help="floor + pipeline pairs")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait after upload")
    parser.add_argument("--unpatched-sqs", action="store_true")
    parser.add_argument("--unpatched-ddb", action="store_true")
    parser.add_argument("--name", default=None, help="results file name (default derived)")
    args = parser.parse_args()
    figures = measure(
        args.count,
        args.threads,
        args.timeout,
        args.unpatched_sqs,
        args.unpatched_ddb,
        pairs=max(1, args.pairs),
    )
    print(
        f"{args.count} uploads x {figures['pairs']} pairs, {args.threads} client threads, "
        f"sqs patch: {figures['sqs_patch']}, ddb patch: {figures['ddb_patch']}, "
        f"queue channel: {figures['queue_channel']}"
    )
    print(render(figures))
    suffix = "_unpatched_sqs" * args.unpatched_sqs + "_unpatched_ddb" * args.unpatched_ddb
    save(args.name or f"e2e_burst_{args.count}{suffix}", figures)


if __name__ == "__main__":
    main()
