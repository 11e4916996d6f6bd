"""The event source mapping's line to the emulator's queues behaves as the SQS API does.

The channel's server runs in this process over a Unix socket, against in-process moto (the
emulator runs it the same way, over moto's server); the SQS API answers from the same moto
state, so each behaviour is checked against what the API says about the queue.
"""

from __future__ import annotations

import functools
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from builders import REGION
from esm_builders import NO_AWS, create_queue, handler_spec, send
from test_local_esm_recovery import (
    MAPPING,
    ExplodesOnce,
    deliver_all,
    flaky_worker,
    queue_depth,
    recorded_within,
)

from filegate.aws import Target
from filegate.local.esm import EventSourceMapping
from filegate.local.queue_channel import ChannelQueue, QueueChannelServer
from filegate.local.runtime import Worker

KEY = secrets.token_bytes(32)

RECORDING_HANDLER = """
import os
def record(event, context):
    with open(os.path.join(os.environ["OUT"], "recorded"), "a") as out:
        for record in event["Records"]:
            out.write(record["body"] + "\\n")
    return {"batchItemFailures": []}
"""


@pytest.fixture
def channel(aws: None, tmp_path: Path) -> Iterator[str]:
    """The channel's socket path, served until the test ends."""
    address = str(tmp_path / "queues.sock")
    server = QueueChannelServer(address, KEY)
    server.start()
    yield address
    server.stop()


@pytest.fixture
def queue(aws: None) -> str:
    return create_queue("channel-test")


def line(address: str, queue_url: str, key: bytes = KEY) -> ChannelQueue:
    return ChannelQueue(address, key, queue_url, REGION)


def test_a_received_message_is_what_receive_message_returns(channel: str, queue: str) -> None:
    client = boto3.client("sqs", region_name=REGION)
    client.send_message(
        QueueUrl=queue,
        MessageBody='{"Records": []}',
        MessageAttributes={"partner": {"DataType": "String", "StringValue": "acme"}},
    )
    through_api = client.receive_message(
        QueueUrl=queue, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"][0]
    client.change_message_visibility(
        QueueUrl=queue, ReceiptHandle=through_api["ReceiptHandle"], VisibilityTimeout=0
    )
    connection = line(channel, queue)
    [through_channel] = connection.receive(10, 0)
    connection.close()

    assert through_channel.keys() == through_api.keys()
    for field in ("MessageId", "MD5OfBody", "Body", "MessageAttributes", "MD5OfMessageAttributes"):
        assert through_channel[field] == through_api[field], field
    attributes, api_attributes = through_channel["Attributes"], through_api["Attributes"]
    assert attributes.keys() == api_attributes.keys()
    assert attributes["SentTimestamp"] == api_attributes["SentTimestamp"]
    assert attributes["SenderId"] == api_attributes["SenderId"]
    assert (api_attributes["ApproximateReceiveCount"], attributes["ApproximateReceiveCount"]) == (
        "1",
        "2",
    )
    assert through_channel["ReceiptHandle"] != through_api["ReceiptHandle"]


def test_received_messages_are_in_flight_until_deleted(channel: str, queue: str) -> None:
    send(queue, [f"m{n}" for n in range(12)])
    connection = line(channel, queue)
    first = connection.receive(10, 0)
    second = connection.receive(10, 0)
    assert (len(first), len(second)) == (10, 2)
    assert queue_depth(queue) == (0, 12)
    assert connection.receive(10, 0) == []  # nothing visible: in flight, not received twice

    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(first)]
    connection.delete(entries)
    assert queue_depth(queue) == (0, 2)
    connection.close()


def test_a_released_message_comes_back_after_the_delay(channel: str, queue: str) -> None:
    send(queue, ["again"])
    connection = line(channel, queue)
    [message] = connection.receive(1, 0)
    connection.release([{"Id": "0", "ReceiptHandle": message["ReceiptHandle"]}], 1)
    assert connection.receive(1, 0) == []
    [back] = connection.receive(1, 3)  # a long poll that the message's return ends
    assert (back["MessageId"], back["Attributes"]["ApproximateReceiveCount"]) == (
        message["MessageId"],
        "2",
    )
    connection.close()


def test_a_long_poll_waits_for_a_message_sent_meanwhile(channel: str, queue: str) -> None:
    connection = line(channel, queue)
    assert connection.receive(10, 0) == []  # the queue is empty when the poll begins
    sender = threading.Timer(0.3, send, args=(queue, ["meanwhile"]))
    sender.start()
    try:
        received = connection.receive(10, 10)  # a poll that did not wait would come back empty
    finally:
        sender.join()
    assert [m["Body"] for m in received] == ["meanwhile"]
    connection.close()


