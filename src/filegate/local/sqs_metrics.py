"""The AWS/SQS metrics SQS publishes on its own, published by the emulator process.

moto publishes no service metrics, so the alarms and dashboard widgets on queue depth and on
the age of the oldest message would have no data locally. ``QueueMetricsPublisher`` runs in
the emulator (it reads the queues in memory, through ``queue_backend``: the age of the
oldest message is not available through the SQS API) and, every few seconds, puts per queue
(dimension QueueName) ``ApproximateNumberOfMessagesVisible``,
``ApproximateNumberOfMessagesNotVisible`` and ``ApproximateAgeOfOldestMessage`` (seconds; 0
when the queue is empty) into the emulator's CloudWatch through its own API, in the queue's
region.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.local.queue_backend import MessageTimes, queue_times

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 10.0
NAMESPACE = "AWS/SQS"

ClientFor = Callable[[str], Any]  # region -> CloudWatch client


def queue_metrics(messages: Iterable[MessageTimes], now_ms: float) -> list[tuple[str, float, str]]:
    """(metric name, value, unit) for one queue whose messages' times are ``messages``."""
    times = list(messages)
    visible = sum(
        1 for _, visible_at, delayed in times if now_ms > visible_at and now_ms >= delayed
    )
    in_flight = sum(1 for _, visible_at, _ in times if not now_ms > visible_at)
    sent = [sent for sent, _, _ in times if sent is not None]
    age = max(0.0, (now_ms - min(sent)) / 1000) if sent else 0.0
    return [
        ("ApproximateNumberOfMessagesVisible", float(visible), "Count"),
        ("ApproximateNumberOfMessagesNotVisible", float(in_flight), "Count"),
        ("ApproximateAgeOfOldestMessage", float(int(age)), "Seconds"),
    ]


def publish_once(client_for: ClientFor) -> int:
    """Put the current metrics of every queue; the number of queues published."""
    now = datetime.now(UTC)
    now_ms = now.timestamp() * 1000
    by_region: dict[str, list[dict[str, Any]]] = {}
    queues = list(queue_times())
    for region, name, times in queues:
        dimensions = [{"Name": "QueueName", "Value": name}]
        by_region.setdefault(region, []).extend(
            {"MetricName": n, "Dimensions": dimensions, "Value": v, "Unit": u, "Timestamp": now}
            for n, v, u in queue_metrics(times, now_ms)
        )
    for region, data in by_region.items():
        client = client_for(region)
        for i in range(0, len(data), 500):
            client.put_metric_data(Namespace=NAMESPACE, MetricData=data[i : i + 500])
    return len(queues)


class QueueMetricsPublisher:
    """Publishes every queue's metrics every ``interval`` seconds, in a thread."""

    def __init__(self, client_for: ClientFor, interval: float = INTERVAL_SECONDS) -> None:
        self._client_for = client_for
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            started = time.monotonic()
            try:
                publish_once(self._client_for)
            except (ClientError, BotoCoreError, RuntimeError) as exc:
                logger.warning("could not publish the AWS/SQS metrics: %s", exc)
            logger.debug("AWS/SQS metrics published in %.3f s", time.monotonic() - started)
