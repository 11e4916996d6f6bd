"""The emulator's DynamoDB patch gives moto's answers, only faster (in-process moto).

The same scenario (ddb_patch_scenario.py: the ledger's writes, and raw UpdateItems aimed at each
of moto's update and condition checks) runs once in a child process on moto's own code and once
here with the patch applied (``patches.applied``, undone when the test ends); every answer and
the final table must be equal.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ddb_patch_scenario
import pytest
import unpatched

from filegate.local import patches
from filegate.local.patches import dynamodb

SCENARIO = Path(ddb_patch_scenario.__file__)


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    """The scenario's answers on moto's own code, from a process where nothing is patched."""
    return unpatched.answers(SCENARIO)


@pytest.fixture
def patched() -> Iterator[None]:
    with patches.applied():
        assert dynamodb.active()
        assert not ddb_patch_scenario.unpatched()
        yield
    assert not dynamodb.active()  # moto as it was for the next test


def _dump(node: Any) -> Any:
    """A moto AST as nested lists, checking every child's parent link on the way."""
    children = []
    for child in node.children or []:
        if hasattr(child, "children"):
            assert child.parent is node
            children.append(_dump(child))
        else:
            children.append(repr(child))
    return [type(node).__name__, node.type, children]


def test_patched_answers_equal_moto_answers(baseline: dict[str, Any], patched: None) -> None:
    answers = ddb_patch_scenario.run()

    assert answers.keys() == baseline.keys()
    for part, expected in baseline.items():
        assert answers[part] == expected, part
    # the scenario covers what it claims: outcomes, conditional failures with ALL_OLD, REMOVE
    ledger = baseline["first/ledger"]
    assert [ledger[i] for i in range(0, 24, 2)] == [
        "written", "duplicate", "stale", "written", "duplicate", "written",
        "written", "duplicate", "stale", "written", "written", "stale",
    ]  # fmt: skip
    errors = {answer.get("error") for answer in baseline["first/raw"] if isinstance(answer, dict)}
    assert {"ValidationException", "ConditionalCheckFailedException"} <= errors
    assert any(
        answer.get("error") == "ConditionalCheckFailedException" and answer.get("item")
        for answer in baseline["first/raw"]
        if isinstance(answer, dict)
    )
    assert "version_id=None" in ledger[11]  # the newer create REMOVEd the delete's version


def test_remembered_update_ast_is_never_changed(patched: None) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.parsing.tokens import ExpressionTokenizer

    text = "SET #a = if_not_exists(#a, :v), #n = #n + :one REMOVE #l[1], #m.#k"

    ddb_patch_scenario.run()  # validates and executes many trees
    remembered = UpdateExpressionParser.make(text)
    for _ in range(3):
        assert UpdateExpressionParser.make(text) is remembered
    fresh = UpdateExpressionParser(ExpressionTokenizer.make_list(text)).parse()

    assert _dump(remembered) == _dump(fresh)


def test_structural_clone_is_a_deepcopy(patched: None) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.parsing.ast_nodes import DDBTypedValue
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.parsing.tokens import ExpressionTokenizer

    text = "SET a.b[2] = list_append(:x, if_not_exists(c, :y)) ADD s :z DELETE t :w REMOVE u"
    tree = UpdateExpressionParser(ExpressionTokenizer.make_list(text)).parse()

    clone = dynamodb.clone_ast(tree)

    assert _dump(clone) == _dump(copy.deepcopy(tree)) == _dump(tree)
    assert clone is not tree
    assert clone.children[0] is not tree.children[0]
    # a tree the parser would not produce (a value node) is deep-copied instead
    value = DDBTypedValue(DynamoType({"S": "x"}))
    copied = dynamodb.clone_ast(value)
    assert copied.children[0] is not value.children[0]
    assert copied.children[0] == value.children[0]


@pytest.mark.parametrize("existing", [{}, {"f": {"S": "kept"}, "a": {"N": "1"}}])
def test_one_pass_tree_equals_moto_processors_tree(patched: None, existing: dict[str, Any]) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.parsing.validators import UpdateExpressionValidator

    from filegate.local.patches import ddb_values

    text = "SET #a = :v, width = :n, #f = if_not_exists(#f, :w) REMOVE #r, leftover"
    names = {"#a": "a", "#f": "f", "#r": "r"}
    values = {":v": {"S": "v"}, ":n": {"N": "3"}, ":w": {"S": "w"}}
    item = Item(DynamoType({"S": "k"}), None, attrs=existing)
    validator = UpdateExpressionValidator(
        UpdateExpressionParser.make(text), expression_attribute_names=names,
        expression_attribute_values=values, item=item, table=_KeyOnlyTable(),
    )  # fmt: skip
    moto_tree = dynamodb.clone_ast(UpdateExpressionParser.make(text))
    for processor in validator.processors[3:]:
        moto_tree = processor.traverse(moto_tree)

    one_pass = ddb_values.validated(
        validator, dynamodb.clone_ast(UpdateExpressionParser.make(text)), validator.processors[3:]
    )

    assert one_pass is not None
    assert _dump(one_pass) == _dump(moto_tree)
    kept = one_pass.children[0].children[0].children[1].children[1].children[0].children[1]
    if existing:
        assert kept.children[0] is item.attrs["f"]  # the item's own value, as moto resolves it
    else:
        assert kept.children[0] == DynamoType({"S": "w"})


def test_one_pass_declines_what_is_not_a_plain_set_or_remove(patched: None) -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType, Item
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser
    from moto.dynamodb.parsing.validators import UpdateExpressionValidator

    from filegate.local.patches import ddb_values

    for text in ("SET #a = #a + :v", "ADD #a :v", "SET #a.#b = :v", "SET #a = list_append(#a, :v)"):
        validator = UpdateExpressionValidator(
            UpdateExpressionParser.make(text), expression_attribute_names={"#a": "a", "#b": "b"},
            expression_attribute_values={":v": {"N": "1"}},
            item=Item(DynamoType({"S": "k"}), None, attrs={}), table=_KeyOnlyTable(),
        )  # fmt: skip
        tree = dynamodb.clone_ast(UpdateExpressionParser.make(text))

        assert ddb_values.validated(validator, tree, validator.processors[3:]) is None, text


class _KeyOnlyTable:
    """What moto's update validators read of a table: a hash key ``s3_key``, no other keys."""

    def __init__(self) -> None:
        self.table_key_attrs = ["s3_key"]
        self.attribute_keys = ["s3_key"]
        self.attr = [{"AttributeName": "s3_key", "AttributeType": "S"}]
