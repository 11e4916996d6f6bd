"""What filegate's middleware reads from moto's backends: the keys the emulator issued and the
region of each bucket. The one place the presigned-request check (``s3_presign``) touches moto:
it reads these, nothing else of moto's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from filegate.settings import LOCAL_ACCESS_KEY


@dataclass(frozen=True)
class SigningKey:
    """What the emulator knows of an access key: its secret and, for STS, its session."""

    secret: str
    session_token: str | None = None
    expiration: datetime | None = None
    active: bool = True


def emulator_key(access_key_id: str) -> SigningKey | None:
    """The key as the emulator issued it (STS session or IAM user), or the fixed local key."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for backend in _backends(sts_backends):
        for session in list(backend.assumed_roles):
            if session.access_key_id == access_key_id:
                return SigningKey(
                    session.secret_access_key, session.session_token, _aware(session.expiration)
                )
    for backend in _backends(iam_backends):
        issued = backend.access_keys.get(access_key_id)
        if issued is not None and issued.role_arn is None:
            return SigningKey(issued.secret_access_key, active=issued.status == "Active")
    if access_key_id == LOCAL_ACCESS_KEY:
        return SigningKey(LOCAL_ACCESS_KEY)
    return None


def emulator_bucket_region(bucket: str) -> str | None:
    """The region the emulator created ``bucket`` in; ``None`` when it has no such bucket."""
    from moto.s3.models import s3_backends

    for backend in _backends(s3_backends):
        found = backend.buckets.get(bucket)
        if found is not None:
            return str(found.region_name)
    return None


def _backends(backend_dict: Any) -> Iterator[Any]:
    """Every backend already created (per account and partition), without creating any."""
    for account in list(backend_dict.values()):
        yield from list(account.values())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
