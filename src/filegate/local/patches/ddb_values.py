"""moto's value-dependent UpdateItem processors for a plain SET / REMOVE update, in one pass.

After the expression-only checks (see :mod:`.dynamodb`), moto validates an update by walking
the whole tree once per processor, seven processors, ~90 nodes for the ledger's expression. For
an update made only of

- ``SET <name> = :value`` and ``SET <name> = if_not_exists(<name>, :value)`` actions, and
- ``REMOVE <name>`` actions,

where each ``<name>`` is one top-level attribute (``#placeholder`` or a plain name), what those
processors do is known exactly: every ``:value`` becomes ``DDBTypedValue(DynamoType(value))``;
an ``if_not_exists`` becomes the item's own value when the item has the attribute, else the
value; each SET action's right-hand side becomes that value node; nothing else changes. The
checks that can fail on such an update are: a placeholder not defined (names or values), a
plain name that is a reserved word, a value moto cannot read, and moto's last two checks (key
attribute types, empty key strings), which :func:`validated` runs itself, moto's code on the
built tree. Anything else in the tree, or any of those failing, returns None: the caller then
runs moto's processors on a fresh copy, so errors (and their order) stay moto's.
"""

from __future__ import annotations

import importlib
from typing import Any

_moto: dict[str, Any] = {}


def _load() -> dict[str, Any]:
    if not _moto:
        nodes = importlib.import_module("moto.dynamodb.parsing.ast_nodes")
        validators = importlib.import_module("moto.dynamodb.parsing.validators")
        keywords = importlib.import_module("moto.dynamodb.parsing.reserved_keywords")
        _moto.update(
            nodes=nodes,
            DynamoType=importlib.import_module("moto.dynamodb.models.dynamo_type").DynamoType,
            reserved=keywords.ReservedKeywords.get_reserved_keywords(),
            containers=(
                nodes.UpdateExpression,
                nodes.UpdateExpressionSetClause,
                nodes.UpdateExpressionSetActions,
                nodes.UpdateExpressionRemoveClause,
                nodes.UpdateExpressionRemoveActions,
            ),
            value_dependent=(
                validators.ExpressionAttributeValueProcessor,
                validators.ExpressionAttributeResolvingProcessor,
                validators.UpdateExpressionFunctionEvaluator,
                validators.NoneExistingPathChecker,
                validators.ExecuteOperations,
                validators.TypeMismatchValidator,
                validators.EmptyStringKeyValueValidator,
            ),
        )
    return _moto


class _NotPlain(Exception):
    """The update is not a plain SET / REMOVE one (or a check fails): moto's processors run."""


def validated(validator: Any, tree: Any, processors: list[Any]) -> Any | None:
    """The tree moto's ``processors`` would return for ``tree`` (a fresh copy of the parsed
    update), or None when the update is not plain. ``tree`` is changed only when the result is
    not None or when moto's last two checks fail on it: copy it afresh before running moto's."""
    moto = _load()
    if tuple(map(type, processors)) != moto["value_dependent"]:
        return None
    names = validator.expression_attribute_names
    values = validator.expression_attribute_values
    attrs = getattr(validator.item, "attrs", None)
    if not (isinstance(names, dict) and isinstance(values, dict) and isinstance(attrs, dict)):
        return None
    plan: list[tuple[Any, Any]] = []
    try:
        _collect(tree, _Request(names, values, attrs), plan)
    except Exception:  # _NotPlain, or anything else moto's processors are to judge
        return None
    for action, value in plan:
        value.parent = action
        action.children[1] = value
    type_check, empty_check = processors[-2], processors[-1]
    try:
        for action, _ in plan:
            type_check.check_for_type_mismatch(action)
        for action, _ in plan:
            empty_check.check_for_empty_string_key_value(action)
    except Exception:  # moto's own run raises it, in moto's order
        return None
    return tree


class _Request:
    """What the processors read: names, values, the item's attributes."""

    def __init__(self, names: dict[str, str], values: dict[str, Any], attrs: dict[str, Any]):
        self.names, self.values, self.attrs = names, values, attrs


def _collect(node: Any, request: _Request, plan: list[tuple[Any, Any]]) -> None:
    """Each SET action with the value node that replaces its right-hand side, in tree order."""
    moto = _moto
    nodes = moto["nodes"]
    kind = type(node)
    if kind in moto["containers"]:
        for child in node.children or []:
            _collect(child, request, plan)
    elif kind is nodes.UpdateExpressionSetAction and len(node.children) == 2:
        path, value = node.children
        _name(path, request)
        plan.append((node, _value(value, request)))
    elif kind is nodes.UpdateExpressionRemoveAction and len(node.children) == 1:
        _name(node.children[0], request)
    else:
        raise _NotPlain


def _name(path: Any, request: _Request) -> str:
    """The attribute a one-element path names (moto's path resolution, for such a path)."""
    nodes = _moto["nodes"]
    if type(path) is not nodes.UpdateExpressionPath or len(path.children) != 1:
        raise _NotPlain
    (element,) = path.children
    if type(element) is nodes.ExpressionAttributeName:
        placeholder = element.get_attribute_name_placeholder()
        if placeholder not in request.names:
            raise _NotPlain  # ExpressionAttributeNameNotDefined
        return request.names[placeholder]
    if type(element) is nodes.ExpressionAttribute:
        name: str = element.get_attribute_name()
        if name.upper() in _moto["reserved"]:
            raise _NotPlain  # AttributeIsReservedKeyword
        return name
    raise _NotPlain


def _value(node: Any, request: _Request) -> Any:
    """The node a SET action's right-hand side becomes."""
    nodes = _moto["nodes"]
    if type(node) is not nodes.UpdateExpressionValue or len(node.children) != 1:
        raise _NotPlain
    (operand,) = node.children
    if type(operand) is nodes.ExpressionAttributeValue:
        return _typed(operand, request)
    if type(operand) is nodes.UpdateExpressionFunction and len(operand.children) == 3:
        function, path, default = operand.children
        if function != "if_not_exists" or type(default) is not nodes.ExpressionAttributeValue:
            raise _NotPlain
        name = _name(path, request)
        fallback = _typed(default, request)  # moto resolves the value whether it is used or not
        if name in request.attrs:
            return nodes.DDBTypedValue(request.attrs[name])
        return fallback
    raise _NotPlain


def _typed(node: Any, request: _Request) -> Any:
    name = node.get_value_name()
    if name not in request.values:
        raise _NotPlain  # ExpressionAttributeValueNotDefined
    return _moto["nodes"].DDBTypedValue(_moto["DynamoType"](request.values[name]))
