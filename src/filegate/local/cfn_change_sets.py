"""CloudFormation change sets served as WSGI middleware around moto's app, as AWS serves them.

:class:`ChangeSets` answers CreateChangeSet, DescribeChangeSet, ListChangeSets,
ExecuteChangeSet and DeleteChangeSet itself and executes a change set through moto's own
CreateStack / UpdateStack (``emulator.application`` composes it). What AWS shows and moto's
change sets did not:
- a change set lists what CloudFormation would change: resources whose template changed, those
  that refer to a changed parameter (``Ref`` or ``Fn::Sub``) and those that refer to a replaced
  resource (a Lambda version), computed on plain template dicts (``change_sets``) against what
  the stack holds; a change set with nothing to change is FAILED with AWS's reason;
- a CREATE change set makes a ``REVIEW_IN_PROGRESS`` stack, which is listed and described,
  refuses an update and can be deleted (API reference, CreateChangeSet, ``ChangeSetType``; user
  guide, "Stack status codes"), and a rolled-back stack refuses an update too;
- executing it gives the stack the template's outputs and parameters (moto's CreateStack and
  UpdateStack do), and each resource it creates, modifies or removes gets its own stack event
  before the stack's ``*_COMPLETE``;
- a resource that fails during the create does not fail the call: the create rolls back, as
  CloudFormation does (user guide, "Stack status codes": ROLLBACK_IN_PROGRESS,
  ROLLBACK_COMPLETE): the resource's CREATE_FAILED with its reason, ROLLBACK_IN_PROGRESS, what
  was created deleted (DELETE_COMPLETE) except a ``DeletionPolicy: Retain`` resource
  (DELETE_SKIPPED; ``RetainExceptOnCreate`` ones are deleted: template reference,
  "DeletionPolicy attribute"), and the stack stays ``ROLLBACK_COMPLETE``, where only a delete
  is possible. moto's DeleteStack does the deleting.

moto decides which resources an UpdateStack modifies by comparing template text (and ``Ref``s
to changed parameters), so the template it is sent carries, in each resource's ``Metadata``,
a revision (``filegate:revision``) that changes exactly when the change set modifies the
resource; GetTemplate answers the text the stack was given. Stacks created with CreateStack go
through here too (the template and every parameter, defaults included, are what the next
change set is compared with). A stack this middleware holds and moto does not (under review,
or rolled back) is answered here for DescribeStacks, ListStacks, DescribeStackEvents,
DescribeStackResources, ListStackResources, GetTemplate and DeleteStack.

Two seams into moto stay (``cfn_models``), because no public API shows or decides it: which
resource failed a create and what the create had made (``cfn_models.failed_create``), and a
stack delete that keeps ``RetainExceptOnCreate`` resources (moto knows only ``Retain``).
Change sets live in this process's memory, as moto's stacks do. Not modelled: the rollback of a
failed update (ExecuteChangeSet answers moto's error), and the StackId of a CREATE change
set's stack: the created stack has the id moto gives it (a call naming the review stack's id
reaches it).
"""

from __future__ import annotations

import io
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlencode, urlparse
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

import yaml

from filegate import template as cfn
from filegate.errors import StackError
from filegate.local import cfn_models
from filegate.local.cfn_template_size import is_cloudformation_form
from filegate.local.change_sets import changed_parameters, replacement, resource_diff

NS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"
REVISION = "filegate:revision"
NO_CHANGES = (
    "The submitted information didn't contain changes. Submit different information to"
    " create a change set."
)
STACK_TYPE = "AWS::CloudFormation::Stack"
_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/cloudformation/aws4_request")
_FORM = "application/x-www-form-urlencoded"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Event = dict[str, Any]

ET.register_namespace("", NS)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Refused(Exception):
    """A request CloudFormation refuses: answered 400 with ``code`` and the message."""

    def __init__(self, message: str, code: str = "ValidationError", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass
class ChangeSet:
    id: str
    name: str
    stack_id: str
    stack_name: str
    kind: str  # CREATE or UPDATE
    text: str
    document: dict[str, Any]
    parameters: dict[str, str]  # every parameter the stack will have
    capabilities: list[str]
    description: str | None
    changes: list[dict[str, str]]
    status: str = "CREATE_COMPLETE"
    reason: str | None = None
    execution: str = "AVAILABLE"
    created: str = field(default_factory=_now)


@dataclass
class Deployed:
    """What a stack was last given: its template text, its parameters, its resources'
    revisions (the ``Metadata`` moto was sent)."""

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
    events: list[Event]
    deleted: str | None = None

    @property
    def active(self) -> bool:
        return self.status != "DELETE_COMPLETE"


@dataclass
class _Region:
    """One account's CloudFormation in one region, as far as this middleware holds it."""

    account: str
    change_sets: dict[str, ChangeSet] = field(default_factory=dict)
    shadows: dict[str, Shadow] = field(default_factory=dict)
    deployed: dict[str, Deployed] = field(default_factory=dict)
    extra_events: dict[str, list[tuple[str, list[Event]]]] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)  # review stack id -> moto's


