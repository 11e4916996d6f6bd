"""Releases of the ingestion function: its published versions and the ``live`` alias.

Every ``filegate deploy`` of new code or configuration publishes a version and moves ``live``
to it; the event source mapping invokes ``live``. ``releases`` lists the versions
(``ListVersionsByFunction``, ``GetAlias``); ``rollback`` moves ``live`` to the version before
it, or to a chosen one (``UpdateAlias``): no stack update, no new code, effective for the next
batch the mapping takes. The next deploy of a change publishes a new version and moves
``live`` forward again.

What counts as a change is ``function_fingerprint``: a digest of the function's properties in
the template with every parameter resolved, which ``filegate deploy`` passes as the
``FunctionFingerprint`` parameter into the version's Description (the template publishes a
version when its Description changes). It must change exactly when the version would differ:
Lambda refuses to publish an unchanged function ("A version for this Lambda function
exists"), so properties that belong to the function rather than to a version (reserved
concurrency, tags) are left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import ReleaseError
from filegate.outputs import FUNCTION_NAME
from filegate.stackref import StackRef

LIVE_ALIAS = "live"
FUNCTION_RESOURCE = "IngestFunction"
FINGERPRINT_PARAMETER = "FunctionFingerprint"
FINGERPRINT_LENGTH = 16  # hex digits: the parameter's AllowedPattern, 64 bits
# AWS::Lambda::Function properties that a published version does not hold: changing only
# them must not publish (Lambda would refuse an unchanged version).
UNVERSIONED_PROPERTIES = frozenset({"ReservedConcurrentExecutions", "Tags"})


@dataclass(frozen=True)
class Release:
    """One published version of the function."""

    version: str
    code_sha256: str
    description: str
    last_modified: str
    live: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Releases:
    """Every published version, oldest first, and which one ``live`` points to."""

    function_name: str
    alias: str
    live_version: str
    versions: list[Release]

    def as_dict(self) -> dict[str, Any]:
        return {
            "function_name": self.function_name,
            "alias": self.alias,
            "live_version": self.live_version,
            "versions": [release.as_dict() for release in self.versions],
        }


@dataclass(frozen=True)
class Rollback:
    """What a rollback did: ``live`` moved from one version to another (or stayed)."""

    function_name: str
    alias: str
    from_version: str
    to_version: str

    @property
    def changed(self) -> bool:
        return self.from_version != self.to_version

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


def list_releases(ref: StackRef) -> Releases:
    return ReleaseManager(ref).releases()


def rollback(ref: StackRef, to: str | None = None) -> Rollback:
    """Move ``live`` back; on the local stack, return once its workers run that version."""
    done = ReleaseManager(ref).rollback(to)
    if ref.local is not None:
        ref.local.wait_running(done.to_version)
    return done


class ReleaseManager:
    """Reads and moves the ``live`` alias of the stack's ingestion function."""

    def __init__(self, ref: StackRef, alias: str = LIVE_ALIAS) -> None:
        self._function = ref.output(FUNCTION_NAME)
        self._alias = alias
        self._lambda = ref.client("lambda")

    def releases(self) -> Releases:
        live = self.live_version()
        versions = [
            Release(
                version=str(v["Version"]),
                code_sha256=str(v.get("CodeSha256", "")),
                description=str(v.get("Description", "")),
                last_modified=str(v.get("LastModified", "")),
                live=str(v["Version"]) == live,
            )
            for v in self._published()
        ]
        return Releases(self._function, self._alias, live, versions)

    def live_version(self) -> str:
        try:
            alias = self._lambda.get_alias(FunctionName=self._function, Name=self._alias)
        except (ClientError, BotoCoreError) as exc:
            raise ReleaseError(
                f"function {self._function} has no alias {self._alias}: deploy the current"
                f" template with `filegate deploy` ({exc})"
            ) from exc
        return str(alias["FunctionVersion"])

    def rollback(self, to: str | None = None) -> Rollback:
        """Point ``live`` at ``to``, or at the newest version older than the live one."""
        live = self.live_version()
        numbers = sorted(int(v["Version"]) for v in self._published())
        target = self._previous(live, numbers) if to is None else self._existing(to, numbers)
        if target != live:
            self._move(target)
        return Rollback(self._function, self._alias, live, target)

    def _previous(self, live: str, numbers: list[int]) -> str:
        older = [n for n in numbers if n < int(live)]
        if not older:
            raise ReleaseError(
                f"no version of {self._function} is older than the live one ({live}):"
                " nothing to roll back to; see `filegate releases`"
            )
        return str(older[-1])

    def _existing(self, version: str, numbers: list[int]) -> str:
        if not version.isdigit() or int(version) not in numbers:
            known = ", ".join(map(str, numbers)) or "none"
            raise ReleaseError(
                f"function {self._function} has no version {version!r} (published: {known}):"
                " pick one from `filegate releases`"
            )
        return str(int(version))

    def _move(self, version: str) -> None:
        try:
            self._lambda.update_alias(
                FunctionName=self._function, Name=self._alias, FunctionVersion=version
            )
        except (ClientError, BotoCoreError) as exc:
            raise ReleaseError(
                f"cannot move alias {self._alias} of {self._function} to version {version}: {exc}"
            ) from exc

    def _published(self) -> list[dict[str, Any]]:
        """Every version but $LATEST (which is not a release: it changes with each update)."""
        try:
            pages = self._lambda.get_paginator("list_versions_by_function").paginate(
                FunctionName=self._function
            )
            versions = [v for page in pages for v in page["Versions"]]
        except (ClientError, BotoCoreError) as exc:
            raise ReleaseError(f"cannot list the versions of {self._function}: {exc}") from exc
        published = [v for v in versions if str(v["Version"]).isdigit()]
        return sorted(published, key=lambda v: int(v["Version"]))


