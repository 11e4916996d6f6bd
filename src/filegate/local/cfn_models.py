"""CloudFormation the emulator lacks: resource types, and change sets that behave like AWS's.

moto 5.2.5 has no CloudFormation model for ``AWS::Lambda::Url`` or ``AWS::Lambda::Alias``, and
its ``AWS::Lambda::Version`` cannot be updated. The models here build on moto's own Lambda
backend: ``FunctionUrl`` (``create_function_url_config``; the local gateway serves the URL),
``FunctionVersion`` (``publish_version``; an update publishes a new version and keeps the old
one, as a replacement under ``UpdateReplacePolicy: Retain`` does) and ``FunctionAlias``
(``create_alias`` / ``update_alias``). ``KmsKey`` creates an ``AWS::KMS::Key`` with the
``KeySpec`` and ``KeyUsage`` the template gives (moto's model makes every key symmetric).

moto's change sets differ from AWS's in ways ``filegate deploy`` would trip on; ``register``
also mends them (``_ChangeSetFixes``):
- a change set lists only resources whose template text changed; AWS also lists those that
  reference a changed parameter (through ``Ref`` or ``Fn::Sub``) and those that reference a
  resource being replaced (here: a Lambda version), and so does the mended one (the diff is
  computed on plain template dicts in ``change_sets``);
- executing a change set left the stack's outputs and parameters as they were (a created stack
  had no outputs at all); the mended one rebuilds them, as ``update_stack`` does;
- a stack update wrote only two stack-level events; each changed resource now gets its own;
- a resource that failed to create made ExecuteChangeSet itself fail and left the stack in
  REVIEW_IN_PROGRESS with what it had created so far; AWS answers the call, then rolls the
  create back: the resource's CREATE_FAILED event with its reason, ROLLBACK_IN_PROGRESS, every
  resource created so far deleted (DELETE_COMPLETE) except those whose DeletionPolicy is
  ``Retain`` (DELETE_SKIPPED), and the stack ends ROLLBACK_COMPLETE, where only a delete is
  possible. ``RetainExceptOnCreate`` resources are deleted on that rollback and kept on any
  other delete, as AWS documents (CloudFormation template reference, "DeletionPolicy
  attribute"; user guide, stack status codes: ROLLBACK_COMPLETE); moto knew only ``Retain``.

``register`` and ``installed`` also install ``patches.lambda_reservation`` (a function's create
refused when its reservation would leave under 100 unreserved executions, as Lambda refuses
it); Lambda's GetAccountSettings, which the preflight reads, is middleware (``lambda_account``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from filegate.local import lambda_account
from filegate.local.change_sets import changed_parameters, replacement, resource_diff

_registered = False
_FAILED_RESOURCE = "_filegate_failed_resource"  # set on the error a resource's create raised
KEPT_ON_DELETE = frozenset({"Retain", "RetainExceptOnCreate"})
KEPT_ON_CREATE_ROLLBACK = frozenset({"Retain"})


def _lambda_backend(account_id: str, region: str) -> Any:
    from moto.awslambda.models import lambda_backends

    return lambda_backends[account_id][region]


class FunctionUrl:
    """``AWS::Lambda::Url`` for moto's CloudFormation.

    A plain class rather than a ``CloudFormationModel`` subclass: moto finds those through
    ``__subclasses__()``, which would register it in every process that imports this module.
    ``register`` adds it to the model map explicitly, in the emulator process only.
    """

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def has_cfn_attr(cls, attribute: str) -> bool:
        return attribute in ("FunctionArn", "FunctionUrl")

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region: str, **_: Any
    ) -> FunctionUrl:
        properties = dict(template["Properties"])
        target = properties.pop("TargetFunctionArn")
        backend = _lambda_backend(account_id, region)
        return cls(backend.create_function_url_config(target, properties))

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: FunctionUrl,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> FunctionUrl:
        properties = dict(cloudformation_json["Properties"])
        properties.pop("TargetFunctionArn", None)
        original_resource.config.update(properties)
        return original_resource

    @property
    def physical_resource_id(self) -> str:
        return str(self.config.function.function_arn)  # Ref of a function URL: the function ARN

    def get_cfn_attribute(self, attribute: str) -> str:
        if attribute == "FunctionUrl":
            return f"{self.config.url}/"  # AWS's function URLs end with a slash; moto's do not
        return str(self.config.function.function_arn)

    def is_created(self) -> bool:
        return True


class FunctionVersion:
    """``AWS::Lambda::Version``: a published, immutable version of a function.

    Any change replaces it on AWS: a new version is published. The template keeps replaced
    versions (``UpdateReplacePolicy: Retain``) so that ``filegate rollback`` can return to
    them; here the old version is simply left in place.
    """

    def __init__(self, published: Any) -> None:
        self.published = published  # moto's copy of the function at that version

    @classmethod
    def has_cfn_attr(cls, attribute: str) -> bool:
        return attribute == "Version"

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region: str, **_: Any
    ) -> FunctionVersion:
        properties = template["Properties"]
        backend = _lambda_backend(account_id, region)
        published = backend.publish_version(
            properties["FunctionName"], properties.get("Description", "")
        )
        return cls(published)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> FunctionVersion:
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    @property
    def physical_resource_id(self) -> str:
        return str(self.published.function_arn)  # Ref of a version: its qualified ARN

    def get_cfn_attribute(self, attribute: str) -> str:
        return str(self.published.version)

    def delete(self, account_id: str, region: str) -> None:
        """Versions are retained (the template's DeletionPolicy); nothing to delete."""

    def is_created(self) -> bool:
        return True


class FunctionAlias:
    """``AWS::Lambda::Alias``: a name (``live``) pointing at one version of a function."""

    def __init__(self, alias: Any, function_name: str) -> None:
        self.alias = alias
        self.function_name = function_name

    @classmethod
    def has_cfn_attr(cls, attribute: str) -> bool:
        return attribute == "AliasArn"

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region: str, **_: Any
    ) -> FunctionAlias:
        properties = template["Properties"]
        backend = _lambda_backend(account_id, region)
        alias = backend.create_alias(
            name=properties["Name"],
            function_name=properties["FunctionName"],
            function_version=str(properties["FunctionVersion"]),
            description=properties.get("Description", ""),
            routing_config=properties.get("RoutingConfig"),
        )
        return cls(alias, properties["FunctionName"])

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: FunctionAlias,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> FunctionAlias:
        properties = cloudformation_json["Properties"]
        backend = _lambda_backend(account_id, region_name)
        alias = backend.update_alias(
            name=properties["Name"],
            function_name=properties["FunctionName"],
            function_version=str(properties["FunctionVersion"]),
            description=properties.get("Description"),
            routing_config=properties.get("RoutingConfig"),
        )
        return cls(alias, properties["FunctionName"])

    @property
    def physical_resource_id(self) -> str:
        return str(self.alias.arn)

    def get_cfn_attribute(self, attribute: str) -> str:
        return str(self.alias.arn)

    def delete(self, account_id: str, region: str) -> None:
        _lambda_backend(account_id, region).delete_alias(self.alias.name, self.function_name)

    def is_created(self) -> bool:
        return True


