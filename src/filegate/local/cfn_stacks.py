"""The CloudFormation stacks as the change-set middleware (``cfn_change_sets``) sees them.

moto holds the stacks; :class:`Stacks` answers what moto cannot, or not as CloudFormation
would, around them: a stack moto does not hold (a CREATE change set's ``REVIEW_IN_PROGRESS``
stack, a create rolled back to ``ROLLBACK_COMPLETE``: a :class:`Shadow`) for DescribeStacks,
ListStacks, DescribeStackEvents, DescribeStackResources, ListStackResources, GetTemplate and
DeleteStack; the events a change set adds to moto's (each changed resource's, before the
stack's own ``*_COMPLETE``); GetTemplate with the text the stack was given. CreateStack sends
moto the template as JSON and every parameter's value (defaults included), as the change sets
do, so that what moto compares on an update is what the change set compared (:class:`Deployed`:
what a stack was last given, and each resource's revision, ``filegate:revision`` in its
``Metadata``). Stacks are looked up through ListStacks: describing a half-made stack would have
moto create the rest of its resources, to resolve its outputs. Imports nothing of moto's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote, urlparse
from xml.etree import ElementTree as ET

import yaml

from filegate import template as cfn
from filegate.errors import StackError
from filegate.local.cfn_wire import (
    Answer,
    MotoApp,
    Refused,
    Request,
    edit_list,
    listed,
    member,
    ok,
    parse,
    text,
)

REVISION = "filegate:revision"
STACK_TYPE = "AWS::CloudFormation::Stack"

Event = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Deployed:
    """What a stack was last given: its template text, every parameter's value, its
    resources' revisions (the ``Metadata`` moto was sent)."""

    text: str
    parameters: dict[str, str]
    revisions: dict[str, str] = field(default_factory=dict)


@dataclass
class Shadow:
    """A stack moto does not hold: under review (a CREATE change set) or rolled back."""

    id: str
    name: str
    status: str
    created: str
    parameters: dict[str, str]
    text: str
    events: list[Event] = field(default_factory=list)
    deleted: str | None = None

    @property
    def active(self) -> bool:
        return self.status != "DELETE_COMPLETE"

    def event(
        self, logical_id: str, kind: str, status: str, physical: str, reason: str | None = None
    ) -> None:
        self.events.append(
            {
                "StackId": self.id,
                "EventId": str(uuid.uuid4()),
                "StackName": self.name,
                "LogicalResourceId": logical_id,
                "PhysicalResourceId": physical,
                "ResourceType": kind,
                "Timestamp": now(),
                "ResourceStatus": status,
                "ResourceStatusReason": reason,
            }
        )

    def stack_event(self, status: str, reason: str | None = None) -> None:
        self.status = status
        self.event(self.name, STACK_TYPE, status, self.id, reason)

    def described(self) -> dict[str, Any]:
        return {
            "StackId": self.id,
            "StackName": self.name,
            "Parameters": parameter_list(self.parameters),
            "CreationTime": self.created,
            "DeletionTime": self.deleted,
            "StackStatus": self.status,
            "DisableRollback": False,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "StackId": self.id,
            "StackName": self.name,
            "CreationTime": self.created,
            "DeletionTime": self.deleted,
            "StackStatus": self.status,
        }


@dataclass
class Region:
    """One account's stacks in one region, as far as this module holds them."""

    account: str
    region: str
    shadows: dict[str, Shadow] = field(default_factory=dict)
    deployed: dict[str, Deployed] = field(default_factory=dict)
    # stack id -> [(the moto event they come just before, events)]
    extra_events: dict[str, list[tuple[str, list[Event]]]] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)  # review stack id -> moto's

    def shadow(self, name: str) -> Shadow | None:
        """The stack held here under that id, or active under that name."""
        if name in self.shadows:
            return self.shadows[name]
        return next((s for s in self.shadows.values() if s.name == name and s.active), None)

    @property
    def prefix(self) -> str:
        """What the ARNs of this account's CloudFormation in this region begin with."""
        return f"arn:aws:cloudformation:{self.region}:{self.account}:"

    def arn(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}/{name}/{uuid.uuid4()}"


