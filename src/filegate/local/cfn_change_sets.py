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
to changed parameters), so the template an execute sends it carries, in each resource's
``Metadata``, a revision (``filegate:revision``) that changes exactly when the change set
modifies the resource, and every parameter's value (defaults included): moto then updates what
the change set lists. The stacks moto does not hold (under review, rolled back), the events a
change set adds to moto's and GetTemplate's text are ``cfn_stacks``'.

Two seams into moto stay (``cfn_models``), because no public API shows or decides it: which
resource failed a create and what the create had made (``cfn_models.failed_create``), and a
stack delete that keeps ``RetainExceptOnCreate`` resources (moto knows only ``Retain``).
Change sets live in this process's memory, as moto's stacks do. Not modelled: the rollback of a
failed update (ExecuteChangeSet answers moto's error), and the StackId of a CREATE change
set's stack: the created stack has the id moto gives it (a call naming the review stack's id
reaches it).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from filegate.local import cfn_models
from filegate.local.cfn_stacks import (
    STACK_TYPE,
    Deployed,
    Event,
    Region,
    Shadow,
    Stacks,
    load,
    marked,
    now,
    parameter_form,
    parameter_list,
    values,
    with_defaults,
)
from filegate.local.cfn_wire import (
    Answer,
    MotoApp,
    Refused,
    Request,
    WsgiApp,
    form_body,
    is_cloudformation_form,
    listed,
    message,
    ok,
    parse,
    respond,
    text,
)
from filegate.local.change_sets import changed_parameters, replacement, resource_diff

NO_CHANGES = (
    "The submitted information didn't contain changes. Submit different information to"
    " create a change set."
)
_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/cloudformation/aws4_request")
_DONE = {"Add": "CREATE_COMPLETE", "Modify": "UPDATE_COMPLETE", "Remove": "DELETE_COMPLETE"}


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
    tags: list[dict[str, str]]  # the stack's, given to moto when the change set executes
    description: str | None
    changes: list[dict[str, str]]
    status: str = "CREATE_COMPLETE"
    reason: str | None = None
    execution: str = "AVAILABLE"
    created: str = field(default_factory=now)

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