def _skipped_by_moto(*_: Any, **__: Any) -> None:
    """A CloudFormation step moto does not take for this type (see ``KmsKey``)."""


setattr(_skipped_by_moto, "__isabstractmethod__", True)  # noqa: B010 - what moto looks for


class KmsKey:
    """``AWS::KMS::Key`` with its ``KeySpec`` and ``KeyUsage``.

    moto 5.2.5's model creates every key SYMMETRIC_DEFAULT / ENCRYPT_DECRYPT whatever the
    template says, so the receipts' ECC_NIST_P256 SIGN_VERIFY key could not sign. Only the
    create differs: the key is moto's own (its Ref, Arn, update and delete are moto's).
    """

    @staticmethod
    def _moto_key() -> Any:
        from moto.kms.models import Key

        return Key

    @classmethod
    def has_cfn_attr(cls, attribute: str) -> bool:
        return bool(cls._moto_key().has_cfn_attr(attribute))

    @classmethod
    def create_from_cloudformation_json(
        cls, name: str, template: dict[str, Any], account_id: str, region: str, **_: Any
    ) -> Any:
        from moto.kms.models import kms_backends

        properties = template["Properties"]
        policy = properties["KeyPolicy"]
        key = kms_backends[account_id][region].create_key(
            # as JSON text, as CreateKey takes it: moto's own model keeps the dict, on which
            # its key-policy check (any call naming the key) fails with a TypeError
            policy=policy if isinstance(policy, str) else json.dumps(policy),
            key_usage=properties.get("KeyUsage", "ENCRYPT_DECRYPT"),
            key_spec=properties.get("KeySpec", "SYMMETRIC_DEFAULT"),
            description=properties.get("Description"),
            tags=properties.get("Tags", []),
        )
        key.key_rotation_status = properties.get("EnableKeyRotation", False)
        key.enabled = properties.get("Enabled", True)
        return key

    # moto's key model has no update and no delete-by-template: moto skips a method marked
    # abstract, and these are marked so, as moto's own are (a stack's delete calls the key's
    # own ``delete``).
    update_from_cloudformation_json = classmethod(_skipped_by_moto)
    delete_from_cloudformation_json = classmethod(_skipped_by_moto)