class _Request:
    def __init__(self, environ: dict[str, Any], body: bytes, region: str) -> None:
        self.environ = environ
        self.body = body
        self.form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        self.region = region

    def get(self, name: str) -> str | None:
        return self.form.get(name, [None])[0]

    def name_stack(self, stack_id: str) -> None:
        """The same request naming the stack by another id."""
        self.form["StackName"] = [stack_id]
        self.body = urlencode(self.form, doseq=True).encode()

    def members(self, prefix: str) -> list[dict[str, str]]:
        found: dict[int, dict[str, str]] = {}
        for key, values in self.form.items():
            match = re.fullmatch(rf"{prefix}\.member\.(\d+)\.(\w+)", key)
            if match:
                found.setdefault(int(match[1]), {})[match[2]] = values[0]
        return [found[index] for index in sorted(found)]

    def strings(self, prefix: str) -> list[str]:
        found = {}
        for key, values in self.form.items():
            match = re.fullmatch(rf"{prefix}\.member\.(\d+)", key)
            if match:
                found[int(match[1])] = values[0]
        return [found[index] for index in sorted(found)]


class ChangeSets:
    """CloudFormation's change sets (and the stacks moto does not hold) around ``app``."""

    _HANDLED: ClassVar[dict[str, str]] = {
        "CreateChangeSet": "_create_change_set",
        "DescribeChangeSet": "_describe_change_set",
        "ListChangeSets": "_list_change_sets",
        "ExecuteChangeSet": "_execute_change_set",
        "DeleteChangeSet": "_delete_change_set",
        "CreateStack": "_create_stack",
        "UpdateStack": "_update_stack",
        "DeleteStack": "_delete_stack",
        "DescribeStacks": "_describe_stacks",
        "ListStacks": "_list_stacks",
        "DescribeStackEvents": "_describe_stack_events",
        "DescribeStackResources": "_describe_stack_resources",
        "ListStackResources": "_list_stack_resources",
        "GetTemplate": "_get_template",
    }

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._regions: dict[tuple[str, str], _Region] = {}
        self._accounts: dict[str, str] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not is_cloudformation_form(environ):
            return self._app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        request = _Request(environ, body, "")
        handler = self._HANDLED.get(request.get("Action") or "")
        credential = _CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION", "")))
        if handler is None or credential is None:
            return self._app(environ, start_response)
        request.region = credential[2]
        with self._lock:
            state = self._region(environ, credential[1], credential[2])
            renamed = state.renamed.get(request.get("StackName") or "")
            if renamed:
                request.name_stack(renamed)
            try:
                answer: tuple[int, bytes] = getattr(self, handler)(request, state)
            except Refused as refused:
                answer = refused.status, _error(str(refused), refused.code)
        status, payload = answer
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [("Content-Type", "text/xml"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    # ---------------------------------------------------------------- change sets

    def _create_change_set(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        name = request.get("ChangeSetName") or ""
        stack_name = request.get("StackName") or ""
        kind = request.get("ChangeSetType") or "CREATE"
        if not name[:1].isalpha():
            raise Refused(f"Invalid change set name: {name}")
        given = request.members("Parameters")
        if kind == "CREATE":
            if self._current(request, state, stack_name) is not None:
                raise Refused(
                    f"Stack [{stack_name}] already exists and cannot be created again with"
                    f" the changeSet [{name}]."
                )
            text = self._template_text(request, None)
            document = _load(text)
            stack_id = _arn(request.region, state.account, "stack", stack_name)
            parameters = _with_defaults(document, _values(given, {}))
            changes = [
                {"Action": "Add", "LogicalResourceId": n, "ResourceType": r.get("Type", "")}
                for n, r in document["Resources"].items()
            ]
            created = _now()
            state.shadows[stack_id] = Shadow(
                stack_id, stack_name, "REVIEW_IN_PROGRESS", created, parameters, text, []
            )
            state.shadows[stack_id].events.append(
                _stack_event(state.shadows[stack_id], "REVIEW_IN_PROGRESS", "User Initiated")
            )
            old: dict[str, Any] | None = None
            changed: set[str] = set()
        else:
            stack_id = self._updatable(request, state, stack_name)
            deployed = self._deployed(request, state, stack_id)
            text = self._template_text(request, deployed)
            document = _load(text)
            parameters = _with_defaults(document, _values(given, deployed.parameters))
            old = _load(deployed.text)
            changed = changed_parameters(deployed.parameters, parameters)
            changes = _changes(old, document, changed)
        change_set = ChangeSet(
            id=_arn(request.region, state.account, "changeSet", name),
            name=name,
            stack_id=stack_id,
            stack_name=stack_name,
            kind=kind,
            text=text,
            document=document,
            parameters=parameters,
            capabilities=request.strings("Capabilities"),
            description=request.get("Description"),
            changes=changes,
        )
        if old is not None and not changes and not changed and old == document:
            change_set.status, change_set.execution = "FAILED", "UNAVAILABLE"
            change_set.reason = NO_CHANGES
        state.change_sets[change_set.id] = change_set
        return _ok("CreateChangeSet", {"Id": change_set.id, "StackId": stack_id})

    def _describe_change_set(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        change_set = self._change_set(request, state)
        described = {
            **_summary(change_set),
            "Parameters": _parameter_list(change_set.parameters),
            "Capabilities": change_set.capabilities,
            "Changes": [{"Type": "Resource", "ResourceChange": c} for c in change_set.changes],
        }
        return _ok("DescribeChangeSet", described)

    def _list_change_sets(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        found = self._current(request, state, request.get("StackName") or "")
        if found is None:
            raise Refused(f"Stack [{request.get('StackName')}] does not exist")
        listed = [_summary(c) for c in state.change_sets.values() if c.stack_id == found]
        return _ok("ListChangeSets", {"Summaries": listed})

    def _delete_change_set(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        state.change_sets.pop(self._change_set(request, state).id)
        return _ok("DeleteChangeSet", {})

    def _execute_change_set(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        change_set = self._change_set(request, state)
        if change_set.status != "CREATE_COMPLETE" or change_set.execution != "AVAILABLE":
            raise Refused(
                f"ChangeSet [{change_set.id}] cannot be executed in its current status of"
                f" [{change_set.status}]",
                code="InvalidChangeSetStatus",
            )
        if change_set.kind == "CREATE":
            failure = self._execute_create(request, state, change_set)
        else:
            failure = self._execute_update(request, state, change_set)
        if failure is not None:
            return failure  # moto's refusal, as it gave it
        for other in [c for c in state.change_sets.values() if c.stack_id == change_set.stack_id]:
            # "CloudFormation retains all change sets until you update the stack" (user guide,
            # "Delete a change set for a CloudFormation stack")
            if other is not change_set:
                state.change_sets.pop(other.id)
        return _ok("ExecuteChangeSet", {})

    def _execute_create(
        self, request: _Request, state: _Region, change_set: ChangeSet
    ) -> tuple[int, bytes] | None:
        review = state.shadows.pop(change_set.stack_id)
        status, body = self._call(
            request,
            "CreateStack",
            {
                "StackName": change_set.stack_name,
                "TemplateBody": json.dumps(change_set.document, default=str),
                **_parameter_form(change_set.parameters),
            },
        )
        if status != 200:
            stack_id = self._half_made(request, change_set.stack_name)
            if stack_id is None:  # refused before moto made a stack: the review stack stays
                state.shadows[review.id] = review
                return status, body
            change_set.stack_id = state.renamed[review.id] = stack_id
            self._roll_back(request, state, change_set, review, _message(body))
            return None
        stack_id = _text(_parse(body), "StackId")
        change_set.stack_id = state.renamed[review.id] = stack_id
        change_set.execution = "EXECUTE_COMPLETE"
        state.deployed[stack_id] = Deployed(change_set.text, change_set.parameters)
        events = self._moto_events(request, stack_id)
        if events:
            physical = self._physical_ids(request, stack_id)
            last = events[-1]
            state.extra_events[stack_id] = [
                (events[0]["EventId"], [{**e, "StackId": stack_id} for e in review.events]),
                (last["EventId"], _resource_events(change_set, physical, last, "CREATE")),
            ]
        return None

    def _execute_update(
        self, request: _Request, state: _Region, change_set: ChangeSet
    ) -> tuple[int, bytes] | None:
        deployed = self._deployed(request, state, change_set.stack_id)
        resources = change_set.document["Resources"]
        revisions = {n: r for n, r in deployed.revisions.items() if n in resources}
        for change in change_set.changes:
            if change["Action"] == "Modify":
                revisions[change["LogicalResourceId"]] = change_set.id.rsplit("/", 1)[-1]
        status, body = self._call(
            request,
            "UpdateStack",
            {
                "StackName": change_set.stack_id,
                "TemplateBody": json.dumps(_marked(change_set.document, revisions), default=str),
                **_parameter_form(change_set.parameters),
            },
        )
        if status != 200:
            change_set.execution = "EXECUTE_FAILED"
            return status, body
        change_set.execution = "EXECUTE_COMPLETE"
        state.deployed[change_set.stack_id] = Deployed(
            change_set.text, change_set.parameters, revisions
        )
        events = self._moto_events(request, change_set.stack_id)
        if events:
            physical = self._physical_ids(request, change_set.stack_id)
            done = _resource_events(change_set, physical, events[-1], "UPDATE")
            state.extra_events.setdefault(change_set.stack_id, []).append(
                (events[-1]["EventId"], done)
            )
        return None

    def _roll_back(
        self, request: _Request, state: _Region, change_set: ChangeSet, review: Shadow, error: str
    ) -> None:
        """What CloudFormation does when a resource of a stack's first create fails."""
        stack_id = change_set.stack_id
        failed, created = cfn_models.failed_create(state.account, request.region, stack_id)
        logical_id, kind, reason = failed or (change_set.stack_name, STACK_TYPE, error)
        shadow = Shadow(
            stack_id,
            change_set.stack_name,
            "ROLLBACK_IN_PROGRESS",
            review.created,
            change_set.parameters,
            change_set.text,
            [{**e, "StackId": stack_id} for e in review.events],
        )
        shadow.events += self._moto_events(request, stack_id)

        def record(name: str, kind: str, status: str, physical: str, why: str | None) -> None:
            shadow.events.append(_event(shadow, name, kind, status, physical, why))

        for name, type_, physical in created:
            record(name, type_, "CREATE_COMPLETE", physical, None)
        record(logical_id, kind, "CREATE_FAILED", "", reason)
        shadow.events.append(
            _stack_event(
                shadow,
                "ROLLBACK_IN_PROGRESS",
                f"The following resource(s) failed to create: [{logical_id}]."
                " Rollback requested by user.",
            )
        )
        resources = change_set.document["Resources"]
        kept = {n for n, _, _ in created if resources[n].get("DeletionPolicy") == "Retain"}
        status, body = self._call(request, "DeleteStack", {"StackName": stack_id})
        for name, type_, physical in created:
            if name in kept:
                record(name, type_, "DELETE_SKIPPED", physical, None)
        if status == 200:
            for name, type_, physical in reversed(created):
                if name not in kept:
                    record(name, type_, "DELETE_COMPLETE", physical, None)
            shadow.status = "ROLLBACK_COMPLETE"
            shadow.events.append(_stack_event(shadow, shadow.status))
        else:  # what failed to delete is still there, as on AWS
            shadow.status = "ROLLBACK_FAILED"
            shadow.events.append(_stack_event(shadow, shadow.status, _message(body)))
        state.shadows[stack_id] = shadow
        change_set.execution = "EXECUTE_FAILED"

    # ---------------------------------------------------------------- stacks

    def _create_stack(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        name = request.get("StackName") or ""
        if self._shadow(state, name) is not None:
            raise Refused(f"Stack [{name}] already exists", code="AlreadyExistsException")
        text = self._template_text(request, None)
        document = _load(text)
        parameters = _with_defaults(document, _values(request.members("Parameters"), {}))
        form = {
            k: v[0]
            for k, v in request.form.items()
            if k not in ("TemplateBody", "TemplateURL") and not k.startswith("Parameters.")
        }
        form.update(_parameter_form(parameters))
        form["TemplateBody"] = json.dumps(document, default=str)
        status, body = self._raw_call(request, form)
        if status == 200:
            state.deployed[_text(_parse(body), "StackId")] = Deployed(text, parameters)
        return status, body

    def _update_stack(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        """A direct UpdateStack: moto's, after which moto's template is the one compared."""
        name = request.get("StackName") or ""
        shadow = self._shadow(state, name)
        if shadow is not None:
            raise Refused(f"Stack:{shadow.id} is in {shadow.status} state and can not be updated.")
        state.deployed.pop(self._moto_id(request, name) or "", None)
        return self._pass(request)

    def _delete_stack(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        name = request.get("StackName") or ""
        shadow = self._shadow(state, name)
        if shadow is None:
            stack_id = self._moto_id(request, name)
            answer = self._pass(request)
        else:
            stack_id = shadow.id
            if shadow.active:
                shadow.events.append(_stack_event(shadow, "DELETE_IN_PROGRESS", "User Initiated"))
                shadow.status, shadow.deleted = "DELETE_COMPLETE", _now()
                shadow.events.append(_stack_event(shadow, "DELETE_COMPLETE"))
            answer = _ok("DeleteStack", {})
        for change_set in [c for c in state.change_sets.values() if c.stack_id == stack_id]:
            state.change_sets.pop(change_set.id)
        return answer

    def _describe_stacks(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        name = request.get("StackName")
        shadow = self._shadow(state, name) if name else None
        if shadow is not None:
            return _ok("DescribeStacks", {"Stacks": [_stack(shadow)]})
        status, body = self._pass(request)
        if name or status != 200:
            return status, body
        active = [_stack(s) for s in state.shadows.values() if s.active]
        return status, _edit_list(body, "Stacks", set(), active)

    def _list_stacks(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        status, body = self._pass(request)
        if status != 200:
            return status, body
        wanted = set(request.strings("StackStatusFilter"))
        shown = [
            {
                "StackId": s.id,
                "StackName": s.name,
                "CreationTime": s.created,
                "DeletionTime": s.deleted,
                "StackStatus": s.status,
            }
            for s in state.shadows.values()
            if not wanted or s.status in wanted
        ]
        return status, _edit_list(body, "StackSummaries", set(state.shadows), shown)

    def _describe_stack_events(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        shadow = self._shadow(state, request.get("StackName") or "")
        if shadow is not None:
            return _ok("DescribeStackEvents", {"StackEvents": shadow.events[::-1]})
        status, body = self._pass(request)
        if status != 200:
            return status, body
        root = _parse(body)
        container = _find(root, "StackEvents")
        members = list(container) if container is not None else []
        extras = state.extra_events.get(_text(members[0], "StackId")) if members else None
        if container is None or not extras:
            return status, body
        before = dict(extras)
        chronological: list[ET.Element] = []
        for member in reversed(members):
            chronological += [_element(e) for e in before.get(_text(member, "EventId"), [])]
            chronological.append(member)
        container[:] = chronological[::-1]
        return status, bytes(ET.tostring(root, encoding="utf-8"))

    def _describe_stack_resources(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        if self._shadow(state, request.get("StackName") or "") is not None:
            return _ok("DescribeStackResources", {"StackResources": []})  # it holds none
        return self._pass(request)

    def _list_stack_resources(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        if self._shadow(state, request.get("StackName") or "") is not None:
            return _ok("ListStackResources", {"StackResourceSummaries": []})
        return self._pass(request)

    def _get_template(self, request: _Request, state: _Region) -> tuple[int, bytes]:
        name = request.get("StackName") or ""
        shadow = self._shadow(state, name)
        deployed = state.deployed.get(self._moto_id(request, name) or "") if not shadow else None
        text = shadow.text if shadow else deployed.text if deployed else None
        if text is None:
            return self._pass(request)
        return _ok("GetTemplate", {"TemplateBody": text})

    # ---------------------------------------------------------------- lookups

    def _region(self, environ: dict[str, Any], access_key: str, region: str) -> _Region:
        account = self._accounts.get(access_key)
        if account is None:
            status, body = self._sts_identity(environ)
            if status != 200:
                raise Refused("cannot tell the caller's account (STS GetCallerIdentity failed)")
            account = self._accounts[access_key] = _text(_parse(body), "Account")
        return self._regions.setdefault((account, region), _Region(account))

    def _change_set(self, request: _Request, state: _Region) -> ChangeSet:
        wanted = request.get("ChangeSetName") or ""
        stack = request.get("StackName")
        for change_set in state.change_sets.values():
            if change_set.id == wanted or (
                change_set.name == wanted and stack in (None, change_set.stack_name)
            ):
                return change_set
        raise Refused(f"ChangeSet [{wanted}] does not exist", "ChangeSetNotFound", 404)

    def _shadow(self, state: _Region, name: str) -> Shadow | None:
        """The stack this middleware holds under that id, or active under that name."""
        if name in state.shadows:
            return state.shadows[name]
        for shadow in state.shadows.values():
            if shadow.name == name and shadow.active:
                return shadow
        return None

    def _current(self, request: _Request, state: _Region, name: str) -> str | None:
        """The id of the stack that name (or id) is now, wherever it is held."""
        shadow = self._shadow(state, name)
        if shadow is not None:
            return shadow.id if shadow.active or name == shadow.id else None
        return self._moto_id(request, name)

    def _updatable(self, request: _Request, state: _Region, name: str) -> str:
        shadow = self._shadow(state, name)
        if shadow is not None and shadow.active:
            raise Refused(f"Stack:{shadow.id} is in {shadow.status} state and can not be updated.")
        stack_id = self._moto_id(request, name)
        if stack_id is None:
            raise Refused(f"Stack [{name}] does not exist")
        return stack_id

    def _moto_id(self, request: _Request, name: str) -> str | None:
        """The id of moto's live stack of that name (ListStacks: describing a half-made stack
        would have moto create its resources, to resolve its outputs)."""
        if name.startswith("arn:"):
            return name
        for summary in self._summaries(request):
            if summary["StackName"] == name and summary["StackStatus"] != "DELETE_COMPLETE":
                return str(summary["StackId"])
        return None

    def _half_made(self, request: _Request, name: str) -> str | None:
        for summary in self._summaries(request):
            if summary["StackName"] == name and summary["StackStatus"] == "CREATE_IN_PROGRESS":
                return str(summary["StackId"])
        return None

    def _summaries(self, request: _Request) -> list[dict[str, str]]:
        status, body = self._call(request, "ListStacks", {})
        container = _find(_parse(body), "StackSummaries") if status == 200 else None
        return [_flat(member) for member in container] if container is not None else []

    def _deployed(self, request: _Request, state: _Region, stack_id: str) -> Deployed:
        """What the stack was last given: as sent through here, else as moto tells it."""
        if stack_id in state.deployed:
            return state.deployed[stack_id]
        status, body = self._call(request, "GetTemplate", {"StackName": stack_id})
        text = _text(_parse(body), "TemplateBody") if status == 200 else ""
        status, body = self._call(request, "DescribeStacks", {"StackName": stack_id})
        parameters: dict[str, str] = {}
        container = _find(_parse(body), "Parameters") if status == 200 else None
        for member in container if container is not None else []:
            found = _flat(member)
            parameters[found["ParameterKey"]] = found.get("ParameterValue", "")
        document = _load(text)
        revisions = {
            name: str(resource.get("Metadata", {}).get(REVISION))
            for name, resource in document["Resources"].items()
            if REVISION in resource.get("Metadata", {})
        }
        return Deployed(json.dumps(_marked(document, {}), default=str), parameters, revisions)

    def _moto_events(self, request: _Request, stack_id: str) -> list[Event]:
        """moto's events of the stack, oldest first."""
        status, body = self._call(request, "DescribeStackEvents", {"StackName": stack_id})
        container = _find(_parse(body), "StackEvents") if status == 200 else None
        return [_flat(member) for member in container][::-1] if container is not None else []

    def _physical_ids(self, request: _Request, stack_id: str) -> dict[str, str]:
        status, body = self._call(request, "DescribeStackResources", {"StackName": stack_id})
        container = _find(_parse(body), "StackResources") if status == 200 else None
        found = [_flat(member) for member in container] if container is not None else []
        return {r.get("LogicalResourceId", ""): r.get("PhysicalResourceId", "") for r in found}

    def _template_text(self, request: _Request, deployed: Deployed | None) -> str:
        body = request.get("TemplateBody")
        url = request.get("TemplateURL")
        if body:
            return body
        if url:
            return self._read_template_url(request, url)
        if deployed is not None and request.get("UsePreviousTemplate") == "true":
            return deployed.text
        raise Refused("Either Template URL or Template Body must be specified.")

    def _read_template_url(self, request: _Request, url: str) -> str:
        """The object a TemplateURL names, read from the emulator's S3 (path-style or
        virtual-hosted: S3 user guide, "Virtual hosting of general purpose buckets")."""
        parts = urlparse(url)
        host = parts.netloc.split(":")[0]
        path = unquote(parts.path.lstrip("/"))
        if host.startswith(("s3.", "s3-")) or host in ("localhost", "127.0.0.1"):
            bucket, _, key = path.partition("/")
        else:
            bucket, key = host.split(".s3.")[0] if ".s3." in host else host.split(".")[0], path
        call = self._inner_environ(request.environ, "s3", b"")
        call.update({"REQUEST_METHOD": "GET", "PATH_INFO": f"/{bucket}/{key}"})
        call["HTTP_HOST"] = "s3.amazonaws.com"
        status, body = self._invoke(call)
        if status != 200 or not key:
            raise Refused("TemplateURL must reference a valid S3 object to which you have access.")
        return body.decode("utf-8")

    # ---------------------------------------------------------------- moto's app

    def _pass(self, request: _Request) -> tuple[int, bytes]:
        """moto's answer to the request as it came."""
        return self._invoke(self._inner_environ(request.environ, "cloudformation", request.body))

    def _call(self, request: _Request, action: str, params: dict[str, str]) -> tuple[int, bytes]:
        return self._raw_call(request, {"Action": action, "Version": "2010-05-15", **params})

    def _raw_call(self, request: _Request, form: dict[str, str]) -> tuple[int, bytes]:
        body = urlencode(form).encode()
        return self._invoke(self._inner_environ(request.environ, "cloudformation", body))

    def _sts_identity(self, environ: dict[str, Any]) -> tuple[int, bytes]:
        body = b"Action=GetCallerIdentity&Version=2011-06-15"
        call = self._inner_environ(environ, "sts", body)
        call["HTTP_HOST"] = "sts.amazonaws.com"
        return self._invoke(call)

    @staticmethod
    def _inner_environ(environ: dict[str, Any], service: str, body: bytes) -> dict[str, Any]:
        call = {
            k: v
            for k, v in environ.items()
            if k not in ("RAW_URI", "REQUEST_URI", "HTTP_X_AMZ_CONTENT_SHA256")
        }
        authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
        call.update(
            {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/",
                "QUERY_STRING": "",
                "CONTENT_TYPE": _FORM,
                "CONTENT_LENGTH": str(len(body)),
                "wsgi.input": io.BytesIO(body),
                "HTTP_AUTHORIZATION": authorization.replace(
                    "/cloudformation/aws4_request", f"/{service}/aws4_request"
                ),
            }
        )
        return call

    def _invoke(self, environ: dict[str, Any]) -> tuple[int, bytes]:
        answer: dict[str, str] = {}

        def keep(status: str, *_: Any) -> Callable[[bytes], None]:
            answer["status"] = status
            return lambda _data: None

        body = b"".join(self._app(environ, keep))
        return int(answer["status"].split()[0]), body


# -------------------------------------------------------------------- templates and changes


def _load(text: str) -> dict[str, Any]:
    try:
        return cfn.load(text)
    except (StackError, yaml.YAMLError) as exc:
        raise Refused(f"Template format error: {exc}") from exc


def _values(given: list[dict[str, str]], previous: dict[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for parameter in given:
        key = parameter.get("ParameterKey", "")
        if parameter.get("UsePreviousValue") == "true":
            if key not in previous:
                raise Refused(f"Invalid input for parameter key {key}: no previous value")
            values[key] = previous[key]
        else:
            values[key] = parameter.get("ParameterValue", "")
    return values


def _with_defaults(document: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """Every declared parameter's value: the given one, else its default."""
    declared = document.get("Parameters") or {}
    complete = {n: str(s["Default"]) for n, s in declared.items() if "Default" in s}
    complete.update({k: v for k, v in values.items() if k in declared})
    return complete


def _changes(old: dict[str, Any], new: dict[str, Any], changed: set[str]) -> list[dict[str, str]]:
    before, after = old.get("Resources", {}), new.get("Resources", {})
    changes = []
    for action, names in resource_diff(before, after, changed).items():
        for name in names:
            kind = str((after.get(name) or before[name]).get("Type", ""))
            change = {"Action": action, "LogicalResourceId": name, "ResourceType": kind}
            if action == "Modify":
                change["Replacement"] = replacement(kind)
            changes.append(change)
    return changes


def _marked(document: dict[str, Any], revisions: dict[str, str]) -> dict[str, Any]:
    """The document as moto is sent it: each revised resource's Metadata names its revision
    (and any revision of the document's own is dropped when ``revisions`` do not name it)."""
    resources = {}
    for name, resource in document["Resources"].items():
        metadata = {k: v for k, v in (resource.get("Metadata") or {}).items() if k != REVISION}
        if name in revisions:
            metadata[REVISION] = revisions[name]
        kept = {k: v for k, v in resource.items() if k != "Metadata"}
        resources[name] = {**kept, "Metadata": metadata} if metadata else kept
    return {**document, "Resources": resources}


def _resource_events(
    change_set: ChangeSet, physical: dict[str, str], anchor: Event, kind: str
) -> list[Event]:
    """One event per changed resource, at the time of the stack's own final event."""
    done = {"Add": "CREATE_COMPLETE", "Modify": "UPDATE_COMPLETE", "Remove": "DELETE_COMPLETE"}
    return [
        {
            "StackId": change_set.stack_id,
            "EventId": str(uuid.uuid4()),
            "StackName": change_set.stack_name,
            "LogicalResourceId": c["LogicalResourceId"],
            "PhysicalResourceId": physical.get(c["LogicalResourceId"], ""),
            "ResourceType": c["ResourceType"],
            "Timestamp": anchor.get("Timestamp", _now()),
            "ResourceStatus": done[c["Action"]] if kind == "UPDATE" else "CREATE_COMPLETE",
        }
        for c in change_set.changes
    ]


def _event(
    stack: Shadow, logical_id: str, kind: str, status: str, physical: str, reason: str | None
) -> Event:
    return {
        "StackId": stack.id,
        "EventId": str(uuid.uuid4()),
        "StackName": stack.name,
        "LogicalResourceId": logical_id,
        "PhysicalResourceId": physical,
        "ResourceType": kind,
        "Timestamp": _now(),
        "ResourceStatus": status,
        "ResourceStatusReason": reason,
    }


def _stack_event(stack: Shadow, status: str, reason: str | None = None) -> Event:
    return _event(stack, stack.name, STACK_TYPE, status, stack.id, reason)


def _stack(shadow: Shadow) -> dict[str, Any]:
    return {
        "StackId": shadow.id,
        "StackName": shadow.name,
        "Parameters": _parameter_list(shadow.parameters),
        "CreationTime": shadow.created,
        "DeletionTime": shadow.deleted,
        "StackStatus": shadow.status,
        "DisableRollback": False,
    }


def _summary(change_set: ChangeSet) -> dict[str, Any]:
    return {
        "StackId": change_set.stack_id,
        "StackName": change_set.stack_name,
        "ChangeSetId": change_set.id,
        "ChangeSetName": change_set.name,
        "ExecutionStatus": change_set.execution,
        "Status": change_set.status,
        "StatusReason": change_set.reason,
        "CreationTime": change_set.created,
        "Description": change_set.description,
    }


def _parameter_list(parameters: dict[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]


def _parameter_form(parameters: dict[str, str]) -> dict[str, str]:
    form = {}
    for index, (key, value) in enumerate(parameters.items(), start=1):
        form[f"Parameters.member.{index}.ParameterKey"] = key
        form[f"Parameters.member.{index}.ParameterValue"] = value
    return form


def _arn(region: str, account: str, kind: str, name: str) -> str:
    return f"arn:aws:cloudformation:{region}:{account}:{kind}/{name}/{uuid.uuid4()}"


# -------------------------------------------------------------------- XML


def _parse(body: bytes | str) -> ET.Element:
    """moto's answer, or an element of ours: never a caller's bytes."""
    return ET.fromstring(body)  # noqa: S314 - XML the emulator itself wrote


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(root: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in root.iter() if _local(e.tag) == name), None)


def _text(root: ET.Element, name: str) -> str:
    found = _find(root, name)
    return (found.text or "") if found is not None else ""


def _flat(member: ET.Element) -> dict[str, str]:
    return {_local(child.tag): child.text or "" for child in member}


def _message(body: bytes) -> str:
    """The message of an error moto answered (XML or JSON)."""
    try:
        return _text(_parse(body), "Message") or body.decode("utf-8", "replace")
    except ET.ParseError:
        pass
    try:
        found = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
    return (
        str(found.get("message") or found.get("Message") or found)
        if isinstance(found, dict)
        else str(found)
    )


def _render(value: Any) -> str:
    if isinstance(value, dict):
        return "".join(f"<{k}>{_render(v)}</{k}>" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return "".join(f"<member>{_render(item)}</member>" for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _element(fields: dict[str, Any]) -> ET.Element:
    return _parse(f'<member xmlns="{NS}">{_render(fields)}</member>')


def _edit_list(body: bytes, name: str, dropped: set[str], added: list[dict[str, Any]]) -> bytes:
    """moto's answer with the list ``name`` edited: members whose StackId is ``dropped``
    removed, ``added`` appended."""
    root = _parse(body)
    container = _find(root, name)
    if container is None:
        return body
    kept = [m for m in container if _text(m, "StackId") not in dropped]
    container[:] = kept + [_element(fields) for fields in added]
    return bytes(ET.tostring(root, encoding="utf-8"))


def _ok(action: str, result: dict[str, Any]) -> tuple[int, bytes]:
    body = (
        f'<{action}Response xmlns="{NS}"><{action}Result>{_render(result)}</{action}Result>'
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )
    return 200, body.encode()


def _error(message: str, code: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
        f"<Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()
