"""A DynamoDB scenario whose every answer is recorded, run with and without the emulator patch.

``run()`` drives in-process moto through the ledger (``Ledger.record``, ``declare``, ``expire``,
``abort``) and through raw UpdateItem calls meant to hit each of moto's update-expression and
condition-expression checks, and returns what came back: outcomes, responses, errors (code and
message), and the table at the end. Everything is deterministic (a fixed clock).

Run as a script it prints ``run()``'s result as JSON, in a process where no emulator patch has
been applied: ``python tests/functional/ddb_patch_scenario.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

REGION = "eu-central-1"
TABLE = "ddb-patch-ledger"
FIXED = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


def _create_table(ddb: Any) -> None:
    from upload_builders import create_upload_ledger  # this file's folder is on sys.path

    create_upload_ledger(ddb, TABLE)


def _answer(call: Callable[[], Any]) -> Any:
    """What a call gave: its result (responses without metadata) or its error."""
    from botocore.exceptions import ClientError

    try:
        result = call()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return {"error": error.get("Code"), "message": error.get("Message"),
                "item": exc.response.get("Item")}  # fmt: skip
    except Exception as exc:  # moto's own failures (a KeyError, a ValueError) are answers too
        return {"raised": type(exc).__name__, "message": str(exc)}
    if isinstance(result, dict):
        return {k: v for k, v in result.items() if k != "ResponseMetadata"}
    return str(result)


def _ledger_steps(ledger: Any, prefix: str) -> list[Any]:
    from filegate.ledger import Declaration, LedgerEntry, Status

    def entry(key: str, status: Status = Status.RECEIVED, **fields: Any) -> LedgerEntry:
        created = status is Status.RECEIVED
        values: dict[str, Any] = {
            "bucket": "bucket",
            "event_name": "ObjectCreated:Put" if created else "ObjectRemoved:Delete",
            "event_time": "2026-11-24T10:00:00.000Z",
        }
        values.update(fields)
        return LedgerEntry(key=f"{prefix}/{key}", status=status, **values)

    full = {"size": 10, "content_type": "text/plain", "etag": "e" * 32, "checksum_sha256": "c2hh"}
    steps = [
        # sequencer ordering: new, duplicate, stale, newer delete, newer create
        entry("a.bin", sequencer="0000000000000A", version_id="v1", **full),
        entry("a.bin", sequencer="0000000000000A", version_id="v1", **full),
        entry("a.bin", sequencer="00000000000009", version_id="v0", **full),
        entry("a.bin", Status.DELETED, sequencer="0000000000000B", version_id="v2"),
        entry("a.bin", Status.DELETED, sequencer="0000000000000B", version_id="v2"),
        entry("a.bin", sequencer="0000000000000C", size=11),  # REMOVEs version_id, etag...
        # sequencer-less (compared by time): new, duplicate, stale, newer
        entry("t.bin", event_time="2026-11-24T10:00:01.000Z", **full),
        entry("t.bin", event_time="2026-11-24T10:00:01.000Z", **full),
        entry("t.bin", event_time="2026-11-24T10:00:00.500Z"),
        entry("t.bin", Status.DELETED, event_time="2026-11-24T10:00:02.000Z"),
        # a sequencer-less event after a sequenced one, and the reverse
        entry("a.bin", event_time="2026-11-24T11:00:00.000Z"),
        entry("t.bin", sequencer="00000000000001"),
    ]
    answers: list[Any] = []
    for step in steps:
        answers.append(_answer(lambda step=step: ledger.record(step).value))
        answers.append(_answer(lambda step=step: ledger.get(step.key)))
    declaration = Declaration(
        key=f"{prefix}/declared.bin", bucket="bucket", upload_id=f"{prefix}-upload",
        partner_id="p1", size=3, sha256="abc", content_type="text/plain", method="PUT",
        expires_at=datetime(2026, 11, 24, 11, 0, tzinfo=UTC),
    )  # fmt: skip
    answers.append(_answer(lambda: ledger.declare(declaration)))
    answers.append(_answer(lambda: ledger.declare(declaration)))  # refused: exists
    answers.append(_answer(lambda: ledger.get_upload(f"{prefix}-upload")))
    answers.append(_answer(lambda: ledger.abort(f"{prefix}/missing.bin", FIXED)))
    answers.append(_answer(lambda: ledger.expire(declaration.key, FIXED)))
    answers.append(_answer(lambda: ledger.expire(declaration.key, FIXED)))  # no longer PENDING
    answers.append(_answer(lambda: ledger.abort(declaration.key, FIXED)))
    return answers


# Raw UpdateItems: (update expression, names, values, condition, extra parameters).
_RAW: list[tuple[str, dict[str, str], dict[str, Any], str | None, dict[str, Any]]] = [
    ("SET #a = :one, #n = :one", {"#a": "a", "#n": "n"}, {":one": {"N": "1"}}, None, {}),
    ("SET #n = #n + :one", {"#n": "n"}, {":one": {"N": "1"}}, None, {"ReturnValues": "ALL_NEW"}),
    (
        "SET #n = #n - :one",
        {"#n": "n"},
        {":one": {"N": "1"}},
        None,
        {"ReturnValues": "UPDATED_OLD"},
    ),
    ("SET #m = #m + :one", {"#m": "missing"}, {":one": {"N": "1"}}, None, {}),
    ("SET #a = :s + :one", {"#a": "a"}, {":s": {"S": "x"}, ":one": {"N": "1"}}, None, {}),
    (
        "SET #l = list_append(if_not_exists(#l, :empty), :l)",
        {"#l": "l"},
        {":empty": {"L": []}, ":l": {"L": [{"S": "x"}]}},
        None,
        {"ReturnValues": "UPDATED_NEW"},
    ),
    ("SET #l = list_append(#l, :l)", {"#l": "l"}, {":l": {"L": [{"N": "2"}]}}, None, {}),
    ("SET #l = list_append(#a, :l)", {"#l": "l", "#a": "a"}, {":l": {"L": []}}, None, {}),
    ("SET #mp = :map", {"#mp": "mp"}, {":map": {"M": {"x": {"S": "1"}}}}, None, {}),
    (
        "SET #mp.#y = :v, #l[0] = :v",
        {"#mp": "mp", "#y": "y", "#l": "l"},
        {":v": {"S": "v"}},
        None,
        {"ReturnValues": "ALL_NEW"},
    ),
    ("SET #no.#y = :v", {"#no": "nomap", "#y": "y"}, {":v": {"S": "v"}}, None, {}),
    (
        "REMOVE #l[0], #mp.#y SET #f = if_not_exists(#f, :v)",
        {"#l": "l", "#mp": "mp", "#y": "y", "#f": "f"},
        {":v": {"S": "first"}},
        None,
        {},
    ),
    (
        "SET #f = if_not_exists(#f, :w)",
        {"#f": "f"},
        {":w": {"S": "second"}},
        None,
        {"ReturnValues": "ALL_NEW"},
    ),
    (
        "ADD #cnt :one, #ss :set DELETE #ss :del",
        {"#cnt": "cnt", "#ss": "ss"},
        {":one": {"N": "5"}, ":set": {"SS": ["a", "b"]}, ":del": {"SS": ["a"]}},
        None,
        {},
    ),
    # plain SET / REMOVE updates (the one-pass path, ddb_values) next to what it must leave alone
    ("SET #a = if_not_exists(#a, :missing)", {"#a": "a"}, {":v": {"S": "v"}}, None, {}),
    ("SET #a = if_not_exists(#u, :v)", {"#a": "a"}, {":v": {"S": "v"}}, None, {}),
    (
        "SET #a = if_not_exists(#b, :v)",
        {"#a": "a2", "#b": "a"},
        {":v": {"S": "v"}},
        None,
        {"ReturnValues": "UPDATED_NEW"},
    ),
    ("SET #p = if_not_exists(#q, :n)", {"#p": "prefix", "#q": "q"}, {":n": {"N": "1"}}, None, {}),
    ("SET #p = if_not_exists(#p, :e)", {"#p": "prefix"}, {":e": {"S": ""}}, None, {}),
    ("REMOVE #u", {}, {}, None, {}),
    ("REMOVE #u", {"#u": "u"}, {}, None, {"ReturnValues": "ALL_OLD"}),
    ("REMOVE size", {}, {}, None, {}),
    (
        "REMOVE #a, #f SET #g = if_not_exists(#g, :v), #h = :v",
        {"#a": "a2", "#f": "f", "#g": "g", "#h": "h"},
        {":v": {"N": "7"}},
        None,
        {"ReturnValues": "ALL_NEW"},
    ),
    ("SET #a = :v", {"#a": "a"}, {":v": {"S": "v"}, ":unused": {"S": "u"}}, None, {}),
    ("SET #a = if_not_exists(#a, :v)", {"#a": "a", "#x": "x"}, {":v": {"S": "v"}}, None, {}),
    # the same text with other names: the cached checks must not carry over
    ("SET #k = :v", {"#k": "other"}, {":v": {"S": "v"}}, None, {}),
    ("SET #k = :v", {"#k": "s3_key"}, {":v": {"S": "v"}}, None, {}),
    ("SET #k = :v", {"#k": "other"}, {":v": {"S": "w"}}, None, {}),
    ("SET #a = :v, #b = :v", {"#a": "dup", "#b": "dup"}, {":v": {"S": "v"}}, None, {}),
    ("SET #a = :v, #b = :v", {"#a": "d1", "#b": "d2"}, {":v": {"S": "v"}}, None, {}),
    ("SET s3_key = :v", {}, {":v": {"S": "v"}}, None, {}),
    ("SET x = if_not_exists(s3_key, :v)", {}, {":v": {"S": "v"}}, None, {}),
    ("SET #a = :v, #b = :missing", {"#a": "a", "#b": "b"}, {":v": {"S": "v"}}, None, {}),
    ("SET #a = :v, #b = :v", {"#a": "a"}, {":v": {"S": "v"}}, None, {}),
    ("SET #a = :v SET #b = :v", {"#a": "a", "#b": "b"}, {":v": {"S": "v"}}, None, {}),
    ("SET #a = :v REMOVE #a", {"#a": "a"}, {":v": {"S": "v"}}, None, {}),
    ("SET #p = :n", {"#p": "prefix"}, {":n": {"N": "1"}}, None, {}),
    ("SET #p = :e", {"#p": "prefix"}, {":e": {"S": ""}}, None, {}),
    ("SET #p = :e", {"#p": "upload_id"}, {":e": {"S": "u"}}, None, {}),
    ("SET prefix = :n", {}, {":n": {"N": "1"}}, None, {}),
    ("SET prefix = :e", {}, {":e": {"S": ""}}, None, {}),
    ("SET size = :v", {}, {":v": {"N": "1"}}, None, {}),
    ("SET #a = :v,", {"#a": "a"}, {":v": {"S": "v"}}, None, {}),
    ("SET #a = :v", {"#a": "a"}, {":v": {"S": "v"}}, "#a = :v AND", {}),
    ("SET #a = :v", {"#a": "a"}, {":v": {"S": "v"}}, "#a = :v AND", {}),
    (
        "SET #a = :v",
        {"#a": "a"},
        {":v": {"S": "v"}, ":one": {"N": "1"}},
        "#a <> :v",
        {"ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
    ),
    (
        "SET #a = :v",
        {"#a": "a"},
        {":v": {"S": "z"}, ":one": {"N": "1"}},
        "attribute_exists(#a) AND size(#a) < :one OR begins_with(#a, :v)",
        {},
    ),
    (
        "SET #a = :v",
        {"#a": "a"},
        {":v": {"S": "z"}},
        "#a IN (:v) OR NOT attribute_exists(#a)",
        {"ReturnValuesOnConditionCheckFailure": "ALL_OLD", "ReturnValues": "ALL_OLD"},
    ),
    ("SET #a = :v", {"#a": "a"}, {":v": {"S": "y"}}, "#zz = :v", {}),
]


def _raw_steps(ddb: Any, prefix: str) -> list[Any]:
    answers: list[Any] = []
    for key in (f"{prefix}/raw-existing", f"{prefix}/raw-new"):
        for update, names, values, condition, extra in _RAW:
            request: dict[str, Any] = {
                "TableName": TABLE,
                "Key": {"s3_key": {"S": key}},
                "UpdateExpression": update,
                **extra,
            }
            if values:  # a REMOVE-only update must send none
                request["ExpressionAttributeValues"] = values
            if names:
                request["ExpressionAttributeNames"] = names
            if condition is not None:
                request["ConditionExpression"] = condition
            answers.append(_answer(lambda request=request: ddb.update_item(**request)))
            if key.endswith("raw-new"):  # every request on a key that does not exist yet
                delete = {"TableName": TABLE, "Key": request["Key"], "ReturnValues": "ALL_OLD"}
                answers.append(_answer(lambda delete=delete: ddb.delete_item(**delete)))
    transact = [
        {"Update": {"TableName": TABLE, "Key": {"s3_key": {"S": f"{prefix}/tx"}},
                    "UpdateExpression": "SET #a = :v, #f = if_not_exists(#f, :v)",
                    "ExpressionAttributeNames": {"#a": "a", "#f": "f"},
                    "ExpressionAttributeValues": {":v": {"S": "tx"}}}},
    ]  # fmt: skip
    answers.append(_answer(lambda: ddb.transact_write_items(TransactItems=transact)))
    answers.append(_answer(lambda: ddb.transact_write_items(TransactItems=transact)))
    return answers


def run() -> dict[str, Any]:
    """The scenario's answers and the table at the end (twice over, on distinct keys)."""
    import boto3
    from moto import mock_aws

    from filegate.ledger import Ledger

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        _create_table(ddb)
        ledger = Ledger(TABLE, ddb, clock=lambda: FIXED)
        answers: dict[str, Any] = {}
        for prefix in ("first", "again"):  # the second pass runs on remembered expressions
            answers[f"{prefix}/ledger"] = _ledger_steps(ledger, prefix)
            answers[f"{prefix}/raw"] = _raw_steps(ddb, prefix)
        items = ddb.scan(TableName=TABLE)["Items"]
        answers["table"] = sorted(items, key=lambda item: item["s3_key"]["S"])
    return json.loads(json.dumps(answers, default=repr, sort_keys=True))  # type: ignore[no-any-return]


def unpatched() -> bool:
    """No emulator DynamoDB patch in this process: moto's own validator."""
    from moto.dynamodb.parsing import validators

    return validators.Validator.__init__.__module__.startswith("moto.")


if __name__ == "__main__":
    assert unpatched(), "the baseline must run on moto's own code"
    print(json.dumps(run(), sort_keys=True))
