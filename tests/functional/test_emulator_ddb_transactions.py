"""The emulator's TransactWriteItems patch gives moto's answers without copying the tables.

The same scenario (ddb_transactions_scenario.py: transactions written, cancelled by a
condition, naming an item twice, failing half-way through; the ledger's quota transactions)
runs once in a child process on moto's own code and once here with the patches applied
(``patches.applied``, undone when the test ends): every answer, every table and the ledger's
stream must be equal. DynamoDB's rule: "The actions are completed atomically so that either all
of them succeed, or all of them fail" (DynamoDB API Reference, TransactWriteItems).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ddb_transactions_scenario
import pytest
import unpatched

from filegate.local import patches
from filegate.local.patches import ddb_transactions

SCENARIO = Path(ddb_transactions_scenario.__file__)


@pytest.fixture
def patched() -> Iterator[None]:
    with patches.applied():
        assert ddb_transactions.active()
        yield
    assert not ddb_transactions.active()  # moto as it was for the next test


def test_a_transaction_is_all_or_nothing_with_and_without_the_patch(patched: None) -> None:
    baseline = unpatched.answers(SCENARIO)
    answers = ddb_transactions_scenario.run()

    assert answers == baseline
    # the scenario covers what it claims
    raw = baseline["raw"]
    assert ["error" in answer for answer in raw] == [False, False, True, True, True, False]
    assert raw[2]["error"] == "TransactionCanceledException"
    assert [r["Code"] for r in raw[2]["reasons"]] == ["None", "ConditionalCheckFailed"]
    assert raw[2]["reasons"][1]["Item"]["n"] == {"N": "2"}  # ALL_OLD
    assert raw[3]["error"] == "ValidationException"
    assert "part of the key" in raw[4]["message"]  # refused half-way, after the Put was applied
    ranged = [item["r"]["S"] for item in baseline["state"]["tx-ranged"]]
    assert ranged == []  # r=1 deleted at the end; r=2 never stayed
    assert baseline["ledger"][:2] == ["None", "None"]
    assert answers["ledger"][2]["raised"] == "QuotaExceededError"
    assert [name for name, _ in baseline["state"]["stream"]].count("INSERT") == 2


def test_the_patch_copies_no_table(patched: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # A cancelled and a written transaction, with deepcopy counting what it copies: only the
    # items touched, never a table.
    copied: list[str] = []
    deepcopy = copy.deepcopy

    def counting(value: Any, memo: Any = None) -> Any:
        copied.append(type(value).__name__)
        return deepcopy(value, memo)

    monkeypatch.setattr(ddb_transactions.copy, "deepcopy", counting)
    answers = ddb_transactions_scenario.run()

    assert "error" not in answers["raw"][0]
    assert "Table" not in copied