MODELS: dict[str, Any] = {
    "AWS::Lambda::Url": FunctionUrl,
    "AWS::Lambda::Version": FunctionVersion,
    "AWS::Lambda::Alias": FunctionAlias,
    "AWS::KMS::Key": KmsKey,
}


class _ChangeSetFixes:
    """Replacements for the moto methods whose change-set behaviour differs from AWS's."""

    @staticmethod
    def build_resource_diff(
        resource_map: Any, other_template: dict[str, Any], parameters: dict[str, Any] | None = None
    ) -> dict[str, list[str]]:
        changed = changed_parameters(resource_map.resolved_parameters, parameters or {})
        return resource_diff(
            resource_map._resource_json_map, other_template.get("Resources", {}), changed
        )

    @staticmethod
    def change_set_diff(change_set: Any) -> list[Any]:
        from moto.cloudformation.models import Change

        resource_map = change_set.stack.resource_map
        new = change_set.template_dict.get("Resources", {})
        resources = {**resource_map._resource_json_map, **new}
        actions = resource_map.build_resource_diff(change_set.template_dict, change_set.parameters)
        changes = []
        for action, names in actions.items():
            for name in names:
                change = Change(action, name, resources[name]["Type"])
                if action == "Modify":  # describe_change_set's Replacement field
                    change.replacement = replacement(resources[name]["Type"])  # type: ignore[attr-defined]
                changes.append(change)
        return changes

    @staticmethod
    def execute_change_set(
        original: Any, backend: Any, change_set_name: str, stack_name: str | None = None
    ) -> None:
        change_set = backend.describe_change_set(change_set_name)
        stack = backend.stacks[change_set.stack_id]
        changed = [(c.logical_resource_id, c.resource_type) for c in change_set.changes]
        creating = change_set.change_set_type == "CREATE"
        try:
            original(backend, change_set_name, stack_name)
        except Exception as exc:
            if not creating:
                raise  # a failed update's rollback is not modelled: the call fails, as before
            _roll_back_create(stack, change_set, exc)
            return
        stack.parameters = dict(change_set.parameters)
        stack._parse_template()
        stack.output_map = stack._create_output_map()
        done = "CREATE_COMPLETE" if creating else "UPDATE_COMPLETE"
        final = stack.events.pop()  # the stack's own *_COMPLETE comes after its resources'
        for logical_id, kind in changed:
            stack.events.append(_resource_event(stack, logical_id, kind, done))
        final.timestamp = stack.events[-1].timestamp if changed else final.timestamp
        stack.events.append(final)

    @staticmethod
    def create_resource(
        original: Any, logical_id: str, resource_json: Any, *args: Any, **kw: Any
    ) -> Any:
        """moto's ``parse_and_create_resource``, naming the resource on the error it raises.

        Resources are created lazily, a reference creating what it refers to first: the
        innermost resource that failed is the one named.
        """
        try:
            return original(logical_id, resource_json, *args, **kw)
        except Exception as exc:
            if not hasattr(exc, _FAILED_RESOURCE):
                setattr(exc, _FAILED_RESOURCE, (logical_id, str(resource_json.get("Type", ""))))
            raise

    @staticmethod
    def delete(resource_map: Any) -> None:
        """moto's ``ResourceMap.delete`` (a stack delete), keeping RetainExceptOnCreate too."""
        delete_resources(resource_map, KEPT_ON_DELETE)


def _roll_back_create(stack: Any, change_set: Any, error: Exception) -> None:
    """What CloudFormation does when a resource of a stack's first create fails."""
    resources = stack.resource_map._resource_json_map
    logical_id, kind = getattr(error, _FAILED_RESOURCE, (stack.name, "AWS::CloudFormation::Stack"))
    for created in _created(stack.resource_map):
        stack.events.append(
            _resource_event(stack, created, resources[created]["Type"], "CREATE_COMPLETE")
        )
    stack.events.append(
        _resource_event(stack, logical_id, kind, "CREATE_FAILED", reason=_reason(error))
    )
    stack._add_stack_event(
        "ROLLBACK_IN_PROGRESS",
        resource_status_reason=f"The following resource(s) failed to create: [{logical_id}]."
        " Rollback requested by user.",
    )

    def record(name: str, status: str, physical: str, reason: str | None = None) -> None:
        kind = resources[name]["Type"]
        stack.events.append(_resource_event(stack, name, kind, status, reason, physical))

    try:
        delete_resources(stack.resource_map, KEPT_ON_CREATE_ROLLBACK, record)
        stack.status = "ROLLBACK_COMPLETE"
    except Exception as exc:
        stack.status = "ROLLBACK_FAILED"  # what failed to delete is still there, as on AWS
        record(getattr(exc, _FAILED_RESOURCE, (logical_id,))[0], "DELETE_FAILED", "", _reason(exc))
    stack._add_stack_event(stack.status)
    _forget_resources(stack)
    stack.parameters = dict(change_set.parameters)
    stack.template = change_set.template
    change_set.execution_status = "EXECUTE_FAILED"


