"""moto's DynamoDB UpdateItem made cheap, in the emulator process only; same results as moto's.

Why: the ledger's one conditional UpdateItem per event (a SET of ~12 attributes, an
``if_not_exists``, an optional REMOVE) is where the emulator spends its time in a burst. In
moto 5.2.5 one such UpdateItem of a new item parses the update expression twice and validates
it twice (against an empty item "before creating anything", then against the created item),
each time deep-copying the AST with :func:`copy.deepcopy` and walking it once per processor,
ten processors, two of them quadratic in the number of actions. Without this seam the burst
costs the emulator about twice the CPU per object (docs/benchmarks.md, "Issue 10:
DynamoDB/CloudFormation seams re-measured").

Patched, keeping moto's results and errors:
- **parse once per expression text**: ``UpdateExpressionParser.make`` remembers its AST per
  text. moto never changes a parsed AST (the response layer only reads it, the validator works
  on its own copy), so one AST serves every request. Parse errors are not remembered;
- **copy the AST structurally**: the validator's ``deepcopy`` becomes a clone that knows the
  parser's output (nodes with ``type``, ``children``, ``parent``; strings and numbers as
  leaves), from steps computed once per remembered tree; anything else falls back to
  ``deepcopy``;
- **expression-only checks once**: ``ActionCountValidator``, ``OverlappingPathsValidator`` and
  ``UpdateHashRangeKeyValidator`` read only the AST, the expression attribute names and the
  table's key attributes, and change nothing. Once they have passed for one parsed AST with
  the same names and key attributes they are skipped for it (a failure is not remembered);
- **a new item's update validated once**: the second validation of the same request is
  provably the same as the first (see :func:`_reusable`), so the first's tree is used;
- **the seven value-dependent processors in one pass** for a plain SET / REMOVE update
  (:mod:`.ddb_values`), moto's processors on a fresh copy for anything else.

``FILEGATE_EMULATOR_DDB_PATCH=0`` serves without these (see the package's docstring).
"""

from __future__ import annotations

import copy
import functools
import importlib
import threading
from collections.abc import Callable, Hashable
from typing import Any

from filegate.local.patches import ddb_values
from filegate.local.patches.seams import Seams

_moto: dict[str, Any] = {}  # moto classes the patches refer to, set by patch()
# The remembered ASTs and passed checks are bounded: past this many entries, start again.
_CACHE_LIMIT = 512
# Leaves shared, not copied: the exact types deepcopy itself returns as they are.
_ATOMS = frozenset({str, int, float, bool, type(None)})


class _NotAParsedTree(Exception):
    """The tree holds something the parser does not produce: copy it with ``deepcopy``."""


# --- parse once per expression text ----------------------------------------------------------


# id(remembered AST) -> the AST: the trees _parse_once hands out, which nothing may change.
_remembered: dict[int, Any] = {}


def _is_remembered(ast: Any) -> bool:
    return _remembered.get(id(ast)) is ast


def _parse_once(make: Callable[[str], Any]) -> Callable[[type, str], Any]:
    parsed: dict[tuple[type, str], Any] = {}

    def cached_make(cls: type, expression_str: str) -> Any:
        key = (cls, expression_str)
        ast = parsed.get(key)
        if ast is None:
            ast = make.__func__(cls, expression_str)  # type: ignore[attr-defined]
            if len(parsed) >= _CACHE_LIMIT:
                parsed.clear()
                _remembered.clear()
            parsed[key] = ast
            _remembered[id(ast)] = ast
        return ast

    return functools.wraps(make)(cached_make)


# --- copy the AST structurally ---------------------------------------------------------------


# One node of a remembered AST, to rebuild: class, fields (children and parent left None),
# index of the parent (-1 for the root), children as (is a node, index or leaf) or None.
_Step = tuple[type, dict[str, Any], int, tuple[tuple[bool, Any], ...] | None]
# id(remembered AST) -> (the AST, its steps): the AST never changes, so neither do they.
_recipes: dict[int, tuple[Any, list[_Step]]] = {}