class Stacks:
    """The stack calls answered around moto's app (see the module docstring)."""

    HANDLED: ClassVar[dict[str, str]] = {
        "CreateStack": "_create_stack",
        "UpdateStack": "_update_stack",
        "DescribeStacks": "_describe_stacks",
        "ListStacks": "_list_stacks",
        "DescribeStackEvents": "_describe_stack_events",
        "DescribeStackResources": "_describe_stack_resources",
        "ListStackResources": "_list_stack_resources",
        "GetTemplate": "_get_template",
    }

    def __init__(self, moto: MotoApp) -> None:
        self._moto = moto
        self._regions: dict[tuple[str, str], Region] = {}
        self._accounts: dict[str, str] = {}

    def region(self, request: Request, access_key: str) -> Region:
        """The caller's account in the region the call was signed for."""
        account = self._accounts.get(access_key) or self._moto.account(request.environ)
        if account is None:
            raise Refused("cannot tell the caller's account: STS GetCallerIdentity failed")
        self._accounts[access_key] = account
        key = (account, request.region)
        return self._regions.setdefault(key, Region(account, request.region))

    def answer(self, action: str, request: Request, state: Region) -> Answer:
        handler: Callable[[Request, Region], Answer] = getattr(self, self.HANDLED[action])
        return handler(request, state)

    def delete(self, request: Request, state: Region) -> tuple[Answer, str | None]:
        """DeleteStack; and the id of the stack it deleted."""
        name = request.get("StackName") or ""
        shadow = state.shadow(name)
        if shadow is None:
            return self._moto.passed(request), self.moto_id(request, name)
        if shadow.active:
            shadow.stack_event("DELETE_IN_PROGRESS", "User Initiated")
            shadow.deleted = now()
            shadow.stack_event("DELETE_COMPLETE")
        return ok("DeleteStack", {}), shadow.id

    def _create_stack(self, request: Request, state: Region) -> Answer:
        """moto's CreateStack, sent the template as the change sets send it (JSON) and every
        parameter's value, so that a change set later compares with what moto holds."""
        name = request.get("StackName") or ""
        if state.shadow(name) is not None:
            raise Refused(f"Stack [{name}] already exists", code="AlreadyExistsException")
        text_ = self.template_text(request, None)
        document = load(text_)
        parameters = with_defaults(document, values(request.members("Parameters"), {}))
        form = {
            k: v[0]
            for k, v in request.form.items()
            if k not in ("TemplateBody", "TemplateURL") and not k.startswith("Parameters.")
        }
        form["TemplateBody"] = json.dumps(document, default=str)
        status, body = self._moto.form(request, {**form, **parameter_form(parameters)})
        if status == 200:
            state.deployed[text(parse(body), "StackId")] = Deployed(text_, parameters)
        return status, body

    def _update_stack(self, request: Request, state: Region) -> Answer:
        """A direct UpdateStack: moto's, after which moto's template is the one compared."""
        self.updatable(request, state, request.get("StackName") or "")
        state.deployed.pop(self.moto_id(request, request.get("StackName") or "") or "", None)
        return self._moto.passed(request)

    def _describe_stacks(self, request: Request, state: Region) -> Answer:
        name = request.get("StackName")
        shadow = state.shadow(name) if name else None
        if shadow is not None:
            return ok("DescribeStacks", {"Stacks": [shadow.described()]})
        status, body = self._moto.passed(request)
        if name or status != 200:
            return status, body
        active = [member(s.described()) for s in state.shadows.values() if s.active]
        return status, edit_list(body, "Stacks", lambda members: members + active)

    def _list_stacks(self, request: Request, state: Region) -> Answer:
        status, body = self._moto.passed(request)
        if status != 200:
            return status, body
        wanted = set(request.strings("StackStatusFilter"))
        shown = [s.summary() for s in state.shadows.values() if not wanted or s.status in wanted]

        def edit(members: list[ET.Element]) -> list[ET.Element]:
            kept = [m for m in members if text(m, "StackId") not in state.shadows]
            return kept + [member(summary) for summary in shown]

        return status, edit_list(body, "StackSummaries", edit)

    def _describe_stack_events(self, request: Request, state: Region) -> Answer:
        shadow = state.shadow(request.get("StackName") or "")
        if shadow is not None:
            return ok("DescribeStackEvents", {"StackEvents": shadow.events[::-1]})
        status, body = self._moto.passed(request)
        if status != 200:
            return status, body

        def edit(members: list[ET.Element]) -> list[ET.Element]:
            """moto's events (newest first), each preceded by the ones recorded before it."""
            before = (
                dict(state.extra_events.get(text(members[0], "StackId"), [])) if members else {}
            )
            chronological: list[ET.Element] = []
            for event in reversed(members):
                chronological += [member(e) for e in before.get(text(event, "EventId"), [])]
                chronological.append(event)
            return chronological[::-1]

        return status, edit_list(body, "StackEvents", edit)

    def _describe_stack_resources(self, request: Request, state: Region) -> Answer:
        if state.shadow(request.get("StackName") or "") is not None:
            return ok("DescribeStackResources", {"StackResources": []})  # it holds none
        return self._moto.passed(request)

    def _list_stack_resources(self, request: Request, state: Region) -> Answer:
        if state.shadow(request.get("StackName") or "") is not None:
            return ok("ListStackResources", {"StackResourceSummaries": []})
        return self._moto.passed(request)

    def _get_template(self, request: Request, state: Region) -> Answer:
        name = request.get("StackName") or ""
        shadow = state.shadow(name)
        deployed = state.deployed.get(self.moto_id(request, name) or "") if not shadow else None
        text_ = shadow.text if shadow else deployed.text if deployed else None
        if text_ is None:
            return self._moto.passed(request)
        return ok("GetTemplate", {"TemplateBody": text_})

    # ---------------------------------------------------------------- lookups

    def current(self, request: Request, state: Region, name: str) -> str | None:
        """The id of the stack that name (or id) is now, wherever it is held."""
        shadow = state.shadow(name)
        if shadow is not None:
            return shadow.id if shadow.active or name == shadow.id else None
        return self.moto_id(request, name)

    def updatable(self, request: Request, state: Region, name: str) -> str:
        shadow = state.shadow(name)
        if shadow is not None and shadow.active:
            raise Refused(f"Stack:{shadow.id} is in {shadow.status} state and can not be updated.")
        stack_id = self.moto_id(request, name)
        if stack_id is None:
            raise Refused(f"Stack [{name}] does not exist")
        return stack_id

    def moto_id(self, request: Request, name: str) -> str | None:
        """The id of moto's live stack of that name (ListStacks: describing a half-made stack
        would have moto create its resources, to resolve its outputs)."""
        if name.startswith("arn:"):
            return name
        for summary in listed(self._moto.call(request, "ListStacks", {}), "StackSummaries"):
            if summary["StackName"] == name and summary["StackStatus"] != "DELETE_COMPLETE":
                return summary["StackId"]
        return None

    def half_made(self, request: Request, name: str) -> str | None:
        """The stack moto's failed CreateStack left (still creating, under that name)."""
        for summary in listed(self._moto.call(request, "ListStacks", {}), "StackSummaries"):
            if summary["StackName"] == name and summary["StackStatus"] == "CREATE_IN_PROGRESS":
                return summary["StackId"]
        return None

    def deployed(self, request: Request, state: Region, stack_id: str) -> Deployed:
        """What the stack was last given: as sent through here, else as moto tells it."""
        if stack_id in state.deployed:
            return state.deployed[stack_id]
        status, body = self._moto.call(request, "GetTemplate", {"StackName": stack_id})
        document = load(text(parse(body), "TemplateBody") if status == 200 else "")
        described = self._moto.call(request, "DescribeStacks", {"StackName": stack_id})
        parameters = {
            p["ParameterKey"]: p.get("ParameterValue", "") for p in listed(described, "Parameters")
        }
        revisions = {
            name: str(resource["Metadata"][REVISION])
            for name, resource in document["Resources"].items()
            if REVISION in (resource.get("Metadata") or {})
        }
        unmarked = json.dumps(marked(document, {}), default=str)
        return Deployed(unmarked, parameters, revisions)

    def moto_events(self, request: Request, stack_id: str) -> list[Event]:
        """moto's events of the stack, oldest first."""
        answer = self._moto.call(request, "DescribeStackEvents", {"StackName": stack_id})
        return list(reversed(listed(answer, "StackEvents")))

    def template_text(self, request: Request, deployed: Deployed | None) -> str:
        body, url = request.get("TemplateBody"), request.get("TemplateURL")
        if body:
            return body
        if url:
            return self._read_template_url(request, url)
        if deployed is not None and request.get("UsePreviousTemplate") == "true":
            return deployed.text
        raise Refused("Either Template URL or Template Body must be specified.")

    def _read_template_url(self, request: Request, url: str) -> str:
        """The object a TemplateURL names, read from the emulator's S3 (path-style or
        virtual-hosted: S3 user guide, "Virtual hosting of general purpose buckets")."""
        parts = urlparse(url)
        host = parts.netloc.split(":")[0]
        path = unquote(parts.path.lstrip("/"))
        if host.startswith(("s3.", "s3-")) or host in ("localhost", "127.0.0.1"):
            bucket, _, key = path.partition("/")
        else:
            bucket, key = host.split(".s3.")[0] if ".s3." in host else host.split(".")[0], path
        found = self._moto.s3_object(request.environ, bucket, key) if key else None
        if found is None:
            raise Refused("TemplateURL must reference a valid S3 object to which you have access.")
        return found.decode("utf-8")


