"""moto's DynamoDB UpdateItem made cheap, in the emulator process only; same results as moto's.

Why: after the SQS patches, the ledger's one conditional UpdateItem per event (a SET of ~12
attributes, an ``if_not_exists``, an optional REMOVE) is where the emulator spends its time in
a burst (benchmarks/e2e_burst.py): ~8.7 ms per request in moto's handler against ~0.12 ms for a
PutItem. In moto 5.2.5 one such UpdateItem of a new item:
- tokenizes and parses the update expression twice (once in the response layer to list the
  placeholders it uses, once in the backend), and the condition expression twice;
- validates the update twice (against an empty item "before creating anything", then against
  the created item), each time deep-copying the AST with :func:`copy.deepcopy` and walking it
  once per processor, ten processors;
- two of those processors, ``ActionCountValidator`` and ``OverlappingPathsValidator``, run at
  every ``UpdateExpression`` node and each walks the whole subtree below it: quadratic in the
  number of actions;
- every node visited by every processor rebuilds the processor's ``_processing_map`` dict
  (twice when the node is processed) and runs ABC ``isinstance`` checks.

Patched, keeping moto's results and errors (moto's processors still do all the work that
depends on the request's values and the item):
- **parse once per expression text**: ``UpdateExpressionParser.make`` remembers its AST per
  text. moto never changes a parsed AST (the response layer only reads it, the validator works
  on its own copy), so one AST serves every request. Parse errors are not remembered;
- **copy the AST structurally**: the validator's ``deepcopy`` becomes a clone that knows the
  parser's output (nodes with ``type``, ``children``, ``parent``; strings and numbers as
  leaves); anything else falls back to ``deepcopy``;
- **expression-only checks once**: ``ActionCountValidator``, ``OverlappingPathsValidator`` and
  ``UpdateHashRangeKeyValidator`` read only the AST, the expression attribute names and the
  table's key attributes, and change nothing. Once they have passed for one parsed AST with
  the same names and key attributes they are skipped for it (a failure is not remembered);
- **a new item's update validated once**: the second validation of the same request is
  provably the same as the first (see :func:`_reusable`), so the first's tree is used;
- **walks without repeated class tests**: the processing map is built once per processor and
  "is it a node / does this processor process it" is answered once per (processor class, node
  class); a child that is not a node is not visited (moto's visit returns it untouched);
- **condition expressions tokenized once per text** (the tokens depend on the text only; each
  request still gets its own tokens, and the rest of moto's condition parser runs as before),
  and **parsed once per request** (moto's second parse, of the same objects, gets the first's
  read-only tree);
- **the seven value-dependent processors in one pass** for a plain SET / REMOVE update
  (:mod:`.ddb_values`), moto's processors on a fresh copy for anything else;
- **placeholder searches on a remembered tree remembered**, and a remembered tree's copy built
  from steps computed once.

``FILEGATE_EMULATOR_DDB_PATCH=0`` serves without these (see the package's docstring).
"""

from __future__ import annotations

import collections
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


# --- traversal: class tests once per (processor class, node class), processing maps once ------

_NOT_A_NODE, _NODE, _PROCESSED_NODE = 0, 1, 2
# Per processor class: node class -> _NOT_A_NODE / _NODE / _PROCESSED_NODE, and whether the class
# has its own pre_processing_of_child. The processing map's keys are literal classes in every
# moto processor, so they are the same for every instance of a processor class.
_kinds: dict[type, dict[type, int]] = {}
_hooked: dict[type, bool] = {}


def _steps(traverser: Any) -> tuple[tuple[type, Any], ...]:
    steps: tuple[tuple[type, Any], ...] | None = traverser.__dict__.get("_filegate_steps")
    if steps is None:
        steps = tuple(traverser._processing_map().items())
        traverser.__dict__["_filegate_steps"] = steps
    return steps


def _nodes_to_be_processed(self: Any) -> tuple[type, ...]:
    return tuple(key for key, _ in _steps(self))


def _process(self: Any, node: Any) -> Any:
    for class_key, processor in _steps(self):
        if isinstance(node, class_key):
            return processor(node)
    return None


def _kind(traverser: Any, kinds: dict[type, int], cls: type) -> int:
    """``isinstance(node, Node)``, then ``isinstance(node, self.nodes_to_be_processed())``."""
    if not issubclass(cls, _moto["Node"]):
        kind = _NOT_A_NODE
    elif issubclass(cls, traverser.nodes_to_be_processed()):
        kind = _PROCESSED_NODE
    else:
        kind = _NODE
    kinds[cls] = kind
    return kind


def _traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
    """moto's DepthFirstTraverser.traverse_node_recursively, with the class tests remembered and
    no call for a child that is not a node (moto's call returns it untouched)."""
    processor_class = type(self)
    kinds = _kinds.get(processor_class)
    if kinds is None:
        kinds = _kinds[processor_class] = {}
        base_hook = _moto["DepthFirstTraverser"].pre_processing_of_child
        _hooked[processor_class] = processor_class.pre_processing_of_child is not base_hook
    return _walk(self, node, child_id, kinds, _hooked[processor_class])