def clone_ast(root: Any) -> Any:
    """What ``copy.deepcopy(root)`` gives for a parsed moto AST, built directly."""
    if root.parent is not None:
        return copy.deepcopy(root)
    entry = _recipes.get(id(root))
    if entry is not None and entry[0] is root:
        return _rebuild(entry[1])
    try:
        twin = _clone(root, None, _moto["Node"], set())
    except (_NotAParsedTree, AttributeError):  # AttributeError: a node without a __dict__
        return copy.deepcopy(root)
    if _is_remembered(root):  # checked by _clone above: a parsed tree, and it never changes
        if len(_recipes) >= _CACHE_LIMIT:
            _recipes.clear()
        _recipes[id(root)] = (root, _recipe(root))
    return twin


def _recipe(root: Any) -> list[_Step]:
    """The steps that rebuild ``root``: parents before their children."""
    node_class = _moto["Node"]
    nodes, parents = [root], [-1]
    for position, node in enumerate(nodes):  # grows while it is walked: breadth first
        for child in node.children or []:
            if isinstance(child, node_class):
                nodes.append(child)
                parents.append(position)
    index = {id(node): position for position, node in enumerate(nodes)}
    steps: list[_Step] = []
    for node, parent_index in zip(nodes, parents, strict=True):
        fields = {name: None if name in ("children", "parent") else value
                  for name, value in node.__dict__.items()}  # fmt: skip
        kids = None if node.children is None else tuple(
            (True, index[id(child)]) if isinstance(child, node_class) else (False, child)
            for child in node.children
        )  # fmt: skip
        steps.append((type(node), fields, parent_index, kids))
    return steps


def _rebuild(steps: list[_Step]) -> Any:
    made: list[Any] = []
    for cls, fields, parent_index, _ in steps:
        twin: Any = object.__new__(cls)
        twin.__dict__.update(fields)
        if parent_index >= 0:
            twin.parent = made[parent_index]
        made.append(twin)
    for twin, (_, _, _, kids) in zip(made, steps, strict=True):
        if kids is not None:
            twin.children = [made[value] if is_node else value for is_node, value in kids]
    return made[0]


def _clone(node: Any, parent: Any, node_class: Any, seen: set[int]) -> Any:
    if id(node) in seen:  # shared (deepcopy would keep the sharing): not a parsed tree
        raise _NotAParsedTree
    seen.add(id(node))
    cls = type(node)
    twin: Any = object.__new__(cls)  # what deepcopy's reconstruction calls (no __new__ here)
    state = dict(node.__dict__)
    for name, value in state.items():
        if name == "children":
            if value is None:
                continue
            if type(value) is not list:
                raise _NotAParsedTree
            children = []
            for child in value:
                if isinstance(child, node_class):
                    if child.parent is not node:
                        raise _NotAParsedTree
                    children.append(_clone(child, twin, node_class, seen))
                elif type(child) in _ATOMS:
                    children.append(child)
                else:
                    raise _NotAParsedTree
            state["children"] = children
        elif name == "parent":
            state["parent"] = parent
        elif type(value) not in _ATOMS:
            raise _NotAParsedTree
    twin.__dict__.update(state)
    return twin


def _validator_init(
    self: Any,
    expression: Any,
    expression_attribute_names: dict[str, str],
    expression_attribute_values: dict[str, dict[str, Any]],
    item: Any,
    table: Any,
) -> None:
    # moto's Validator.__init__, with clone_ast for deepcopy, the parsed AST remembered, and the
    # copy left to _validate_update when that is the validate that will run (it may need none).
    self.expression_attribute_names = expression_attribute_names
    self.expression_attribute_values = expression_attribute_values
    self.item = item
    self.table = table
    self.processors = self.get_ast_processors()
    self._filegate_parsed = expression
    deferred = getattr(type(self), "validate", None) is _validate_update
    self.node_to_validate = None if deferred else clone_ast(expression)


# --- expression-only checks once per (AST, names, key attributes) ----------------------------

# id(parsed AST) -> (the AST, the (names, key attributes) it passed with). Holding the AST keeps
# its id from being reused while the entry exists; the identity is checked on every lookup.
_passed: dict[int, tuple[Any, set[Hashable]]] = {}
# The tree of a validation against an empty item, for the same request's next validation.
_local = threading.local()


def _checks_key(validator: Any) -> Hashable | None:
    """What the expression-only checks read besides the AST, as a key; None if unhashable."""
    names = validator.expression_attribute_names
    try:
        named = None if names is None else frozenset(names.items())
        key = (type(names), named, tuple(validator.table.table_key_attrs))
        hash(key)
    except (AttributeError, TypeError):
        return None
    return key