class ChangeSets:
    """CloudFormation's change sets around ``app``; its stack calls are ``cfn_stacks``'."""

    _HANDLED: ClassVar[dict[str, str]] = {
        "CreateChangeSet": "_create_change_set",
        "DescribeChangeSet": "_describe_change_set",
        "ListChangeSets": "_list_change_sets",
        "ExecuteChangeSet": "_execute_change_set",
        "DeleteChangeSet": "_delete_change_set",
        "DeleteStack": "_delete_stack",
    }

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._moto = MotoApp(app)
        self._stacks = Stacks(self._moto)
        self._change_sets: dict[str, ChangeSet] = {}  # by id: an ARN, unique across regions
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not is_cloudformation_form(environ):
            return self._app(environ, start_response)
        request = Request(environ, form_body(environ))
        action = request.get("Action") or ""
        credential = _CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION", "")))
        if credential is None or (action not in self._HANDLED and action not in Stacks.HANDLED):
            return self._app(environ, start_response)
        request.region = credential[2]
        with self._lock:
            try:
                answer = self._answer(action, request, credential[1])
            except Refused as refused:
                answer = refused.answer()
        return respond(start_response, answer)

    def _answer(self, action: str, request: Request, access_key: str) -> Answer:
        state = self._stacks.region(request, access_key)
        renamed = state.renamed.get(request.get("StackName") or "")
        if renamed:
            request.name_stack(renamed)
        if action not in self._HANDLED:
            return self._stacks.answer(action, request, state)
        handler: Callable[[Request, Region], Answer] = getattr(self, self._HANDLED[action])
        return handler(request, state)

    def _delete_stack(self, request: Request, state: Region) -> Answer:
        """DeleteStack, which deletes the stack's change sets too."""
        answer, stack_id = self._stacks.delete(request, state)
        for change_set in self._of_stack(stack_id or ""):
            self._change_sets.pop(change_set.id)
        return answer

    def _of_stack(self, stack_id: str) -> list[ChangeSet]:
        return [c for c in self._change_sets.values() if c.stack_id == stack_id]

    # ---------------------------------------------------------------- change sets

    def _create_change_set(self, request: Request, state: Region) -> Answer:
        name = request.get("ChangeSetName") or ""
        if not name[:1].isalpha():
            raise Refused(f"Invalid change set name: {name}")
        if (request.get("ChangeSetType") or "CREATE") == "CREATE":
            change_set = self._creating(request, state, name)
        else:
            change_set = self._updating(request, state, name)
        self._change_sets[change_set.id] = change_set
        return ok("CreateChangeSet", {"Id": change_set.id, "StackId": change_set.stack_id})

    def _creating(self, request: Request, state: Region, name: str) -> ChangeSet:
        """A CREATE change set, and the REVIEW_IN_PROGRESS stack it makes."""
        stack_name = request.get("StackName") or ""
        if self._stacks.current(request, state, stack_name) is not None:
            raise Refused(
                f"Stack [{stack_name}] already exists and cannot be created again with the"
                f" changeSet [{name}]."
            )
        text_ = self._stacks.template_text(request, None)
        document = load(text_)
        parameters = with_defaults(document, values(request.members("Parameters"), {}))
        review = Shadow(
            state.arn("stack", stack_name),
            stack_name,
            "REVIEW_IN_PROGRESS",
            now(),
            parameters,
            text_,
        )
        review.stack_event("REVIEW_IN_PROGRESS", "User Initiated")
        state.shadows[review.id] = review
        change_set = _new_change_set(request, state, name, review.id, text_, document)
        change_set.parameters = parameters
        change_set.changes = _changes({}, document, set())
        return change_set

    def _updating(self, request: Request, state: Region, name: str) -> ChangeSet:
        """An UPDATE change set: what the template and parameters change in the stack."""
        stack_id = self._stacks.updatable(request, state, request.get("StackName") or "")
        deployed = self._stacks.deployed(request, state, stack_id)
        text_ = self._stacks.template_text(request, deployed)
        document = load(text_)
        given = values(request.members("Parameters"), deployed.parameters)
        parameters = with_defaults(document, given)
        old = load(deployed.text)
        changed = changed_parameters(deployed.parameters, parameters)
        change_set = _new_change_set(request, state, name, stack_id, text_, document)
        change_set.kind, change_set.parameters = "UPDATE", parameters
        change_set.changes = _changes(old, document, changed)
        if not change_set.changes and not changed and old == document:
            change_set.status, change_set.execution = "FAILED", "UNAVAILABLE"
            change_set.reason = NO_CHANGES
        return change_set

    def _describe_change_set(self, request: Request, state: Region) -> Answer:
        change_set = self._find_change_set(request, state)
        described = {
            **change_set.summary(),
            "Parameters": parameter_list(change_set.parameters),
            "Capabilities": change_set.capabilities,
            "Tags": change_set.tags,
            "Changes": [{"Type": "Resource", "ResourceChange": c} for c in change_set.changes],
        }
        return ok("DescribeChangeSet", described)

    def _list_change_sets(self, request: Request, state: Region) -> Answer:
        stack_id = self._stacks.current(request, state, request.get("StackName") or "")
        if stack_id is None:
            raise Refused(f"Stack [{request.get('StackName')}] does not exist")
        summaries = [c.summary() for c in self._of_stack(stack_id)]
        return ok("ListChangeSets", {"Summaries": summaries})

    def _delete_change_set(self, request: Request, state: Region) -> Answer:
        self._change_sets.pop(self._find_change_set(request, state).id)
        return ok("DeleteChangeSet", {})

    def _execute_change_set(self, request: Request, state: Region) -> Answer:
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
        for other in self._of_stack(change_set.stack_id):
            if other is not change_set:
                self._change_sets.pop(other.id)
        return ok("ExecuteChangeSet", {})

    def _execute_create(
        self, request: Request, state: Region, change_set: ChangeSet
    ) -> Answer | None:
        review = state.shadows.pop(change_set.stack_id)
        template = json.dumps(change_set.document, default=str)
        params = {"StackName": change_set.stack_name, "TemplateBody": template}
        status, body = self._moto.call(request, "CreateStack", {**params, **_form(change_set)})
        stack_id = (
            text(parse(body), "StackId")
            if status == 200
            else self._stacks.half_made(request, change_set.stack_name)
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
        events = self._stacks.moto_events(request, stack_id)
        if events:
            reviewed = [{**e, "StackId": stack_id} for e in review.events]
            created = self._resource_events(request, change_set, events[-1])
            state.extra_events[stack_id] = [
                (events[0]["EventId"], reviewed),
                (events[-1]["EventId"], created),
            ]
        return None

    def _execute_update(
        self, request: Request, state: Region, change_set: ChangeSet
    ) -> Answer | None:
        stack_id = change_set.stack_id
        revisions = self._revisions(request, state, change_set)
        template = json.dumps(marked(change_set.document, revisions), default=str)
        params = {"StackName": stack_id, "TemplateBody": template}
        status, body = self._moto.call(request, "UpdateStack", {**params, **_form(change_set)})
        if status != 200:
            change_set.execution = "EXECUTE_FAILED"
            return status, body
        change_set.execution = "EXECUTE_COMPLETE"
        state.deployed[stack_id] = Deployed(change_set.text, change_set.parameters, revisions)
        events = self._stacks.moto_events(request, stack_id)
        if events:
            done = self._resource_events(request, change_set, events[-1])
            state.extra_events.setdefault(stack_id, []).append((events[-1]["EventId"], done))
        return None

    def _revisions(self, request: Request, state: Region, change_set: ChangeSet) -> dict[str, str]:
        """Each resource's revision after the change set: a new one where it modifies it."""
        deployed = self._stacks.deployed(request, state, change_set.stack_id)
        resources = change_set.document["Resources"]
        revisions = {n: r for n, r in deployed.revisions.items() if n in resources}
        for change in change_set.changes:
            if change["Action"] == "Modify":
                revisions[change["LogicalResourceId"]] = change_set.id.rsplit("/", 1)[-1]
        return revisions

    def _roll_back(
        self, request: Request, state: Region, change_set: ChangeSet, review: Shadow, error: str
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
        stack.events += self._stacks.moto_events(request, stack_id)
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

    # ---------------------------------------------------------------- lookups

    def _find_change_set(self, request: Request, state: Region) -> ChangeSet:
        wanted = request.get("ChangeSetName") or ""
        stack = request.get("StackName")
        for change_set in self._change_sets.values():
            if not change_set.id.startswith(state.prefix):
                continue  # another region's or account's
            if change_set.id == wanted or (
                change_set.name == wanted and stack in (None, change_set.stack_name)
            ):
                return change_set
        raise Refused(f"ChangeSet [{wanted}] does not exist", "ChangeSetNotFound", 404)


# -------------------------------------------------------------------- templates and changes


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


def _form(change_set: ChangeSet) -> dict[str, str]:
    """The change set's parameters and tags, as CreateStack and UpdateStack take them."""
    form = parameter_form(change_set.parameters)
    for index, tag in enumerate(change_set.tags, start=1):
        form.update({f"Tags.member.{index}.{k}": v for k, v in tag.items()})
    return form


def _new_change_set(
    request: Request, state: Region, name: str, stack_id: str, text_: str, document: dict[str, Any]
) -> ChangeSet:
    """A CREATE change set of the request's, with no parameters or changes yet."""
    return ChangeSet(
        id=state.arn("changeSet", name),
        name=name,
        stack_id=stack_id,
        stack_name=request.get("StackName") or "",
        kind="CREATE",
        text=text_,
        document=document,
        parameters={},
        capabilities=request.strings("Capabilities"),
        tags=request.members("Tags"),
        description=request.get("Description"),
        changes=[],
    )
