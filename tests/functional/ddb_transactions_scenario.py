"""TransactWriteItems whose every answer is recorded, run with and without the emulator patch.

``run()`` drives in-process moto through transactions that succeed, that a condition cancels
(with and without ``ALL_OLD``), that name one item twice, that fail half-way through a write
(an update expression moto refuses only when it applies it), and the ledger's quota
transactions (``Ledger.declare`` with limits, ``expire``, ``record``); it returns each answer
(cancellation reasons included), the tables at the end and how many records each table's
stream holds. Deterministic (a fixed clock).

Run as a script it prints ``run()``'s result as JSON, in a process where no emulator patch has
been applied: ``python tests/functional/ddb_transactions_scenario.py``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

REGION = "eu-central-1"
LEDGER, PARTNERS, RANGED = "tx-ledger", "tx-partners", "tx-ranged"
FIXED = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


def _answer(call: Any) -> Any:
    from botocore.exceptions import ClientError

    try:
        result = call()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return {"error": error.get("Code"), "message": error.get("Message"),
                "reasons": exc.response.get("CancellationReasons")}  # fmt: skip
    except Exception as exc:  # the ledger's own errors are answers too
        return {"raised": type(exc).__name__, "message": str(exc)}
    if isinstance(result, dict):
        return {k: v for k, v in result.items() if k != "ResponseMetadata"}
    return str(result)


def _tables(ddb: Any) -> None:
    from upload_builders import create_partners_table, create_upload_ledger

    create_upload_ledger(ddb, LEDGER)
    ddb.update_table(
        TableName=LEDGER,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    create_partners_table(ddb, PARTNERS)
    ddb.create_table(
        TableName=RANGED,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": "h", "KeyType": "HASH"},
            {"AttributeName": "r", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "h", "AttributeType": "S"},
            {"AttributeName": "r", "AttributeType": "S"},
        ],
    )


def _raw(ddb: Any) -> list[Any]:
    put = {"Put": {"TableName": RANGED, "Item": {"h": {"S": "a"}, "r": {"S": "1"}}}}
    counter = {
        "Update": {
            "TableName": PARTNERS,
            "Key": {"partner_id": {"S": "c"}},
            "UpdateExpression": "ADD n :one",
            "ConditionExpression": "attribute_not_exists(n) OR n < :two",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":two": {"N": "2"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }
    new_put = {"Put": {"TableName": RANGED, "Item": {"h": {"S": "a"}, "r": {"S": "2"}},
                       "ConditionExpression": "attribute_not_exists(h)"}}  # fmt: skip
    broken = {"Update": {"TableName": PARTNERS, "Key": {"partner_id": {"S": "c"}},
                         "UpdateExpression": "SET partner_id = :x",
                         "ExpressionAttributeValues": {":x": {"S": "y"}}}}  # fmt: skip
    calls = [
        [put, counter],  # written
        [counter],  # n = 2
        [new_put, counter],  # the counter's condition cancels it: no r=2 item
        [put, put],  # one item twice: ValidationException
        [new_put, broken],  # the second write is refused half-way: r=2 must not stay
        [{"Delete": {"TableName": RANGED, "Key": {"h": {"S": "a"}, "r": {"S": "1"}}}}],
    ]
    return [_answer(lambda c=c: ddb.transact_write_items(TransactItems=c)) for c in calls]


def _ledger(ddb: Any) -> list[Any]:
    from filegate.ledger import Declaration, Ledger, LedgerEntry, Status
    from filegate.quotas import Quotas

    ledger = Ledger(LEDGER, ddb, clock=lambda: FIXED, partners_table=PARTNERS)
    limits = Quotas(daily_uploads=2, max_pending=5)
    answers = []
    for number in range(3):
        key = f"p/up-{number}/f.csv"
        declaration = Declaration(
            key=key,
            bucket="b",
            upload_id=f"up-{number}",
            partner_id="p",
            size=10,
            sha256="0" * 64,
            content_type="text/csv",
            method="PUT",
            expires_at=FIXED - timedelta(minutes=1),
        )
        answers.append(_answer(lambda d=declaration: ledger.declare(d, limits)))
    answers.append(_answer(lambda: ledger.expire("p/up-0/f.csv", FIXED)))
    entry = LedgerEntry(key="p/up-1/f.csv", bucket="b", status=Status.ACCEPTED,
                        event_name="ObjectCreated:Put", event_time="2026-11-24T11:59:00.000Z",
                        sequencer="0A", size=10)  # fmt: skip
    answers.append(_answer(lambda: ledger.record(entry)))
    answers.append(_answer(lambda: ledger.record(entry)))  # a duplicate: nothing more
    return answers


def _state(ddb: Any) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for table in (LEDGER, PARTNERS, RANGED):
        items = ddb.scan(TableName=table)["Items"]
        state[table] = sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    # moto's stream records, read from its backend (its in-process DynamoDB Streams API
    # answers 404): what a stream consumer would see of the ledger.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].tables[LEDGER].stream_shard
    state["stream"] = [
        [record.record["eventName"], record.record["dynamodb"]["Keys"]] for record in shard.items
    ]
    return state


def run() -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}.items():
        os.environ.setdefault(name, value)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        _tables(ddb)
        answers = {"raw": _raw(ddb), "ledger": _ledger(ddb)}
        return {**answers, "state": _state(ddb)}


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    print(json.dumps(run(), default=str))
