"""Reads the CloudFormation template shipped in the package and resolves its intrinsics.

Owns loading the YAML (short-form tags included) and resolving Ref, Fn::GetAtt, Fn::Sub,
Fn::Join, Fn::If and Conditions against a stack's values. ``filegate deploy`` uses it for
the change set's parameters, the preflight and the function's fingerprint; the local stack
uses it to apply what the emulator skips, so the template stays the one source of truth.
Both send ``template_text`` as it is, comments included, through S3 (``ops.artifacts``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, ClassVar

import yaml

from filegate.errors import StackError

TEMPLATE_NAME = "s3-lambda-dynamo.yml"
NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


def template_text() -> str:
    """The template's text, read from the installed package."""
    return resources.files("filegate").joinpath("templates", TEMPLATE_NAME).read_text("utf-8")


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that turns ``!Ref x`` into ``{"Ref": "x"}`` and so on."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in {"Ref", "Condition"} else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load(text: str | None = None) -> dict[str, Any]:
    """Parse the template into plain dicts and lists."""
    document = yaml.load(text if text is not None else template_text(), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise StackError(f"the template {TEMPLATE_NAME} has no Resources section")
    return document


AttributeLookup = Callable[[str, str], str]


class Resolver:
    """Resolves intrinsic functions against a stack's parameters and physical resources."""

    def __init__(
        self,
        template: Mapping[str, Any],
        refs: Mapping[str, str],
        get_attribute: AttributeLookup,
    ) -> None:
        self._template = template
        self._refs = refs
        self._get_attribute = get_attribute
        self._conditions: dict[str, bool] = {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in map(self.resolve, value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, argument),) = value.items()
            handler = self._FUNCTIONS.get(name)
            if handler is not None:
                return handler(self, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            conditions = self._template.get("Conditions", {})
            if name not in conditions:
                raise StackError(f"the template uses condition {name!r} but does not define it")
            self._conditions[name] = bool(self.resolve(conditions[name]))
        return self._conditions[name]

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name not in self._refs:
            raise StackError(f"cannot resolve !Ref {name}: no parameter or resource of that name")
        return self._refs[name]

    def _get_att(self, argument: list[str]) -> str:
        logical_id, attribute = argument
        return self._get_attribute(logical_id, attribute)

    def _sub(self, argument: str | list[Any]) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        local = {key: self.resolve(value) for key, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name:
                return self._get_att(name.split(".", 1))
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _join(self, argument: list[Any]) -> str:
        separator, items = argument
        return str(separator).join(str(item) for item in self.resolve(items))

    def _if(self, argument: list[Any]) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    def _equals(self, argument: list[Any]) -> bool:
        left, right = self.resolve(argument)
        return bool(left == right)

    def _not(self, argument: list[Any]) -> bool:
        return not self.resolve(argument[0])

    def _and(self, argument: list[Any]) -> bool:
        return all(self.resolve(argument))

    def _or(self, argument: list[Any]) -> bool:
        return any(self.resolve(argument))

    def _condition_ref(self, name: str) -> bool:
        return self.condition(name)

    _FUNCTIONS: ClassVar[dict[str, Callable[[Resolver, Any], Any]]] = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": _sub,
        "Fn::Join": _join,
        "Fn::If": _if,
        "Fn::Equals": _equals,
        "Fn::Not": _not,
        "Fn::And": _and,
        "Fn::Or": _or,
        "Condition": _condition_ref,
    }
