"""CloudFormation change sets served as WSGI middleware around moto's app, as AWS serves them.

:class:`ChangeSets` answers CreateChangeSet, DescribeChangeSet, ListChangeSets,
ExecuteChangeSet and DeleteChangeSet itself and executes a change set through moto's own
CreateStack / UpdateStack (``emulator.application`` composes it; the Query protocol is
``cfn_wire``'s). What AWS shows and moto's own change sets did not:
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
resource, and every parameter's value (defaults included), so that moto's comparison of
parameters is the change set's; GetTemplate answers the text the stack was given. Stacks
created with CreateStack go through here for the same reason. A stack this middleware holds and
moto does not (under review, or rolled back) is answered here for DescribeStacks, ListStacks,
DescribeStackEvents, DescribeStackResources, ListStackResources, GetTemplate and DeleteStack.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import unquote, urlparse
from xml.etree import ElementTree as ET

import yaml

from filegate import template as cfn
from filegate.errors import StackError
from filegate.local import cfn_models
from filegate.local.cfn_template_size import is_cloudformation_form
from filegate.local.cfn_wire import (
    Answer,
    MotoApp,
    Refused,
    Request,
    WsgiApp,
    edit_list,
    listed,
    member,
    message,
    ok,
    parse,
    text,
)
from filegate.local.change_sets import changed_parameters, replacement, resource_diff

REVISION = "filegate:revision"
NO_CHANGES = (
    "The submitted information didn't contain changes. Submit different information to"
    " create a change set."
)
STACK_TYPE = "AWS::CloudFormation::Stack"
_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/cloudformation/aws4_request")
_DONE = {"Add": "CREATE_COMPLETE", "Modify": "UPDATE_COMPLETE", "Remove": "DELETE_COMPLETE"}

Event = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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

    def summary(self) -> dict[str, Any]:
        return {
            "StackId": self.stack_id,
            "StackName": self.stack_name,
            "ChangeSetId": self.id,
            "ChangeSetName": self.name,
            "ExecutionStatus": self.execution,
            "Status": self.status,
            "StatusReason": self.reason,
            "CreationTime": self.created,
            "Description": self.description,
        }


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
                "Timestamp": _now(),
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
            "Parameters": _parameter_list(self.parameters),
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
class _Region:
    """One account's CloudFormation in one region, as far as this middleware holds it."""

    account: str
    change_sets: dict[str, ChangeSet] = field(default_factory=dict)
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

    def stack_change_sets(self, stack_id: str) -> list[ChangeSet]:
        return [c for c in self.change_sets.values() if c.stack_id == stack_id]


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
        self._moto = MotoApp(app)
        self._lock = threading.Lock()
        self._regions: dict[tuple[str, str], _Region] = {}
        self._accounts: dict[str, str] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not is_cloudformation_form(environ):
            return self._app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        request = Request(environ, body)
        handler = self._HANDLED.get(request.get("Action") or "")
        credential = _CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION", "")))
        if handler is None or credential is None:
            return self._app(environ, start_response)
        request.region = credential[2]
        with self._lock:
            try:
                state = self._region(environ, credential[1], request.region)
                renamed = state.renamed.get(request.get("StackName") or "")
                if renamed:
                    request.name_stack(renamed)
                status, payload = getattr(self, handler)(request, state)
            except Refused as refused:
                status, payload = refused.answer()
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [("Content-Type", "text/xml"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    # ---------------------------------------------------------------- change sets

    def _create_change_set(self, request: Request, state: _Region) -> Answer:
        name = request.get("ChangeSetName") or ""
        if not name[:1].isalpha():
            raise Refused(f"Invalid change set name: {name}")
        if (request.get("ChangeSetType") or "CREATE") == "CREATE":
            change_set = self._creating(request, state, name)
        else:
            change_set = self._updating(request, state, name)
        state.change_sets[change_set.id] = change_set
        return ok("CreateChangeSet", {"Id": change_set.id, "StackId": change_set.stack_id})

    def _creating(self, request: Request, state: _Region, name: str) -> ChangeSet:
        """A CREATE change set, and the REVIEW_IN_PROGRESS stack it makes."""
        stack_name = request.get("StackName") or ""
        if self._current(request, state, stack_name) is not None:
            raise Refused(
                f"Stack [{stack_name}] already exists and cannot be created again with the"
                f" changeSet [{name}]."
            )
        text_ = self._template_text(request, None)
        document = _load(text_)
        parameters = _with_defaults(document, _values(request.members("Parameters"), {}))
        review = Shadow(
            _arn(request.region, state.account, "stack", stack_name),
            stack_name,
            "REVIEW_IN_PROGRESS",
            _now(),
            parameters,
            text_,
        )
        review.stack_event("REVIEW_IN_PROGRESS", "User Initiated")
        state.shadows[review.id] = review
        change_set = _new_change_set(request, state.account, name, review.id, text_, document)
        change_set.parameters = parameters
        change_set.changes = _changes({}, document, set())
        return change_set

    def _updating(self, request: Request, state: _Region, name: str) -> ChangeSet:
        """An UPDATE change set: what the template and parameters change in the stack."""
        stack_id = self._updatable(request, state, request.get("StackName") or "")
        deployed = self._deployed(request, state, stack_id)
        text_ = self._template_text(request, deployed)
        document = _load(text_)
        given = _values(request.members("Parameters"), deployed.parameters)
        parameters = _with_defaults(document, given)
        old = _load(deployed.text)
        changed = changed_parameters(deployed.parameters, parameters)
        change_set = _new_change_set(request, state.account, name, stack_id, text_, document)
        change_set.kind, change_set.parameters = "UPDATE", parameters
        change_set.changes = _changes(old, document, changed)
        if not change_set.changes and not changed and old == document:
            change_set.status, change_set.execution = "FAILED", "UNAVAILABLE"
            change_set.reason = NO_CHANGES
        return change_set

    def _describe_change_set(self, request: Request, state: _Region) -> Answer:
        change_set = self._find_change_set(request, state)
        described = {
            **change_set.summary(),
            "Parameters": _parameter_list(change_set.parameters),
            "Capabilities": change_set.capabilities,
            "Changes": [{"Type": "Resource", "ResourceChange": c} for c in change_set.changes],
        }
        return ok("DescribeChangeSet", described)

    def _list_change_sets(self, request: Request, state: _Region) -> Answer:
        stack_id = self._current(request, state, request.get("StackName") or "")
        if stack_id is None:
            raise Refused(f"Stack [{request.get('StackName')}] does not exist")
        summaries = [c.summary() for c in state.stack_change_sets(stack_id)]
        return ok("ListChangeSets", {"Summaries": summaries})

    def _delete_change_set(self, request: Request, state: _Region) -> Answer:
        state.change_sets.pop(self._find_change_set(request, state).id)
        return ok("DeleteChangeSet", {})

    def _execute_change_set(self, request: Request, state: _Region) -> Answer:
        change_set = self._find_change_set(request, state)
        if change_set.status != "CREATE_COMPLETE" or change_set.execution != "AVAILABLE":
            raise Refused(
                f"ChangeSet [{change_set.id}] cannot be executed in its current status of"
                f" [{change_set.status}]",
                code="InvalidChangeSetStatus",
            )
        execute = self._execute_create if change_set.kind == "CREATE" else self._execute_update
        refused = execute(request, state, change_set)
        if refused is not None:
            return refused  # moto's refusal, as it gave it
        # "CloudFormation retains all change sets until you update the stack" (user guide,
        # "Delete a change set for a CloudFormation stack")
        for other in state.stack_change_sets(change_set.stack_id):
            if other is not change_set:
                state.change_sets.pop(other.id)
        return ok("ExecuteChangeSet", {})

    def _execute_create(
        self, request: Request, state: _Region, change_set: ChangeSet
    ) -> Answer | None:
        review = state.shadows.pop(change_set.stack_id)
        template = json.dumps(change_set.document, default=str)
        params = {"StackName": change_set.stack_name, "TemplateBody": template}
        status, body = self._moto.call(
            request, "CreateStack", {**params, **_parameter_form(change_set.parameters)}
        )
        stack_id = (
            text(parse(body), "StackId")
            if status == 200
            else self._half_made(request, change_set.stack_name)
        )
        if not stack_id:  # refused before moto made a stack: the review stack stays
            state.shadows[review.id] = review
            return status, body
        change_set.stack_id = state.renamed[review.id] = stack_id
        if status != 200:
            self._roll_back(request, state, change_set, review, message(body))
            return None
        change_set.execution = "EXECUTE_COMPLETE"
        state.deployed[stack_id] = Deployed(change_set.text, change_set.parameters)
        events = self._moto_events(request, stack_id)
        if events:
            reviewed = [{**e, "StackId": stack_id} for e in review.events]
            created = self._resource_events(request, change_set, events[-1])
            state.extra_events[stack_id] = [
                (events[0]["EventId"], reviewed),
                (events[-1]["EventId"], created),
            ]
        return None

    def _execute_update(
        self, request: Request, state: _Region, change_set: ChangeSet
    ) -> Answer | None:
        stack_id = change_set.stack_id
        revisions = self._revisions(request, state, change_set)
        template = json.dumps(_marked(change_set.document, revisions), default=str)
        params = {"StackName": stack_id, "TemplateBody": template}
        status, body = self._moto.call(
            request, "UpdateStack", {**params, **_parameter_form(change_set.parameters)}
        )
        if status != 200:
            change_set.execution = "EXECUTE_FAILED"
            return status, body
        change_set.execution = "EXECUTE_COMPLETE"
        state.deployed[stack_id] = Deployed(change_set.text, change_set.parameters, revisions)
        events = self._moto_events(request, stack_id)
        if events:
            done = self._resource_events(request, change_set, events[-1])
            state.extra_events.setdefault(stack_id, []).append((events[-1]["EventId"], done))
        return None

    def _revisions(self, request: Request, state: _Region, change_set: ChangeSet) -> dict[str, str]:
        """Each resource's revision after the change set: a new one where it modifies it."""
        deployed = self._deployed(request, state, change_set.stack_id)
        resources = change_set.document["Resources"]
        revisions = {n: r for n, r in deployed.revisions.items() if n in resources}
        for change in change_set.changes:
            if change["Action"] == "Modify":
                revisions[change["LogicalResourceId"]] = change_set.id.rsplit("/", 1)[-1]
        return revisions

    def _roll_back(
        self, request: Request, state: _Region, change_set: ChangeSet, review: Shadow, error: str
    ) -> None:
        """What CloudFormation does when a resource of a stack's first create fails."""
        stack_id = change_set.stack_id
        failed, created = cfn_models.failed_create(state.account, request.region, stack_id)
        logical_id, kind, reason = failed or (change_set.stack_name, STACK_TYPE, error)
        stack = Shadow(
            stack_id,
            review.name,
            "CREATE_IN_PROGRESS",
            review.created,
            review.parameters,
            review.text,
        )
        stack.events = [{**e, "StackId": stack_id} for e in review.events]
        stack.events += self._moto_events(request, stack_id)
        for name, type_, physical in created:
            stack.event(name, type_, "CREATE_COMPLETE", physical)
        stack.event(logical_id, kind, "CREATE_FAILED", "", reason)
        stack.stack_event(
            "ROLLBACK_IN_PROGRESS",
            f"The following resource(s) failed to create: [{logical_id}]."
            " Rollback requested by user.",
        )
        self._delete_created(request, stack, change_set.document["Resources"], created)
        state.shadows[stack_id] = stack
        change_set.execution = "EXECUTE_FAILED"

    def _delete_created(
        self,
        request: Request,
        stack: Shadow,
        resources: dict[str, Any],
        created: list[tuple[str, str, str]],
    ) -> None:
        """A failed create's rollback: moto's DeleteStack deletes what the create made but
        ``Retain`` resources (``cfn_models`` keeps it from keeping RetainExceptOnCreate)."""
        kept = [c for c in created if resources[c[0]].get("DeletionPolicy") == "Retain"]
        status, body = self._moto.call(request, "DeleteStack", {"StackName": stack.id})
        for name, type_, physical in kept:
            stack.event(name, type_, "DELETE_SKIPPED", physical)
        if status != 200:  # what failed to delete is still there, as on AWS
            stack.stack_event("ROLLBACK_FAILED", message(body))
            return
        for name, type_, physical in reversed(created):
            if (name, type_, physical) not in kept:
                stack.event(name, type_, "DELETE_COMPLETE", physical)
        stack.stack_event("ROLLBACK_COMPLETE")

    def _resource_events(
        self, request: Request, change_set: ChangeSet, final: Event
    ) -> list[Event]:
        """One event per changed resource, at the time of the stack's own final event."""
        resources = listed(
            self._moto.call(request, "DescribeStackResources", {"StackName": final["StackId"]}),
            "StackResources",
        )
        physical = {r.get("LogicalResourceId"): r.get("PhysicalResourceId", "") for r in resources}
        return [
            {
                **final,
                "EventId": str(uuid.uuid4()),
                "LogicalResourceId": c["LogicalResourceId"],
                "PhysicalResourceId": physical.get(c["LogicalResourceId"], ""),
                "ResourceType": c["ResourceType"],
                "ResourceStatus": _DONE[c["Action"]],
                "ResourceStatusReason": None,
            }
            for c in change_set.changes
        ]

    # ---------------------------------------------------------------- stacks

    def _create_stack(self, request: Request, state: _Region) -> Answer:
        """moto's CreateStack, sent the template as the change sets send it (JSON) and every
        parameter's value, so that a change set later compares with what moto holds."""
        name = request.get("StackName") or ""
        if state.shadow(name) is not None:
            raise Refused(f"Stack [{name}] already exists", code="AlreadyExistsException")
        text_ = self._template_text(request, None)
        document = _load(text_)
        parameters = _with_defaults(document, _values(request.members("Parameters"), {}))
        form = {
            k: v[0]
            for k, v in request.form.items()
            if k not in ("TemplateBody", "TemplateURL") and not k.startswith("Parameters.")
        }
        form["TemplateBody"] = json.dumps(document, default=str)
        status, body = self._moto.form(request, {**form, **_parameter_form(parameters)})
        if status == 200:
            state.deployed[text(parse(body), "StackId")] = Deployed(text_, parameters)
        return status, body

    def _update_stack(self, request: Request, state: _Region) -> Answer:
        """A direct UpdateStack: moto's, after which moto's template is the one compared."""
        self._updatable(request, state, request.get("StackName") or "")
        state.deployed.pop(self._moto_id(request, request.get("StackName") or "") or "", None)
        return self._moto.passed(request)

    def _delete_stack(self, request: Request, state: _Region) -> Answer:
        name = request.get("StackName") or ""
        shadow = state.shadow(name)
        if shadow is None:
            stack_id = self._moto_id(request, name)
            answer = self._moto.passed(request)
        else:
            stack_id = shadow.id
            if shadow.active:
                shadow.stack_event("DELETE_IN_PROGRESS", "User Initiated")
                shadow.deleted = _now()
                shadow.stack_event("DELETE_COMPLETE")
            answer = ok("DeleteStack", {})
        for change_set in state.stack_change_sets(stack_id or ""):
            state.change_sets.pop(change_set.id)
        return answer

    def _describe_stacks(self, request: Request, state: _Region) -> Answer:
        name = request.get("StackName")
        shadow = state.shadow(name) if name else None
        if shadow is not None:
            return ok("DescribeStacks", {"Stacks": [shadow.described()]})
        status, body = self._moto.passed(request)
        if name or status != 200:
            return status, body
        active = [member(s.described()) for s in state.shadows.values() if s.active]
        return status, edit_list(body, "Stacks", lambda members: members + active)

    def _list_stacks(self, request: Request, state: _Region) -> Answer:
        status, body = self._moto.passed(request)
        if status != 200:
            return status, body
        wanted = set(request.strings("StackStatusFilter"))
        shown = [s.summary() for s in state.shadows.values() if not wanted or s.status in wanted]

        def edit(members: list[ET.Element]) -> list[ET.Element]:
            kept = [m for m in members if text(m, "StackId") not in state.shadows]
            return kept + [member(summary) for summary in shown]

        return status, edit_list(body, "StackSummaries", edit)

    def _describe_stack_events(self, request: Request, state: _Region) -> Answer:
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

    def _describe_stack_resources(self, request: Request, state: _Region) -> Answer:
        if state.shadow(request.get("StackName") or "") is not None:
            return ok("DescribeStackResources", {"StackResources": []})  # it holds none
        return self._moto.passed(request)

    def _list_stack_resources(self, request: Request, state: _Region) -> Answer:
        if state.shadow(request.get("StackName") or "") is not None:
            return ok("ListStackResources", {"StackResourceSummaries": []})
        return self._moto.passed(request)

    def _get_template(self, request: Request, state: _Region) -> Answer:
        name = request.get("StackName") or ""
        shadow = state.shadow(name)
        deployed = state.deployed.get(self._moto_id(request, name) or "") if not shadow else None
        text_ = shadow.text if shadow else deployed.text if deployed else None
        if text_ is None:
            return self._moto.passed(request)
        return ok("GetTemplate", {"TemplateBody": text_})

    # ---------------------------------------------------------------- lookups

    def _region(self, environ: dict[str, Any], access_key: str, region: str) -> _Region:
        account = self._accounts.get(access_key) or self._moto.account(environ)
        if account is None:
            raise Refused("cannot tell the caller's account: STS GetCallerIdentity failed")
        self._accounts[access_key] = account
        return self._regions.setdefault((account, region), _Region(account))

    def _find_change_set(self, request: Request, state: _Region) -> ChangeSet:
        wanted = request.get("ChangeSetName") or ""
        stack = request.get("StackName")
        for change_set in state.change_sets.values():
            if change_set.id == wanted or (
                change_set.name == wanted and stack in (None, change_set.stack_name)
            ):
                return change_set
        raise Refused(f"ChangeSet [{wanted}] does not exist", "ChangeSetNotFound", 404)

    def _current(self, request: Request, state: _Region, name: str) -> str | None:
        """The id of the stack that name (or id) is now, wherever it is held."""
        shadow = state.shadow(name)
        if shadow is not None:
            return shadow.id if shadow.active or name == shadow.id else None
        return self._moto_id(request, name)

    def _updatable(self, request: Request, state: _Region, name: str) -> str:
        shadow = state.shadow(name)
        if shadow is not None and shadow.active:
            raise Refused(f"Stack:{shadow.id} is in {shadow.status} state and can not be updated.")
        stack_id = self._moto_id(request, name)
        if stack_id is None:
            raise Refused(f"Stack [{name}] does not exist")
        return stack_id

    def _moto_id(self, request: Request, name: str) -> str | None:
        """The id of moto's live stack of that name (ListStacks: describing a half-made stack
        would have moto create its resources, to resolve its outputs)."""
        if name.startswith("arn:"):
            return name
        for summary in listed(self._moto.call(request, "ListStacks", {}), "StackSummaries"):
            if summary["StackName"] == name and summary["StackStatus"] != "DELETE_COMPLETE":
                return summary["StackId"]
        return None

    def _half_made(self, request: Request, name: str) -> str | None:
        """The stack moto's failed CreateStack left (still creating, under that name)."""
        for summary in listed(self._moto.call(request, "ListStacks", {}), "StackSummaries"):
            if summary["StackName"] == name and summary["StackStatus"] == "CREATE_IN_PROGRESS":
                return summary["StackId"]
        return None

    def _deployed(self, request: Request, state: _Region, stack_id: str) -> Deployed:
        """What the stack was last given: as sent through here, else as moto tells it."""
        if stack_id in state.deployed:
            return state.deployed[stack_id]
        status, body = self._moto.call(request, "GetTemplate", {"StackName": stack_id})
        document = _load(text(parse(body), "TemplateBody") if status == 200 else "")
        described = self._moto.call(request, "DescribeStacks", {"StackName": stack_id})
        parameters = {
            p["ParameterKey"]: p.get("ParameterValue", "") for p in listed(described, "Parameters")
        }
        revisions = {
            name: str(resource["Metadata"][REVISION])
            for name, resource in document["Resources"].items()
            if REVISION in (resource.get("Metadata") or {})
        }
        unmarked = json.dumps(_marked(document, {}), default=str)
        return Deployed(unmarked, parameters, revisions)

    def _moto_events(self, request: Request, stack_id: str) -> list[Event]:
        """moto's events of the stack, oldest first."""
        answer = self._moto.call(request, "DescribeStackEvents", {"StackName": stack_id})
        return list(reversed(listed(answer, "StackEvents")))

    def _template_text(self, request: Request, deployed: Deployed | None) -> str:
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


# -------------------------------------------------------------------- templates and changes


def _load(text_: str) -> dict[str, Any]:
    try:
        return cfn.load(text_)
    except (StackError, yaml.YAMLError) as exc:
        raise Refused(f"Template format error: {exc}") from exc


def _values(given: list[dict[str, str]], previous: dict[str, str]) -> dict[str, str]:
    """The values a call gives its parameters (``UsePreviousValue``: the stack's)."""
    values: dict[str, str] = {}
    for parameter in given:
        key = parameter.get("ParameterKey", "")
        if parameter.get("UsePreviousValue") != "true":
            values[key] = parameter.get("ParameterValue", "")
        elif key in previous:
            values[key] = previous[key]
        else:
            raise Refused(f"Invalid input for parameter key {key}: it has no previous value")
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
    (a revision the document itself carries is dropped unless ``revisions`` name it)."""
    resources = {}
    for name, resource in document["Resources"].items():
        metadata = {k: v for k, v in (resource.get("Metadata") or {}).items() if k != REVISION}
        if name in revisions:
            metadata[REVISION] = revisions[name]
        kept = {k: v for k, v in resource.items() if k != "Metadata"}
        resources[name] = {**kept, "Metadata": metadata} if metadata else kept
    return {**document, "Resources": resources}


def _new_change_set(
    request: Request, account: str, name: str, stack_id: str, text_: str, document: dict[str, Any]
) -> ChangeSet:
    """A CREATE change set of the request's, with no parameters or changes yet."""
    return ChangeSet(
        id=_arn(request.region, account, "changeSet", name),
        name=name,
        stack_id=stack_id,
        stack_name=request.get("StackName") or "",
        kind="CREATE",
        text=text_,
        document=document,
        parameters={},
        capabilities=request.strings("Capabilities"),
        description=request.get("Description"),
        changes=[],
    )


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
