"""Ships each local invocation's logs and metrics into the emulator, as Lambda does on AWS.

Logs go to ``/aws/lambda/<function>`` with Lambda's START, END and REPORT lines (duration,
billed duration, memory size, max memory used, init duration on a cold start). The AWS/Lambda
metrics Invocations, Errors and Duration are published, and Embedded Metric Format lines the
function prints are turned into their metrics (on AWS, CloudWatch extracts them from the logs).
A background thread sends in batches so the invocation path does not wait for CloudWatch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.aws import Target
from filegate.local.runtime import FunctionSpec, Invocation

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.5
_LOG_BATCH = 1000
_METRIC_BATCH = 500


def lambda_log_lines(
    spec: FunctionSpec, invocation: Invocation, now_ms: int
) -> list[dict[str, Any]]:
    """The log events of one invocation, framed as Lambda frames them."""
    request_id = invocation.request_id
    start_ms = now_ms - int(invocation.duration_ms)
    report = (
        f"REPORT RequestId: {request_id}\tDuration: {invocation.duration_ms:.2f} ms\t"
        f"Billed Duration: {math.ceil(invocation.duration_ms)} ms\t"
        f"Memory Size: {spec.memory_mb} MB\tMax Memory Used: {invocation.max_memory_mb} MB\t"
    )
    if invocation.init_ms is not None:
        report += f"Init Duration: {invocation.init_ms:.2f} ms\t"
    start = f"START RequestId: {request_id} Version: {spec.version}"
    events = [{"timestamp": start_ms, "message": start}]
    events += [{"timestamp": max(ts, start_ms), "message": line} for ts, line in invocation.lines]
    events.append({"timestamp": now_ms, "message": f"END RequestId: {request_id}"})
    events.append({"timestamp": now_ms, "message": report})
    return events


def lambda_metrics(spec: FunctionSpec, invocation: Invocation) -> list[dict[str, Any]]:
    dimensions = [{"Name": "FunctionName", "Value": spec.name}]
    now = datetime.now(UTC)
    return [
        {
            "MetricName": name,
            "Dimensions": dimensions,
            "Value": value,
            "Unit": unit,
            "Timestamp": now,
        }
        for name, value, unit in (
            ("Invocations", 1.0, "Count"),
            ("Errors", 0.0 if invocation.ok else 1.0, "Count"),
            ("Duration", invocation.duration_ms, "Milliseconds"),
        )
    ]


def emf_metrics(line: str) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, metric datum) pairs from one Embedded Metric Format log line, if it is one."""
    if not line.startswith("{") or '"_aws"' not in line:
        return []
    try:
        document = json.loads(line)
        directives = document["_aws"]["CloudWatchMetrics"]
        timestamp = datetime.fromtimestamp(document["_aws"]["Timestamp"] / 1000, UTC)
    except (ValueError, KeyError, TypeError):
        return []
    found = []
    for directive in directives:
        for dimension_set in directive.get("Dimensions", [[]]):
            dimensions = [{"Name": d, "Value": str(document.get(d, ""))} for d in dimension_set]
            for metric in directive.get("Metrics", []):
                value = document.get(metric["Name"])
                for number in value if isinstance(value, list) else [value]:
                    if isinstance(number, int | float):
                        datum = {
                            "MetricName": metric["Name"],
                            "Dimensions": dimensions,
                            "Value": float(number),
                            "Unit": metric.get("Unit", "None"),
                            "Timestamp": timestamp,
                        }
                        found.append((directive["Namespace"], datum))
    return found


class Telemetry:
    """Collects invocation logs and metrics and sends them to the emulator in batches."""

    def __init__(self, target: Target) -> None:
        self._logs = target.client("logs")
        self._cloudwatch = target.client("cloudwatch")
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self._metrics: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._streams: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def record(self, spec: FunctionSpec, stream: str, invocation: Invocation) -> None:
        events = lambda_log_lines(spec, invocation, int(time.time() * 1000))
        metrics = [("AWS/Lambda", datum) for datum in lambda_metrics(spec, invocation)]
        for _, line in invocation.lines:
            metrics += emf_metrics(line)
        with self._lock:
            self._events[(spec.log_group, stream)].extend(events)
            for namespace, datum in metrics:
                self._metrics[namespace].append(datum)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_SECONDS):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            events, self._events = self._events, defaultdict(list)
            metrics, self._metrics = self._metrics, defaultdict(list)
        try:
            for (group, stream), batch in events.items():
                self._put_logs(group, stream, sorted(batch, key=lambda e: e["timestamp"]))
            for namespace, data in metrics.items():
                for i in range(0, len(data), _METRIC_BATCH):
                    self._cloudwatch.put_metric_data(
                        Namespace=namespace, MetricData=data[i : i + _METRIC_BATCH]
                    )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("could not ship logs or metrics to the emulator: %s", exc)

    def _put_logs(self, group: str, stream: str, events: list[dict[str, Any]]) -> None:
        if (group, stream) not in self._streams:
            with contextlib.suppress(ClientError):  # the template created it
                self._logs.create_log_group(logGroupName=group)
            self._logs.create_log_stream(logGroupName=group, logStreamName=stream)
            self._streams.add((group, stream))
        for i in range(0, len(events), _LOG_BATCH):
            self._logs.put_log_events(
                logGroupName=group, logStreamName=stream, logEvents=events[i : i + _LOG_BATCH]
            )
