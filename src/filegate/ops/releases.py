"""Releases of the ingestion function: its published versions and the ``live`` alias.

Every ``filegate deploy`` of new code publishes a version and moves ``live`` to it; the event
source mapping invokes ``live``. ``releases`` lists the versions (``ListVersionsByFunction``,
``GetAlias``); ``rollback`` moves ``live`` to the version before it, or to a chosen one
(``UpdateAlias``): no stack update, no new code, effective for the next batch the mapping
takes. The next deploy of new code publishes a new version and moves ``live`` forward again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import ReleaseError
from filegate.stackref import StackRef

LIVE_ALIAS = "live"
FUNCTION_OUTPUT = "FunctionName"


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
        from filegate.local.state import wait_running

        wait_running(ref.local, done.to_version)
    return done


class ReleaseManager:
    """Reads and moves the ``live`` alias of the stack's ingestion function."""

    def __init__(self, ref: StackRef, alias: str = LIVE_ALIAS) -> None:
        self._function = ref.output(FUNCTION_OUTPUT)
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