def _walk(self: Any, node: Any, child_id: int, kinds: dict[type, int], hooked: bool) -> Any:
    kind = kinds.get(type(node))
    if kind is None:
        kind = _kind(self, kinds, type(node))
    if kind == _NOT_A_NODE:
        return node
    parent_node = node.parent
    if node.children is not None:
        for i, child_node in enumerate(node.children):
            if hooked:
                self.pre_processing_of_child(node, i)
            child_kind = kinds.get(type(child_node))
            if child_kind is None:
                child_kind = _kind(self, kinds, type(child_node))
            if child_kind != _NOT_A_NODE:
                _walk(self, child_node, i, kinds, hooked)
    if kind == _PROCESSED_NODE:
        node = self.process(node)
        node.parent = parent_node
        if parent_node:
            parent_node.children[child_id] = node
    return node


# --- condition expressions: tokenized once per text ------------------------------------------


def _lex_once(lex: Callable[[Any], Any]) -> Callable[[Any], Any]:
    # The tokens depend on the expression text only. Tokens are namedtuples whose ``children``
    # is an empty list: each request gets its own tuples and lists, as moto's lexer gives.
    lexed: dict[str, tuple[Any, ...]] = {}

    @functools.wraps(lex)
    def cached_lex(self: Any) -> Any:
        text = self.condition_expression
        tokens = lexed.get(text) if isinstance(text, str) else None
        if tokens is None:
            fresh = lex(self)
            if not isinstance(text, str) or any(token.children for token in fresh):
                return fresh
            if len(lexed) >= _CACHE_LIMIT:
                lexed.clear()
            lexed[text] = tokens = tuple(fresh)
            return fresh
        node = type(self).Node
        return collections.deque(node._make((*token[:4], [])) for token in tokens)

    return cached_lex


def _parse_once_per_request(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """moto's UpdateItem parses its condition expression twice with the same text, names and
    values (the response layer, to list the placeholders used, then the backend, to evaluate
    it); the first tree is never evaluated. The second parse in the same thread, of the same
    objects (compared by identity), gets the first's tree. Condition trees are read-only: their
    nodes set their fields in ``__init__`` only."""

    @functools.wraps(parse)
    def parse_or_reuse(self: Any) -> Any:
        inputs = (self.condition_expression, self.expression_attribute_names,
                  self.expression_attribute_values)  # fmt: skip
        last = getattr(_local, "condition", None)
        _local.condition = None
        if last is not None and all(a is b for a, b in zip(last[0], inputs, strict=True)):
            self.expr_attr_names_found, self.expr_attr_values_found = last[2]
            return last[1]
        tree = parse(self)
        found = (list(self.expr_attr_names_found), list(self.expr_attr_values_found))
        _local.condition = (inputs, tree, found)
        return tree

    return parse_or_reuse


def _clauses_remembered(find_clauses: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``find_clauses`` on a remembered (never changed) parsed update: the nodes found once."""
    found: dict[tuple[int, tuple[type, ...]], tuple[Any, list[Any]]] = {}

    @functools.wraps(find_clauses)
    def remembered(self: Any, clause_types: Any) -> Any:
        if self.parent is not None or not _is_remembered(self):
            return find_clauses(self, clause_types)
        key = (id(self), tuple(clause_types))
        entry = found.get(key)
        if entry is None or entry[0] is not self:
            if len(found) >= _CACHE_LIMIT:
                found.clear()
            entry = found[key] = (self, find_clauses(self, clause_types))
        return list(entry[1])

    return remembered


def patch(seams: Seams) -> None:
    """Install the DynamoDB UpdateItem patches."""
    from moto.dynamodb.parsing import validators

    # moto's parsing modules are untyped ("# type: ignore"): reach them as plain modules.
    ast_nodes = importlib.import_module("moto.dynamodb.parsing.ast_nodes")
    parser = importlib.import_module("moto.dynamodb.parsing.expressions").UpdateExpressionParser
    conditions = importlib.import_module("moto.dynamodb.comparisons").ConditionExpressionParser
    traverser = ast_nodes.DepthFirstTraverser
    _moto.update(
        Node=ast_nodes.Node,
        DepthFirstTraverser=traverser,
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
        (traverser, "nodes_to_be_processed", _nodes_to_be_processed),
        (traverser, "process", _process),
        (traverser, "traverse_node_recursively", _traverse_node_recursively),
        (conditions, "_lex_condition_expression", _lex_once(conditions._lex_condition_expression)),
        (conditions, "parse", _parse_once_per_request(conditions.parse)),
        (ast_nodes.Node, "find_clauses", _clauses_remembered(ast_nodes.Node.find_clauses)),
    ]
    for owner, name, replacement in replacements:
        seams.replace(owner, name, replacement)


def active() -> bool:
    """Whether :func:`patch` is in force in this process."""
    from moto.dynamodb.parsing import validators

    return validators.UpdateExpressionValidator.validate is _validate_update