# ---------------------------------------------------------------- configuration fingerprint


class _Resolving(Protocol):
    def resolve(self, value: Any) -> Any: ...


ResolverFactory = Callable[
    [Mapping[str, Any], Mapping[str, Any], Callable[[str, str], str]], _Resolving
]


def function_fingerprint(
    template: Mapping[str, Any],
    parameters: Mapping[str, str],
    make_resolver: ResolverFactory,
    function: str = FUNCTION_RESOURCE,
) -> str:
    """A digest of ``function``'s versioned properties, every intrinsic resolved.

    ``parameters`` are the stack's values (the template's defaults fill the rest);
    ``make_resolver`` builds an intrinsic resolver (``template, refs, get_attribute``, as
    ``filegate.template.Resolver``). A reference to another resource resolves to that
    resource's identity: its logical id, type and name properties (``TableName``,
    ``BucketName``...), which is what changes the value the function sees (a table name in
    the environment, a role's ARN) when the resource is renamed or replaced.
    """
    refs = _References(template, parameters)
    resolver = make_resolver(template, refs, lambda logical_id, name: f"{refs[logical_id]}.{name}")
    refs.resolver = resolver
    properties = template["Resources"][function].get("Properties", {})
    versioned = {k: v for k, v in properties.items() if k not in UNVERSIONED_PROPERTIES}
    canonical = json.dumps(_scalars_as_text(resolver.resolve(versioned)), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:FINGERPRINT_LENGTH]


def _scalars_as_text(value: Any) -> Any:
    """Every scalar as CloudFormation passes it on: ``256``, ``"256"`` and a parameter that
    resolves to ``"256"`` are one value, as are ``true`` and ``"true"``."""
    if isinstance(value, dict):
        return {str(key): _scalars_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_scalars_as_text(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _References(Mapping[str, str]):
    """Ref targets for the fingerprint: parameter values, pseudo parameters by name (fixed
    for a stack), resources by identity (computed when first asked for)."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
        declared = template.get("Parameters", {})
        self._values = {n: str(s["Default"]) for n, s in declared.items() if "Default" in s}
        self._values.update({n: str(v) for n, v in parameters.items() if n in declared})
        self._resources: Mapping[str, Any] = template["Resources"]
        self.resolver: _Resolving | None = None

    def __getitem__(self, name: str) -> str:
        if name in self._values:
            return self._values[name]
        if name.startswith("AWS::"):
            return name
        resource = self._resources[name]  # KeyError: the resolver reports the unknown name
        naming = {
            key: value
            for key, value in resource.get("Properties", {}).items()
            if key.endswith("Name") or key == "Path"
        }
        named = self.resolver.resolve(naming) if self.resolver and naming else naming
        return f"{name}({resource['Type']}){json.dumps(named, sort_keys=True, default=str)}"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self._values or name.startswith("AWS::") or name in self._resources
        )

    def __iter__(self) -> Iterator[str]:
        return iter([*self._values, *self._resources])

    def __len__(self) -> int:
        return len(self._values) + len(self._resources)