def _validate_update(self: Any) -> Any:
    """moto's Validator.validate: the expression-only checks skipped once they have passed, and
    the validation of a new item's update done once (see _reusable)."""
    parsed = self._filegate_parsed
    reusable = _reusable(self)
    if reusable is not None:
        return reusable
    node = self.node_to_validate
    if node is None:
        node = self.node_to_validate = clone_ast(parsed)
    processors = list(self.processors)
    checks = _moto["expression_only"]
    key = _checks_key(self) if tuple(map(type, processors[: len(checks)])) == checks else None
    entry = _passed.get(id(parsed)) if key is not None else None
    known = entry is not None and entry[0] is parsed
    if known and key in entry[1]:  # type: ignore[index]
        processors = processors[len(checks) :]
    elif key is not None:
        for processor in processors[: len(checks)]:
            node = processor.traverse(node)
        processors = processors[len(checks) :]
        if not known:
            if len(_passed) >= _CACHE_LIMIT:
                _passed.clear()
            entry = (parsed, set())
            _passed[id(parsed)] = entry
        entry[1].add(key)  # type: ignore[index]
    node = _value_dependent(self, parsed, node, processors)
    if key is not None and _attribute_names(self.item) == set():
        # moto's "validate before creating anything": an empty item, the next validation is of
        # the same request against the item just created with only its key.
        _local.pending = (parsed, self.expression_attribute_names,
                          self.expression_attribute_values, self.table, node)  # fmt: skip
    return node


def _value_dependent(validator: Any, parsed: Any, node: Any, processors: list[Any]) -> Any:
    """The processors that read the values and the item: in one pass for a plain SET / REMOVE
    update (ddb_values), else moto's, one walk each, on a fresh copy."""
    fast = ddb_values.validated(validator, node, processors)
    if fast is not None:
        return fast
    node = validator.node_to_validate = clone_ast(parsed)
    for processor in processors:
        node = processor.traverse(node)
    return node


def _attribute_names(item: Any) -> set[str] | None:
    attrs = getattr(item, "attrs", None)
    return set(attrs) if isinstance(attrs, dict) else None


def _reusable(validator: Any) -> Any:
    """The tree validated just before in this thread, if this validation must give the same.

    moto's UpdateItem of an item that does not exist validates the update twice: against an
    empty item (so that an invalid update creates nothing), then, having created the item with
    only its key attributes, against that item. The two give the same tree and the same errors
    when the expression-only checks have passed: ``UpdateHashRangeKeyValidator`` then
    guarantees that no path in the expression starts at a key attribute, and path resolution
    (the only step that reads the item) walks from the path's first attribute, absent from both
    items. So the first tree (built from fresh values, referenced by nothing else) is returned
    for the second validation when it is the same request: the same parsed AST, names, values
    and table objects (held, so compared by identity), and an item with only key attributes.
    """
    pending = getattr(_local, "pending", None)
    if pending is None:
        return None
    _local.pending = None
    parsed, names, values, table, tree = pending
    names_now = _attribute_names(validator.item)
    if (
        validator._filegate_parsed is parsed
        and validator.expression_attribute_names is names
        and validator.expression_attribute_values is values
        and validator.table is table
        and names_now is not None
        and names_now <= set(table.table_key_attrs)
    ):
        validator.node_to_validate = tree
        return tree
    return None


def patch(seams: Seams) -> None:
    """Install the DynamoDB UpdateItem patches."""
    from moto.dynamodb.parsing import validators

    # moto's parsing modules are untyped ("# type: ignore"): reach them as plain modules.
    ast_nodes = importlib.import_module("moto.dynamodb.parsing.ast_nodes")
    parser = importlib.import_module("moto.dynamodb.parsing.expressions").UpdateExpressionParser
    _moto.update(
        Node=ast_nodes.Node,
        expression_only=(
            validators.ActionCountValidator,
            validators.OverlappingPathsValidator,
            validators.UpdateHashRangeKeyValidator,
        ),
    )
    replacements: list[tuple[Any, str, Any]] = [
        (parser, "make", classmethod(_parse_once(parser.make))),
        (validators.Validator, "__init__", _validator_init),
        (validators.UpdateExpressionValidator, "validate", _validate_update),
    ]
    for owner, name, replacement in replacements:
        seams.replace(owner, name, replacement)


def active() -> bool:
    """Whether :func:`patch` is in force in this process."""
    from moto.dynamodb.parsing import validators

    return validators.UpdateExpressionValidator.validate is _validate_update
