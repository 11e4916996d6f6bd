"""The local DynamoDB stream mapping: reads a table's stream and invokes the deployed function.

It does what Lambda's stream poller does for an ``AWS::Lambda::EventSourceMapping`` whose
source is a DynamoDB stream (AWS Lambda Developer Guide, "Using AWS Lambda with Amazon
DynamoDB", and "Retaining discarded records for a DynamoDB event source"): one poller per
shard, from the mapping's ``StartingPosition``, batches of up to ``BatchSize`` records in the
order of the shard, the next batch only once this one succeeded. A failed invocation is
retried with the same records; with ``BisectBatchOnFunctionError`` a failed batch is split in
two first (splitting does not count against the retries); past ``MaximumRetryAttempts`` the
batch's description (not its records) goes to the ``DestinationConfig.OnFailure`` queue and
the shard moves on. Locally a retry comes after a short pause rather than Lambda's backoff.

The stream is read through the emulator's DynamoDB Streams API (served by the DynamoDB
process, where the stack's tables live), with the supervisor's credentials; the function runs
on its warm workers through ``LocalFunctions`` (as a direct Invoke and a schedule do), so its
logs and metrics are recorded like any other invocation. Not modelled: ``MaximumRecordAgeInSeconds``
(the emulator's stream keeps every record; DynamoDB keeps them 24 hours), several shards and
shard splits (moto's stream has one shard), ``ParallelizationFactor``, filter criteria and
partial batch responses.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.aws import Target
from filegate.errors import FilegateError, QueueError
from filegate.ledger import lambda_record
from filegate.local.invoke import LATEST, LocalFunctions
from filegate.local.provision import StreamMappingConfig
from filegate.queues import MessageQueue, queue_url

logger = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.25  # Lambda polls each shard about four times a second
# ... and locally slows down to once a second while the stream is idle: moto keeps every shard
# iterator it hands out (about 0.7 KB each, measured), so an idle stack grows by at most
# ~2.5 MB an hour instead of ~10.
MAX_IDLE_POLL_SECONDS = 1.0
RETRY_PAUSE_SECONDS = 0.2


def failure_record(
    config: StreamMappingConfig,
    shard_id: str,
    records: list[dict[str, Any]],
    function_arn: str,
    request_id: str,
    invoke_count: int,
) -> dict[str, Any]:
    """What Lambda sends the on-failure destination for a batch it gave up on (AWS Lambda
    Developer Guide, "Retaining discarded records for a DynamoDB event source")."""
    arrivals = [_iso(r["dynamodb"].get("ApproximateCreationDateTime")) for r in records]
    return {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": LATEST,
            "functionError": "Unhandled",
        },
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": arrivals[0],
            "approximateArrivalOfLastRecord": arrivals[-1],
            "batchSize": len(records),
            "streamArn": config.stream_arn,
        },
    }


def _iso(value: Any) -> str | None:
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


class StreamMapping:
    """Polls one DynamoDB stream and feeds its batches to one function, in order."""

    def __init__(
        self,
        target: Target,
        config: StreamMappingConfig,
        functions: LocalFunctions,
        pause: Callable[[float], bool] | None = None,
    ) -> None:
        self._target = target
        self._config = config
        self._functions = functions
        self._stop = threading.Event()
        self._pause = pause or self._stop.wait
        self._threads: list[threading.Thread] = []
        self._streams: Any = None
        self._checkpoints: dict[str, str] = {}  # shard -> last sequence number delivered

    def start(self) -> None:
        self._streams = self._target.client("dynamodbstreams")
        shards = self._streams.describe_stream(StreamArn=self._config.stream_arn)
        for shard in shards["StreamDescription"].get("Shards", []):
            thread = threading.Thread(
                target=self._poll,
                args=(shard["ShardId"],),
                name=f"stream-{self._config.logical_id}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=35)
        self._threads = []

    def _poll(self, shard_id: str) -> None:
        iterator: str | None = None
        idle_polls = 0
        while not self._stop.is_set():
            try:
                if iterator is None:
                    iterator = self._iterator(shard_id)
                answer = self._streams.get_records(
                    ShardIterator=iterator, Limit=self._config.batch_size
                )
            except (ClientError, BotoCoreError) as exc:
                logger.warning("stream mapping %s: poll failed: %s", self._config.logical_id, exc)
                iterator = None  # start again where the last delivered batch left off
                self._pause(1.0)
                continue
            records = answer.get("Records", [])
            if records:
                self._deliver(shard_id, records, 0)
                self._checkpoints[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
            iterator = answer.get("NextShardIterator")
            idle_polls = 0 if records else idle_polls + 1
            if not records:
                self._pause(min(IDLE_POLL_SECONDS * 2 ** (idle_polls - 1), MAX_IDLE_POLL_SECONDS))

    def _iterator(self, shard_id: str) -> str:
        arguments: dict[str, Any] = {"StreamArn": self._config.stream_arn, "ShardId": shard_id}
        checkpoint = self._checkpoints.get(shard_id)
        if checkpoint is not None:
            arguments.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=checkpoint)
        else:
            arguments["ShardIteratorType"] = self._config.starting_position
        return str(self._streams.get_shard_iterator(**arguments)["ShardIterator"])

    def _deliver(self, shard_id: str, records: list[dict[str, Any]], invoked: int) -> None:
        """Invoke until the batch succeeds, halving it on failure when bisecting, then giving
        up after the retries (to the on-failure destination)."""
        retries = 0
        event = {
            "Records": [
                lambda_record(r, self._config.stream_arn, self._target.region) for r in records
            ]
        }
        while not self._stop.is_set():
            invoked += 1
            ok, function_arn, request_id = self._invoke(event)
            if ok:
                return
            if self._config.bisect_on_error and len(records) > 1:
                half = len(records) // 2
                self._deliver(shard_id, records[:half], invoked)
                self._deliver(shard_id, records[half:], invoked)
                return
            retries += 1
            limit = self._config.maximum_retry_attempts
            if 0 <= limit < retries:
                self._discard(shard_id, records, function_arn, request_id, invoked)
                return
            self._pause(RETRY_PAUSE_SECONDS)

    def _invoke(self, event: dict[str, Any]) -> tuple[bool, str, str]:
        try:
            spec, invocation = self._functions.invoke(self._config.function_name, LATEST, event)
        except FilegateError as exc:  # the workers are not (yet, or any more) there
            logger.warning("stream mapping %s: %s", self._config.logical_id, exc)
            return False, "", ""
        except Exception:  # a poller must outlive any one batch: this one is retried
            logger.exception("stream mapping %s could not invoke", self._config.logical_id)
            return False, "", ""
        return invocation.ok, spec.arn, invocation.request_id

    def _discard(
        self,
        shard_id: str,
        records: list[dict[str, Any]],
        function_arn: str,
        request_id: str,
        invoked: int,
    ) -> None:
        logger.warning(
            "stream mapping %s: gave up on %d record(s) after its retries",
            self._config.logical_id,
            len(records),
        )
        if not self._config.on_failure_arn:
            return
        document = failure_record(
            self._config, shard_id, records, function_arn, request_id, invoked
        )
        sqs = self._target.client("sqs")
        try:
            queue = MessageQueue(queue_url(sqs, self._config.on_failure_arn), sqs)
            queue.send(json.dumps(document), {})
        except QueueError as exc:  # as Lambda: the records are discarded either way
            logger.warning(
                "stream mapping %s: on-failure destination: %s", self._config.logical_id, exc
            )
