"""CloudFormation the emulator lacks: resource types, and the two seams change sets need.

moto 5.2.5 has no CloudFormation model for ``AWS::Lambda::Url`` or ``AWS::Lambda::Alias``, and
its ``AWS::Lambda::Version`` cannot be updated. The models here build on moto's own Lambda
backend: ``FunctionUrl`` (``create_function_url_config``; the local gateway serves the URL),
``FunctionVersion`` (``publish_version``; an update publishes a new version and keeps the old
one, as a replacement under ``UpdateReplacePolicy: Retain`` does) and ``FunctionAlias``
(``create_alias`` / ``update_alias``). ``KmsKey`` creates an ``AWS::KMS::Key`` with the
``KeySpec`` and ``KeyUsage`` the template gives (moto's model makes every key symmetric).

Change sets are not here: ``cfn_change_sets`` serves them around moto's app and executes them
through moto's CreateStack / UpdateStack. Two seams stay for it, each because no public API can
stand in: ``parse_and_create_resource`` records on the stack's resource map which resource
failed a create and why (read, with what the create made, by ``failed_create``, for the
rollback's events: moto's failed CreateStack answers the resource's error without naming it,
and describing the half-made stack would have moto create the rest of it); and
``ResourceMap.delete`` keeps ``RetainExceptOnCreate`` resources on a stack delete (moto knew
only ``Retain``), except on a failed create's rollback, as AWS documents (CloudFormation
template reference, "DeletionPolicy attribute"): DeleteStack keeps a resource only through
``RetainResources``, which is for a stack in DELETE_FAILED (API reference, DeleteStack).

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

_registered = False
_FAILED = "_filegate_failed"  # set on a resource map whose resource failed to create
_ROLLING_BACK = "_filegate_rolling_back"  # set on one whose failed create is rolled back


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


def _naming_failures(original: Any) -> Any:
    """moto's ``parse_and_create_resource``, recording on the stack's resource map which
    resource failed and why (the innermost: a reference creates what it refers to first)."""

    def create(
        logical_id: str, resource_json: Any, resource_map: Any, *args: Any, **kw: Any
    ) -> Any:
        try:
            return original(logical_id, resource_json, resource_map, *args, **kw)
        except Exception as exc:
            if getattr(resource_map, _FAILED, None) is None:
                failed = (logical_id, str(resource_json.get("Type", "")), _reason(exc))
                setattr(resource_map, _FAILED, failed)
            raise

    return create


def _keeping_retain_except_on_create(original: Any) -> Any:
    """moto's ``ResourceMap.delete``, which keeps only ``Retain`` resources, keeping
    ``RetainExceptOnCreate`` ones too unless the delete is a failed create's rollback."""

    def delete(resource_map: Any) -> None:
        if getattr(resource_map, _ROLLING_BACK, False):
            original(resource_map)
            return
        resources = resource_map._resource_json_map
        resource_map._resource_json_map = {
            name: {**resource, "DeletionPolicy": "Retain"}
            if resource.get("DeletionPolicy") == "RetainExceptOnCreate"
            else resource
            for name, resource in resources.items()
        }
        try:
            original(resource_map)
        finally:
            resource_map._resource_json_map = resources

    return delete


def failed_create(
    account_id: str, region: str, stack_id: str
) -> tuple[tuple[str, str, str] | None, list[tuple[str, str, str]]]:
    """A stack whose create failed: the resource that failed (logical id, type, reason), and
    what the create made, in order (logical id, type, physical id). Read from moto's state
    without resolving anything (which would have moto create the rest). The stack's next
    delete is then the create's rollback, which deletes ``RetainExceptOnCreate`` resources."""
    from moto.cloudformation.models import cloudformation_backends

    stack = cloudformation_backends[account_id][region].stacks.get(stack_id)
    if stack is None:
        return None, []
    resource_map = stack.resource_map
    resources = resource_map._resource_json_map
    created = [
        (name, str(resources[name]["Type"]), str(getattr(parsed, "physical_resource_id", "") or ""))
        for name, parsed in resource_map._parsed_resources.items()
        if name in resources and parsed is not None and not isinstance(parsed, str)
    ]
    setattr(resource_map, _ROLLING_BACK, True)  # the delete that follows is the rollback
    return getattr(resource_map, _FAILED, None), created


def _reason(error: Exception) -> str:
    """An error's message as CloudFormation shows it in a resource event."""
    message = getattr(error, "message", None) or getattr(error, "description", None)
    return str(message or error)


def _patched_attributes() -> list[tuple[Any, str]]:
    from moto.cloudformation import parsing

    return [
        (parsing, "get_model_map"),
        (parsing, "parse_and_create_resource"),
        (parsing.ResourceMap, "delete"),
    ]


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """The models and seams for the duration of a block (in-process tests)."""
    saved = [(owner, name, getattr(owner, name)) for owner, name in _patched_attributes()]
    _install()
    try:
        with lambda_account.installed():
            yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _install() -> None:
    from moto.cloudformation import parsing

    model_map = {**parsing.get_model_map(), **MODELS}
    replacements = [
        lambda: model_map,
        _naming_failures(parsing.parse_and_create_resource),
        _keeping_retain_except_on_create(parsing.ResourceMap.delete),
    ]
    for (owner, name), value in zip(_patched_attributes(), replacements, strict=True):
        setattr(owner, name, value)


def register() -> None:
    """Add the missing types and the seams to moto, for good (idempotent)."""
    global _registered  # noqa: PLW0603 - registration is process-wide by nature
    if _registered:
        return
    _install()
    lambda_account.register()
    _registered = True