def test_errors_are_the_sqs_api_errors(channel: str, queue: str) -> None:
    missing = line(channel, queue.rsplit("/", 1)[0] + "/no-such-queue")
    with pytest.raises(ClientError) as raised:
        missing.receive(1, 0)
    assert raised.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert raised.value.operation_name == "ReceiveMessage"
    # the connection is still good after an error
    send(queue, ["still served"])
    assert [m["Body"] for m in line(channel, queue).receive(1, 0)] == ["still served"]


def test_a_request_moto_fails_on_is_an_internal_error_and_the_line_stays_up(
    channel: str, queue: str
) -> None:
    connection = line(channel, queue)
    with pytest.raises(ClientError) as raised:
        connection.delete([{"Id": "0"}])  # no ReceiptHandle: moto raises a KeyError
    assert raised.value.response["Error"]["Code"] == "InternalError"
    send(queue, ["after the fault"])
    assert [m["Body"] for m in connection.receive(1, 0)] == ["after the fault"]
    connection.close()


def test_a_client_without_the_key_is_refused_and_others_are_still_served(
    channel: str, queue: str
) -> None:
    send(queue, ["secret"])
    with pytest.raises(EndpointConnectionError):
        line(channel, queue, key=secrets.token_bytes(32)).receive(1, 0)
    assert [m["Body"] for m in line(channel, queue).receive(1, 0)] == ["secret"]


def test_a_stopped_emulator_is_a_connection_error(aws: None, tmp_path: Path, queue: str) -> None:
    address = str(tmp_path / "gone.sock")
    server = QueueChannelServer(address, KEY)
    server.start()
    connection = line(address, queue)
    assert connection.receive(1, 0) == []
    server.stop()
    with pytest.raises(EndpointConnectionError):
        line(address, queue).receive(1, 0)


def test_the_event_source_mapping_delivers_every_message_once_over_the_channel(
    channel: str, queue: str, tmp_path: Path
) -> None:
    worker = Worker(handler_spec(tmp_path, RECORDING_HANDLER, "1"), NO_AWS)
    connect = functools.partial(ChannelQueue, channel, KEY, queue, REGION)
    deliver_all(queue, tmp_path, worker, connect, count=25)


def test_a_failed_batch_comes_back_over_the_channel(
    channel: str, queue: str, tmp_path: Path
) -> None:
    (tmp_path / "started-once").write_text("x")  # this worker's init is fine
    worker = ExplodesOnce(flaky_worker(tmp_path).spec, NO_AWS)
    connect = functools.partial(ChannelQueue, channel, KEY, queue, REGION)
    deliver_all(queue, tmp_path, worker, connect)


ATTRIBUTES_HANDLER = """
import json, os
def record(event, context):
    with open(os.path.join(os.environ["OUT"], "recorded"), "a") as out:
        for record in event["Records"]:
            out.write(json.dumps(record["messageAttributes"], sort_keys=True) + "\\n")
    return {"batchItemFailures": []}
"""


@pytest.mark.parametrize("through", ["sqs-api", "channel"])
def test_message_attributes_reach_the_function_as_lambda_writes_them(
    channel: str, queue: str, tmp_path: Path, through: str
) -> None:
    boto3.client("sqs", region_name=REGION).send_message(
        QueueUrl=queue,
        MessageBody="with attributes",
        MessageAttributes={
            "partner": {"DataType": "String", "StringValue": "acme"},
            "count": {"DataType": "Number", "StringValue": "3"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    worker = Worker(handler_spec(tmp_path, ATTRIBUTES_HANDLER, "1"), NO_AWS)
    connect = functools.partial(ChannelQueue, channel, KEY, queue, REGION)
    esm = EventSourceMapping(
        Target(region=REGION),
        MAPPING,
        queue,
        [worker],
        retry_delay_seconds=1,
        connect=connect if through == "channel" else None,
    )
    esm.start()
    try:
        [line_written] = recorded_within(tmp_path, 1, timeout=15)
    finally:
        esm.stop()
        worker.stop()
    lists = {"stringListValues": [], "binaryListValues": []}
    assert json.loads(line_written) == {
        "partner": {"stringValue": "acme", "dataType": "String", **lists},
        "count": {"stringValue": "3", "dataType": "Number", **lists},
        "blob": {"binaryValue": "AAE=", "dataType": "Binary", **lists},
    }