def delete_resources(resource_map: Any, kept: frozenset[str], record: Any = None) -> None:
    """Delete a stack's created resources, newest first, except those whose policy is ``kept``.

    As moto does it (a resource another one still depends on fails to delete and is tried
    again in the next pass, until a pass deletes nothing), with the deletion policies AWS
    documents; each outcome is told to ``record(logical_id, status, physical_id)``.
    """
    resources = resource_map._resource_json_map
    created = _created(resource_map)
    policies = {name: resources[name].get("DeletionPolicy") for name in created}
    pending = [name for name in reversed(created) if policies[name] not in kept]
    for name in created:
        if name not in pending and record:
            record(name, "DELETE_SKIPPED", _physical(resource_map, name))
    while pending:
        before, failed = len(pending), None
        for name in list(pending):
            physical = _physical(resource_map, name)
            try:
                resource_map._delete_resource(resource_map._parsed_resources[name], resources[name])
            except Exception as exc:  # a dependency still there: try again in the next pass
                setattr(exc, _FAILED_RESOURCE, (name, resources[name]["Type"]))
                failed = exc
                continue
            resource_map._parsed_resources.pop(name)
            pending.remove(name)
            if record:
                record(name, "DELETE_COMPLETE", physical)
        if failed is not None and len(pending) == before:
            raise failed


def _created(resource_map: Any) -> list[str]:
    """The template's resources the map has created (in order), not parameters or skipped types."""
    resources = resource_map._resource_json_map
    return [
        name
        for name, parsed in resource_map._parsed_resources.items()
        if name in resources and parsed is not None and not isinstance(parsed, str)
    ]


def _physical(resource_map: Any, name: str) -> str:
    return str(getattr(resource_map._parsed_resources.get(name), "physical_resource_id", "") or "")


def _forget_resources(stack: Any) -> None:
    """A rolled-back stack has no resources and no outputs; nothing may create them lazily."""
    from moto.cloudformation.parsing import OutputMap

    for name in list(stack.resource_map._resource_json_map):
        stack.resource_map._parsed_resources.pop(name, None)
    stack.resource_map._resource_json_map = {}
    stack.output_map = OutputMap(stack.resource_map, {}, stack.stack_id)


def _reason(error: Exception) -> str:
    """An error's message as CloudFormation shows it in a resource event."""
    message = getattr(error, "message", None) or getattr(error, "description", None)
    return str(message or error)


def _resource_event(
    stack: Any,
    logical_id: str,
    kind: str,
    status: str,
    reason: str | None = None,
    physical: str | None = None,
) -> Any:
    from moto.cloudformation.models import Event

    if physical is None:
        physical = _physical(stack.resource_map, logical_id)
    return Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=logical_id,
        physical_resource_id=physical,
        resource_type=kind,
        resource_status=status,
        resource_status_reason=reason,
        resource_properties=None,
    )


def _patched_attributes() -> list[tuple[Any, str]]:
    from moto.cloudformation import models, parsing

    return [
        (parsing, "get_model_map"),
        (parsing.ResourceMap, "build_resource_diff"),
        (models.ChangeSet, "diff"),
        (models.CloudFormationBackend, "execute_change_set"),
        (parsing, "parse_and_create_resource"),
        (parsing.ResourceMap, "delete"),
    ]


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """The models and change-set fixes for the duration of a block (in-process tests)."""
    saved = [(owner, name, getattr(owner, name)) for owner, name in _patched_attributes()]
    _install()
    try:
        with lambda_account.installed():
            yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _install() -> None:
    from moto.cloudformation import models, parsing

    model_map = {**parsing.get_model_map(), **MODELS}
    execute = models.CloudFormationBackend.execute_change_set
    create = parsing.parse_and_create_resource
    replacements = [
        lambda: model_map,
        _ChangeSetFixes.build_resource_diff,
        _ChangeSetFixes.change_set_diff,
        lambda backend, change_set_name, stack_name=None: _ChangeSetFixes.execute_change_set(
            execute, backend, change_set_name, stack_name
        ),
        lambda *args, **kwargs: _ChangeSetFixes.create_resource(create, *args, **kwargs),
        _ChangeSetFixes.delete,
    ]
    for (owner, name), value in zip(_patched_attributes(), replacements, strict=True):
        setattr(owner, name, value)


def register() -> None:
    """Add the missing types and the change-set fixes to moto, for good (idempotent)."""
    global _registered  # noqa: PLW0603 - registration is process-wide by nature
    if _registered:
        return
    _install()
    lambda_account.register()
    _registered = True
