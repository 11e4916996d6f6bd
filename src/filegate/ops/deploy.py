"""``filegate deploy``: the Lambda package and the template to the artifact bucket, the stack
through a change set.

One path for AWS and the local stack: build (or take) the zip, upload it under its
content-addressed key, upload the template (read once: the bytes the preflight measured, its
comments included) under its own (``filegate/templates/<sha256>.yml``), create a change set
that CloudFormation reads the template for from that object's URL (``TemplateURL``, up to
1 MB; inline it would stop at 51,200 bytes), CREATE when the stack is missing, else UPDATE
with every other parameter kept at its previous value; show its changes, then either stop
(``dry_run``: the change set is deleted) or execute it and stream the stack's events until
the stack settles. Before anything is created, the account preflight (``ops.preflight``:
template size, function URLs in the region, unreserved concurrency) must pass: a dry run
reports it (outcome ``preflight-failed``), a deploy refuses with what to do.

A stack in ROLLBACK_COMPLETE is a first create that failed and was rolled back: it holds no
resources and only a delete is possible (CloudFormation user guide, stack status codes). The
deploy deletes it and creates the stack again, after checking from its events that it never
completed a create or an update; a dry run only says it would. Every other stuck status
(ROLLBACK_FAILED, DELETE_FAILED, *_IN_PROGRESS) is refused with what to do.

New code changes ``CodeKey``, and a new configuration of the function the
``FunctionFingerprint`` computed here, so the template publishes a Lambda version and moves the
``live`` alias to it (``ops.releases``). A change set without changes is not an
error: the result says so.

A stack in the emulator has a ``LocalTwin`` (``StackLocation.local``, built by the CLI from
``filegate.local``): after an update it applies what the emulator ignores for the resources
the update changed and keeps the running local stack in step (its outputs, the version its
workers run); it also names the artifact bucket when none is given. This module never
imports ``filegate.local``; on AWS there is no twin and no such step.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from filegate import package
from filegate import template as cfn
from filegate.errors import DeployError
from filegate.ops import preflight
from filegate.ops.artifacts import (
    Artifact,
    ArtifactStore,
    StoredTemplate,
    default_bucket_name,
    zip_digest,
)
from filegate.ops.preflight import PreflightCheck
from filegate.ops.releases import (
    FINGERPRINT_PARAMETER,
    LIVE_ALIAS,
    function_fingerprint,
)
from filegate.outputs import FUNCTION_NAME
from filegate.stackref import StackLocation

CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
CODE_PARAMETERS = ("CodeBucket", "CodeKey")
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_BUSY = ("_IN_PROGRESS",)
_FAILED_CREATE = "ROLLBACK_COMPLETE"
_EVER_COMPLETED = (
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
)
_STACK_TYPE = "AWS::CloudFormation::Stack"
_CHANGE_SET_WAIT_SECONDS = 300.0
_STACK_WAIT_SECONDS = 3600.0


@dataclass(frozen=True)
class DeployOptions:
    """What to deploy: a zip (built when None), parameter overrides, where the zip goes."""

    package: Path | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    artifact_bucket: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class ResourceChange:
    action: str
    logical_id: str
    resource_type: str
    replacement: str = ""


@dataclass(frozen=True)
class StackEvent:
    timestamp: str
    logical_id: str
    resource_type: str
    status: str
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")


@dataclass
class DeployResult:
    """What a deploy did. ``outcome``: deployed, no-changes, dry-run or preflight-failed.

    ``replaced_failed_create``: the stack was ROLLBACK_COMPLETE and was (or, in a dry run,
    would be) deleted before the create.
    """

    stack_name: str
    change_set_type: str
    outcome: str
    artifact: Artifact | None
    changes: list[ResourceChange] = field(default_factory=list)
    events: list[StackEvent] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    live_version: str | None = None
    stack_status: str = ""
    applied_locally: list[str] = field(default_factory=list)
    preflight: list[PreflightCheck] = field(default_factory=list)
    replaced_failed_create: bool = False
    template: StoredTemplate | None = None

    @property
    def preflight_passed(self) -> bool:
        return all(check.passed for check in self.preflight)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeployObserver(Protocol):
    """Progress: a line per step, the changes about to run, each stack event as it arrives."""

    def step(self, message: str) -> None: ...

    def executing(self, changes: list[ResourceChange]) -> None: ...

    def event(self, event: StackEvent) -> None: ...


class _Silent:
    def step(self, message: str) -> None:
        pass

    def executing(self, changes: list[ResourceChange]) -> None:
        pass

    def event(self, event: StackEvent) -> None:
        pass


def deploy(
    location: StackLocation,
    options: DeployOptions,
    observer: DeployObserver | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployResult:
    """Deploy the template and the package to ``location``; see the module docstring."""
    return Deployer(location, observer or _Silent(), sleep).run(options)


class Deployer:
    """One deploy: the steps of ``deploy`` over one CloudFormation client."""

    def __init__(
        self, location: StackLocation, observer: DeployObserver, sleep: Callable[[float], None]
    ) -> None:
        self._location = location
        self._target = location.target
        self._stack = location.stack_name
        self._cfn = location.target.client("cloudformation")
        self._observer = observer
        self._sleep = sleep
        # Read once: what the preflight measures, the parameters are checked against and the
        # artifact bucket receives are the same bytes.
        self._text = cfn.template_text()
        self._document = cfn.load(self._text)

    def run(self, options: DeployOptions) -> DeployResult:
        existing = self._existing_stack()
        failed = existing if existing and existing["StackStatus"] == _FAILED_CREATE else None
        if failed is not None:
            self._require_never_completed(failed)
        current = None if failed else existing
        kind = "UPDATE" if current and current["StackStatus"] != "REVIEW_IN_PROGRESS" else "CREATE"
        previous = _parameter_values(current) if kind == "UPDATE" else {}
        self._check_parameters(previous, options.parameters)  # before anything is created
        checks = self._preflight(kind, {**previous, **options.parameters})
        stopped = self._stop_before_changes(kind, checks, failed is not None, options.dry_run)
        if stopped is not None:
            return stopped
        if failed is not None:
            self._delete_failed_create(failed)
        with _zip(options.package, self._observer) as path:
            store = self._artifact_store(current, options.artifact_bucket)
            self._observer.step(f"uploading the package to s3://{store.bucket}/")
            artifact = store.upload(path)
        template = store.upload_template(self._text)
        self._observer.step(f"uploaded the template to s3://{template.bucket}/{template.key}")
        result = DeployResult(self._stack, kind, "deployed", artifact, preflight=checks)
        result.replaced_failed_create = failed is not None
        result.template = template
        values = _with_fingerprint(
            self._document, previous, {**options.parameters, **_code(artifact)}
        )
        change_set = self._create_change_set(
            kind, _listed(self._document, previous, values), template.url
        )
        result.changes = self._wait_for_changes(change_set)
        if not result.changes or options.dry_run:
            result.outcome = "dry-run" if result.changes else "no-changes"
            self._discard(change_set, kind)
            return self._finish(result, executed=False)
        self._execute(change_set, result)
        return self._finish(result, executed=True)

    def _stop_before_changes(
        self, kind: str, checks: list[PreflightCheck], failed_create: bool, dry_run: bool
    ) -> DeployResult | None:
        """A failed preflight stops everything (a dry run reports it, a deploy refuses); a dry
        run on a rolled-back create stops too: no change set can be made while it is there."""
        planned = DeployResult(self._stack, kind, "dry-run", None, preflight=checks)
        planned.replaced_failed_create = failed_create
        if not planned.preflight_passed:
            if not dry_run:
                raise DeployError(preflight.failure_message(self._stack, checks))
            planned.outcome = "preflight-failed"
            return planned
        return planned if failed_create and dry_run else None

    def _execute(self, change_set: str, result: DeployResult) -> None:
        self._observer.step(f"executing change set ({len(result.changes)} changes)")
        self._observer.executing(result.changes)
        marker = self._newest_event_id()
        try:
            self._cfn.execute_change_set(ChangeSetName=change_set)
        except (ClientError, BotoCoreError) as exc:
            raise DeployError(
                f"cannot execute change set {change_set} on {self._stack}: {exc}"
            ) from exc
        result.events, result.stack_status = self._stream_events(marker)
        self._check_succeeded(result)

    # ---------------------------------------------------------------- the stack before

    def _existing_stack(self) -> dict[str, Any] | None:
        try:
            stack: dict[str, Any] = self._cfn.describe_stacks(StackName=self._stack)["Stacks"][0]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise DeployError(f"cannot describe stack {self._stack}: {exc}") from exc
        except BotoCoreError as exc:
            raise DeployError(f"cannot reach CloudFormation for {self._stack}: {exc}") from exc
        status = str(stack["StackStatus"])
        if status.endswith(_BUSY) and status != "REVIEW_IN_PROGRESS":
            raise DeployError(
                f"stack {self._stack} is busy ({status}): wait until it settles, then deploy again"
            )
        if status in ("ROLLBACK_FAILED", "DELETE_FAILED"):
            raise DeployError(
                f"stack {self._stack} is {status} and cannot be updated: delete it"
                f" (aws cloudformation delete-stack --stack-name {self._stack}), then deploy again"
            )
        return stack

    def _require_never_completed(self, stack: dict[str, Any]) -> None:
        """Refuse to delete a stack whose events show a completed create or update."""
        pages = self._cfn.get_paginator("describe_stack_events").paginate(
            StackName=stack["StackId"]
        )
        for page in pages:
            for raw in page["StackEvents"]:
                if raw.get("ResourceType") == _STACK_TYPE and raw.get("ResourceStatus") in (
                    _EVER_COMPLETED
                ):
                    raise DeployError(
                        f"stack {self._stack} is {_FAILED_CREATE} but once completed"
                        f" {raw['ResourceStatus']}: filegate deletes only a stack whose first"
                        " create failed. Look at its events, delete it yourself"
                        f" (aws cloudformation delete-stack --stack-name {self._stack}),"
                        " then deploy again"
                    )

    def _delete_failed_create(self, stack: dict[str, Any]) -> None:
        """Delete the empty, rolled-back stack so that the same name can be created again."""
        stack_id = str(stack["StackId"])
        self._observer.step(
            f"stack {self._stack} is {_FAILED_CREATE}: its first create failed and was rolled"
            " back, so it holds no resources and cannot be updated; deleting it, then creating"
            " it again"
        )
        try:
            self._cfn.delete_stack(StackName=stack_id)
            deadline = time.monotonic() + _STACK_WAIT_SECONDS
            while (status := self._status(stack_id)) != "DELETE_COMPLETE":
                if status == "DELETE_FAILED" or time.monotonic() > deadline:
                    raise DeployError(
                        f"cannot delete the rolled-back stack {self._stack} ({status}): see"
                        f" `aws cloudformation describe-stack-events --stack-name {stack_id}`"
                    )
                self._sleep(2.0)
        except (ClientError, BotoCoreError) as exc:
            raise DeployError(f"cannot delete the rolled-back stack {self._stack}: {exc}") from exc
        self._observer.step(f"deleted the rolled-back stack {self._stack}")

    def _preflight(self, kind: str, values: dict[str, str]) -> list[PreflightCheck]:
        """The account preflight for this deploy (see ``ops.preflight``)."""
        self._observer.step("preflight: template size, function URLs, unreserved concurrency")
        document = self._document
        reservations, knobs = template_reservations(document, values, self._target.region)
        lambda_client = self._target.client("lambda")
        already = self._current_reservations(lambda_client) if kind == "UPDATE" else {}
        return [
            preflight.template_size(self._text),
            preflight.function_urls(self._target.region, document),
            preflight.unreserved_concurrency(lambda_client, reservations, already, knobs),
        ]

    def _current_reservations(self, lambda_client: Any) -> dict[str, int]:
        """What the stack's functions reserve now (an update frees it before it reserves)."""
        resources = self._cfn.describe_stack_resources(StackName=self._stack)["StackResources"]
        reserved: dict[str, int] = {}
        for resource in resources:
            if resource.get("ResourceType") != "AWS::Lambda::Function":
                continue
            try:
                found = lambda_client.get_function_concurrency(
                    FunctionName=resource["PhysicalResourceId"]
                )
            except (ClientError, BotoCoreError):
                continue
            reserved[resource["LogicalResourceId"]] = int(
                found.get("ReservedConcurrentExecutions") or 0
            )
        return reserved

    def _artifact_store(self, existing: dict[str, Any] | None, named: str | None) -> ArtifactStore:
        if named:
            store = ArtifactStore(self._target, named)
            store.require()
            return store
        previous = _parameter_values(existing).get("CodeBucket")
        if self._location.local is not None:
            store = ArtifactStore(self._target, previous or self._location.local.artifact_bucket())
            store.ensure(secure=False)
            return store
        account = self._target.client("sts").get_caller_identity()["Account"]
        store = ArtifactStore(self._target, default_bucket_name(account, self._target.region))
        store.ensure(secure=True)
        return store

    def _check_parameters(self, previous: dict[str, str], overrides: dict[str, str]) -> None:
        declared = self._document.get("Parameters", {})
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise DeployError(
                f"the template has no parameter {', '.join(unknown)}:"
                f" known are {', '.join(sorted(declared))}"
            )
        given = {*overrides, *previous, *CODE_PARAMETERS}
        missing = [n for n, spec in declared.items() if n not in given and "Default" not in spec]
        if missing:
            raise DeployError(
                f"stack {self._stack} does not exist yet and needs "
                + ", ".join(f"--parameter {name}=..." for name in missing)
            )

    # ---------------------------------------------------------------- the change set

    def _create_change_set(
        self, kind: str, parameters: list[dict[str, Any]], template_url: str
    ) -> str:
        name = f"filegate-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"
        self._observer.step(f"creating change set {name} ({kind})")
        try:
            created = self._cfn.create_change_set(
                StackName=self._stack,
                ChangeSetName=name,
                ChangeSetType=kind,
                TemplateURL=template_url,
                Parameters=parameters,
                Capabilities=CAPABILITIES,
                Description="filegate deploy",
            )
        except ClientError as exc:
            if any(text in str(exc) for text in _NO_CHANGES):
                return ""  # nothing to change (the emulator says so at creation)
            raise DeployError(f"cannot create a change set for {self._stack}: {exc}") from exc
        return str(created["Id"])

    def _wait_for_changes(self, change_set: str) -> list[ResourceChange]:
        """The change set's changes once computed; [] when there are none."""
        if not change_set:
            return []
        deadline = time.monotonic() + _CHANGE_SET_WAIT_SECONDS
        while True:
            described = self._cfn.describe_change_set(ChangeSetName=change_set)
            status, reason = described["Status"], described.get("StatusReason", "")
            if status == "CREATE_COMPLETE":
                return self._all_changes(change_set, described)
            if status == "FAILED":
                if any(text in reason for text in _NO_CHANGES):
                    return []
                raise DeployError(f"change set for {self._stack} failed: {reason}")
            if time.monotonic() > deadline:
                raise DeployError(f"change set for {self._stack} still {status} after 5 minutes")
            self._sleep(1.0)

    def _all_changes(self, change_set: str, first: dict[str, Any]) -> list[ResourceChange]:
        pages, described = [first], first
        while described.get("NextToken"):
            described = self._cfn.describe_change_set(
                ChangeSetName=change_set, NextToken=described["NextToken"]
            )
            pages.append(described)
        return [
            ResourceChange(
                action=str(rc.get("Action", "")),
                logical_id=str(rc.get("LogicalResourceId", "")),
                resource_type=str(rc.get("ResourceType", "")),
                replacement=str(rc.get("Replacement", "")),
            )
            for page in pages
            for change in page.get("Changes", [])
            for rc in [change.get("ResourceChange", {})]
        ]

    def _discard(self, change_set: str, kind: str) -> None:
        """Delete the change set; a stack that only existed for it (CREATE) goes too."""
        if change_set:
            self._cfn.delete_change_set(ChangeSetName=change_set)
        if kind == "CREATE":
            self._cfn.delete_stack(StackName=self._stack)

    # ---------------------------------------------------------------- execution

    def _newest_event_id(self) -> str:
        events = self._cfn.describe_stack_events(StackName=self._stack)["StackEvents"]
        return str(events[0]["EventId"]) if events else ""

    def _stream_events(self, marker: str) -> tuple[list[StackEvent], str]:
        """Report each new stack event until the stack settles; return them and its status."""
        seen: set[str] = set()
        streamed: list[StackEvent] = []
        deadline = time.monotonic() + _STACK_WAIT_SECONDS
        while True:
            status = self._status()
            for event_id, event in self._events_since(marker):
                if event_id not in seen:
                    seen.add(event_id)
                    streamed.append(event)
                    self._observer.event(event)
            if _settled(status):
                return streamed, status
            if time.monotonic() > deadline:
                raise DeployError(f"stack {self._stack} still {status} after an hour")
            self._sleep(2.0)

    def _status(self, stack: str | None = None) -> str:
        found = self._cfn.describe_stacks(StackName=stack or self._stack)["Stacks"][0]
        return str(found["StackStatus"])

    def _events_since(self, marker: str) -> list[tuple[str, StackEvent]]:
        """Events newer than ``marker`` (an EventId), oldest first."""
        newer: list[tuple[str, StackEvent]] = []
        for page in self._cfn.get_paginator("describe_stack_events").paginate(
            StackName=self._stack
        ):
            for raw in page["StackEvents"]:
                if raw["EventId"] == marker:
                    return newer[::-1]
                newer.append((str(raw["EventId"]), _event(raw)))
        return newer[::-1]

    def _check_succeeded(self, result: DeployResult) -> None:
        if result.stack_status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            raise DeployError(failure_message(self._stack, result.stack_status, result.events))

    # ---------------------------------------------------------------- after

    def _finish(self, result: DeployResult, executed: bool) -> DeployResult:
        if not executed and result.change_set_type == "CREATE":
            return result  # no stack, before or after (the dry run's own was deleted)
        stack = self._cfn.describe_stacks(StackName=self._stack)["Stacks"][0]
        result.stack_status = str(stack["StackStatus"])
        result.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        result.live_version = self._live_version(result.outputs)
        twin = self._location.local
        if executed and twin is not None:
            changed = [c.logical_id for c in result.changes if c.action in ("Add", "Modify")]
            result.applied_locally = twin.after_deploy(
                changed, result.outputs, result.live_version, self._observer.step
            )
        return result

    def _live_version(self, outputs: dict[str, str]) -> str | None:
        function = outputs.get(FUNCTION_NAME)
        if not function:
            return None
        try:
            alias = self._target.client("lambda").get_alias(FunctionName=function, Name=LIVE_ALIAS)
        except (ClientError, BotoCoreError):
            return None
        return str(alias["FunctionVersion"])


