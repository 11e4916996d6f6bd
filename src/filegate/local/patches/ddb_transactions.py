"""moto's DynamoDB TransactWriteItems without a copy of every table it touches; same results.

Why: moto 5.2.5 backs a transaction up by ``copy.deepcopy`` of each table it names, before
anything else, and puts the copies back if it is cancelled. The per-partner quotas make every
declaration and every verdict of a declared upload a transaction on the ledger table, so the
copy grows with the ledger: measured in-process, a declaration takes 6 ms with an empty ledger,
34 ms at 1,000 items and 320 ms at 5,000 (docs/aws-fidelity.md, "Quotas and account limits"),
and the emulator serves DynamoDB one request at a time.

Patched (the emulator's requests are already one at a time, local/dynamodb_atomic.py):
- every action's condition is checked first, against the items as they are before the
  transaction, as DynamoDB does ("the actions are completed atomically so that either all of
  them succeed, or all of them fail": DynamoDB API Reference, TransactWriteItems); a failed one
  cancels the transaction with moto's own ``TransactionCanceledException`` (a reason per
  action, ``ALL_OLD`` items), before anything is written, so nothing is copied;
- then each action is applied with moto's own put/update/delete, after copying only the item
  it touches and noting its table's stream length; an error on the way puts those items and
  streams back and is raised as moto raises it.

``FILEGATE_EMULATOR_DDB_PATCH=0`` serves without it (with moto's UpdateItem, see ``dynamodb``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from filegate.local.patches.seams import Seams

_OPERATIONS = ("ConditionCheck", "Put", "Delete", "Update")


@dataclass
class _Action:
    kind: str
    request: dict[str, Any]
    table: Any  # moto's Table
    key: dict[str, Any]


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    from moto.dynamodb import exceptions

    if len(transact_items) > 100:
        raise exceptions.TooManyTransactionsException()
    actions = _actions(self, transact_items)
    errors = [_check(self, action) for action in actions]
    if any(code is not None for code, _, _ in errors):
        raise exceptions.TransactionCanceledException(errors)
    undo: list[tuple[Any, Any, Any, Any, int | None]] = []
    for number, action in enumerate(actions):
        undo.append(_snapshot(self, action))
        try:
            _write(self, action)
        except (exceptions.MultipleTransactionsException, exceptions.MockValidationException):
            _restore(undo)
            raise
        except Exception as exc:  # moto cancels with the error's type as the reason
            _restore(undo)
            reasons: list[Any] = [(None, None, None)] * len(actions)
            reasons[number] = (type(exc).__name__, str(exc), None)
            raise exceptions.TransactionCanceledException(reasons) from exc


def _actions(backend: Any, transact_items: list[dict[str, Any]]) -> list[_Action]:
    """The actions, checked as moto checks them: one operation each, one action per item."""
    from moto.dynamodb import exceptions

    actions, seen = [], set()
    for item in transact_items:
        if len(item) > 1:
            raise exceptions.TransactWriteSingleOpException
        kind, request = next(iter(item.items()))
        if kind not in _OPERATIONS:
            raise ValueError("Unsupported transaction operation")
        table = backend.get_table(request["TableName"])
        key = request["Key"] if kind != "Put" else _put_key(table, request["Item"])
        unique = (str(request["TableName"]), str(dict(sorted(key.items()))))
        if unique in seen:
            raise exceptions.MultipleTransactionsException()
        seen.add(unique)
        actions.append(_Action(kind, request, table, key))
    return actions


def _put_key(table: Any, attributes: dict[str, Any]) -> dict[str, Any]:
    key = {table.hash_key_attr: attributes[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attributes[table.range_key_attr]
    return key


def _check(backend: Any, action: _Action) -> tuple[Any, Any, Any]:
    """(None, None, None) when the action's condition holds, else moto's cancellation reason."""
    from moto.dynamodb.comparisons import get_filter_expression

    condition = action.request.get("ConditionExpression")
    if condition is None:
        return None, None, None
    current = backend.get_item(action.request["TableName"], action.key)
    expression = get_filter_expression(
        condition,
        action.request.get("ExpressionAttributeNames"),
        action.request.get("ExpressionAttributeValues"),
    )
    if expression.expr(current):
        return None, None, None
    old = None
    if action.request.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
        old = current.to_json()["Attributes"]
    return "ConditionalCheckFailed", "The conditional request failed", old


def _write(backend: Any, action: _Action) -> None:
    """The action with moto's own write; its condition was checked already."""
    request, name = action.request, action.request["TableName"]
    names = request.get("ExpressionAttributeNames")
    values = request.get("ExpressionAttributeValues")
    if action.kind == "Put":
        backend.put_item(name, request["Item"])
    elif action.kind == "Delete":
        backend.delete_item(name, action.key)
    elif action.kind == "Update":
        backend.update_item(
            name,
            action.key,
            update_expression=request["UpdateExpression"],
            expression_attribute_names=names,
            expression_attribute_values=values,
        )


def _snapshot(backend: Any, action: _Action) -> tuple[Any, Any, Any, Any, int | None]:
    """What undoing the action needs: its item (a copy, or None), key and stream length."""
    table = action.table
    hash_key, range_key = backend.get_keys_value(table, action.key)
    item = table.get_item(hash_key, range_key)
    stream = len(table.stream_shard.items) if table.stream_shard is not None else None
    return table, hash_key, range_key, copy.deepcopy(item), stream


def _restore(undo: list[tuple[Any, Any, Any, Any, int | None]]) -> None:
    """Put the touched items and their tables' streams back as they were, newest first."""
    for table, hash_key, range_key, item, stream in reversed(undo):
        holder = table.items[hash_key] if range_key is not None else table.items
        slot = range_key if range_key is not None else hash_key
        if item is None:
            holder.pop(slot, None)
        else:
            holder[slot] = item
        if stream is not None and table.stream_shard is not None:
            del table.stream_shard.items[stream:]


def patch(seams: Seams) -> None:
    """Install the TransactWriteItems patch."""
    from moto.dynamodb.models import DynamoDBBackend

    seams.replace(DynamoDBBackend, "transact_write_items", _transact_write_items)


def active() -> bool:
    """Whether :func:`patch` is in force in this process."""
    from moto.dynamodb.models import DynamoDBBackend

    return DynamoDBBackend.transact_write_items is _transact_write_items