# -------------------------------------------------------------------- templates


def load(text_: str) -> dict[str, Any]:
    try:
        return cfn.load(text_)
    except (StackError, yaml.YAMLError) as exc:
        raise Refused(f"Template format error: {exc}") from exc


def values(given: list[dict[str, str]], previous: dict[str, str]) -> dict[str, str]:
    """The values a call gives its parameters (``UsePreviousValue``: the stack's)."""
    found: dict[str, str] = {}
    for parameter in given:
        key = parameter.get("ParameterKey", "")
        if parameter.get("UsePreviousValue") != "true":
            found[key] = parameter.get("ParameterValue", "")
        elif key in previous:
            found[key] = previous[key]
        else:
            raise Refused(f"Invalid input for parameter key {key}: it has no previous value")
    return found


def with_defaults(document: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """Every declared parameter's value: the given one, else its default."""
    declared = document.get("Parameters") or {}
    complete = {n: str(s["Default"]) for n, s in declared.items() if "Default" in s}
    complete.update({k: v for k, v in given.items() if k in declared})
    return complete


def marked(document: dict[str, Any], revisions: dict[str, str]) -> dict[str, Any]:
    """The document as moto is sent it: each revised resource's Metadata names its revision
    (a revision the document itself carries is dropped unless ``revisions`` name it)."""
    resources = {}
    for name, resource in document["Resources"].items():
        metadata = {k: v for k, v in (resource.get("Metadata") or {}).items() if k != REVISION}
        if name in revisions:
            metadata[REVISION] = revisions[name]
        kept = {k: v for k, v in resource.items() if k != "Metadata"}
        resources[name] = {**kept, "Metadata": metadata} if metadata else kept
    return {**document, "Resources": resources}


def parameter_list(parameters: dict[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]


def parameter_form(parameters: dict[str, str]) -> dict[str, str]:
    form = {}
    for index, (key, value) in enumerate(parameters.items(), start=1):
        form[f"Parameters.member.{index}.ParameterKey"] = key
        form[f"Parameters.member.{index}.ParameterValue"] = value
    return form