@contextmanager
def _zip(given: Path | None, observer: DeployObserver) -> Iterator[Path]:
    if given is not None:
        zip_digest(given)  # refuse a missing or broken package before creating anything
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="filegate-deploy-") as work:
        observer.step("building the Lambda package")
        yield package.build(Path(work) / "lambda.zip").path


def _code(artifact: Artifact) -> dict[str, str]:
    return {"CodeBucket": artifact.bucket, "CodeKey": artifact.key}


def _with_fingerprint(
    document: dict[str, Any], previous: dict[str, str], values: dict[str, str]
) -> dict[str, str]:
    """``values`` plus the digest of the function's configuration they resolve to, so that a
    change of configuration alone publishes a version (``ops.releases``)."""
    fingerprint = function_fingerprint(document, {**previous, **values}, cfn.Resolver)
    return {**values, FINGERPRINT_PARAMETER: fingerprint}


def _listed(
    document: dict[str, Any], previous: dict[str, str], values: dict[str, str]
) -> list[dict[str, Any]]:
    """The change set's parameters: the given values, every other one kept as it was."""
    declared = document.get("Parameters", {})
    listed: list[dict[str, Any]] = []
    for name in declared:
        if name in values:
            listed.append({"ParameterKey": name, "ParameterValue": values[name]})
        elif name in previous:
            listed.append({"ParameterKey": name, "UsePreviousValue": True})
    return listed


