"""What a stack update changes, as CloudFormation decides it, on plain template dicts.

moto's change sets list only the resources whose template text changed; AWS also lists those
that reference a changed parameter (through ``Ref`` or ``Fn::Sub``) and those that reference a
resource being replaced (here: a Lambda version, replaced on any change). ``cfn_change_sets``
lists this diff in a change set and has moto's UpdateStack modify exactly these resources.
"""

from __future__ import annotations

import re
from typing import Any

VERSION_TYPE = "AWS::Lambda::Version"
_SUB_VARIABLE = re.compile(r"\$\{([^}!.]+)(?:\.[^}]+)?\}")


def references(value: Any) -> set[str]:
    """Names a template fragment refers to: Ref, Fn::GetAtt and Fn::Sub variables."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found.add(str(target))
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= set(_SUB_VARIABLE.findall(str(text)))
                found |= references(inner[1:] if isinstance(inner, list) else [])
            else:
                found |= references(inner)
    return found


def resource_diff(
    old: dict[str, Any],
    new: dict[str, Any],
    changed_parameters: set[str],
) -> dict[str, list[str]]:
    """What an update adds, modifies and removes, as CloudFormation decides it.

    A resource is modified when its template text changed, when it refers to a changed
    parameter, or when it refers to a modified Lambda version (a version is replaced on any
    change, so what points at it changes too). The order is the template's.
    """
    modified: list[str] = []
    replaced: set[str] = set()
    for name, resource in new.items():
        if name not in old:
            continue
        mentions = references(resource)
        if resource != old[name] or mentions & changed_parameters or mentions & replaced:
            modified.append(name)
            if resource.get("Type") == VERSION_TYPE:
                replaced.add(name)
    return {
        "Add": [name for name in new if name not in old],
        "Modify": modified,
        "Remove": [name for name in old if name not in new],
    }


def changed_parameters(before: dict[str, Any], given: dict[str, Any]) -> set[str]:
    """The parameters an update gives another value (compared as text: a stack holds Number
    parameters as numbers)."""
    return {
        name
        for name, value in given.items()
        if name not in before or str(before[name]) != str(value)
    }


def replacement(resource_type: str) -> str:
    """A modified resource's Replacement in a change set: only versions are replaced here."""
    return "True" if resource_type == VERSION_TYPE else "False"