def _parameter_values(stack: dict[str, Any] | None) -> dict[str, str]:
    if not stack:
        return {}
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}


def failure_message(stack: str, status: str, events: list[StackEvent]) -> str:
    """Why a stack update failed: each failed event's resource and reason."""
    reasons = [f"{e.logical_id}: {e.reason}" for e in events if e.failed and e.reason]
    detail = "; ".join(reasons) or (
        f"no reason given; see `aws cloudformation describe-stack-events --stack-name {stack}`"
    )
    message = f"stack {stack} ended in {status}: {detail}"
    if status == _FAILED_CREATE:
        message += (
            f". The create was rolled back and left nothing behind; fix the cause, then run"
            f" `filegate deploy` again: it deletes the empty stack {stack} and creates it anew"
        )
    return message


def template_reservations(
    document: dict[str, Any], values: dict[str, str], region: str
) -> tuple[dict[str, int], list[str]]:
    """Each function's ReservedConcurrentExecutions for this deploy, and the parameters
    that set them. A reservation that resolves to ``AWS::NoValue`` (or to nothing) is none."""
    declared = document.get("Parameters", {})
    refs = {n: str(spec["Default"]) for n, spec in declared.items() if "Default" in spec}
    refs.update(values)
    refs.update({"AWS::Region": region, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"})
    resolver = cfn.Resolver(document, refs, _no_attributes)
    reserved: dict[str, int] = {}
    knobs: set[str] = set()
    for logical_id, resource in document["Resources"].items():
        raw = resource.get("Properties", {}).get("ReservedConcurrentExecutions")
        if resource.get("Type") != "AWS::Lambda::Function" or raw is None:
            continue
        condition = resource.get("Condition")
        if condition and not resolver.condition(condition):
            continue
        knobs |= _refs(raw) & set(declared)
        value = resolver.resolve(raw)
        if value is not cfn.NO_VALUE and str(value).strip().lstrip("-").isdigit():
            reserved[logical_id] = max(0, int(str(value).strip()))
    return reserved, sorted(knobs)


def _no_attributes(logical_id: str, attribute: str) -> str:
    raise DeployError(
        f"ReservedConcurrentExecutions cannot depend on {logical_id}.{attribute} before deploying"
    )


def _refs(value: Any) -> set[str]:
    """The names a template fragment refers to with Ref."""
    if isinstance(value, list):
        return set().union(*map(_refs, value)) if value else set()
    if isinstance(value, dict):
        found = {value["Ref"]} if isinstance(value.get("Ref"), str) else set()
        return found.union(*map(_refs, value.values()))
    return set()


def _settled(status: str) -> bool:
    return not status.endswith("_IN_PROGRESS")


def _event(raw: dict[str, Any]) -> StackEvent:
    timestamp = raw.get("Timestamp")
    return StackEvent(
        timestamp=timestamp.isoformat() if isinstance(timestamp, datetime) else str(timestamp),
        logical_id=str(raw.get("LogicalResourceId", "")),
        resource_type=str(raw.get("ResourceType", "")),
        status=str(raw.get("ResourceStatus", "")),
        reason=str(raw.get("ResourceStatusReason") or ""),
    )
