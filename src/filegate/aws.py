"""Where boto3 sessions and clients are made, for the CLI, the local stack and ops; and ARNs.

AWS CLI conventions: ``--profile``, ``--region``, ``--endpoint-url``. Against the local stack
the credentials are fixed dummies the emulator accepts. The Lambda code does not use this
module: it builds its own clients from the runtime's environment.

Every ARN filegate builds by hand (outside the template, which says ``${AWS::Partition}``)
comes from ``arn``: its partition follows the region (``aws``, ``aws-cn`` in China,
``aws-us-gov`` in GovCloud...), as botocore's endpoint data says; ``dns_suffix`` is that
partition's domain, for the URLs filegate builds (a template's S3 URL).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import UnknownRegionError

from filegate.settings import LOCAL_ACCESS_KEY

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)

# Making a boto3 Session loads botocore's data files (~0.2 s); one per target is enough. A
# Session is not thread-safe, so clients are made from it under a lock.
_SESSIONS: dict[Target, boto3.Session] = {}
_SESSIONS_LOCK = threading.Lock()
DEFAULT_PARTITION = "aws"


@functools.cache
def partition(region: str) -> str:
    """The ARN partition of ``region``: ``aws``, ``aws-cn``, ``aws-us-gov``...

    From botocore's endpoint data (``get_partition_for_region``); a region it does not know
    (a made-up local one) is taken to be in ``aws``.
    """
    try:
        return str(botocore.session.get_session().get_partition_for_region(region))
    except UnknownRegionError:
        return DEFAULT_PARTITION


def arn(service: str, region: str, resource: str, account: str = "", regional: bool = True) -> str:
    """``arn:<partition>:<service>:<region>:<account>:<resource>`` for a resource in ``region``.

    ``regional=False`` for services whose ARNs name no region (S3 buckets, IAM); the partition
    still follows ``region``.
    """
    return f"arn:{partition(region)}:{service}:{region if regional else ''}:{account}:{resource}"


@functools.cache
def dns_suffix(region: str) -> str:
    """The DNS suffix of ``region``'s partition: ``amazonaws.com``, ``amazonaws.com.cn``...

    From botocore's partition data (``partitions.json``, ``outputs.dnsSuffix``); a region it
    does not know (a made-up local one) is taken to be in ``aws``.
    """
    data = botocore.session.get_session().get_component("data_loader").load_data("partitions")
    wanted = partition(region)
    for entry in data["partitions"]:
        if entry["id"] == wanted:
            return str(entry["outputs"]["dnsSuffix"])
    return "amazonaws.com"


@dataclass(frozen=True)
class Target:
    """Which AWS to talk to: a real account (profile) or an emulator (endpoint_url)."""

    region: str
    endpoint_url: str | None = None
    profile: str | None = None
    # The local stack serves DynamoDB from an emulator process of its own (the main endpoint
    # forwards DynamoDB requests there too); clients that know it go straight to it.
    dynamodb_endpoint_url: str | None = None

    @property
    def is_local(self) -> bool:
        return self.endpoint_url is not None and self.profile is None

    def session(self) -> boto3.Session:
        if self.is_local:
            return boto3.Session(
                aws_access_key_id=LOCAL_ACCESS_KEY,
                aws_secret_access_key=LOCAL_ACCESS_KEY,
                region_name=self.region,
            )
        return boto3.Session(profile_name=self.profile, region_name=self.region)

    def client(self, service: str) -> Any:
        with _SESSIONS_LOCK:
            session: Any = _SESSIONS.get(self)  # the service is a runtime string, not a Literal
            if session is None:
                session = _SESSIONS[self] = self.session()
            return session.client(service, endpoint_url=self._endpoint(service), config=_CONFIG)

    def _endpoint(self, service: str) -> str | None:
        if self.dynamodb_endpoint_url and service in ("dynamodb", "dynamodbstreams"):
            return self.dynamodb_endpoint_url
        return self.endpoint_url

    def local_env(self) -> dict[str, str]:
        """Environment variables that point the AWS CLI and SDKs at this target."""
        env = {"AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        if self.dynamodb_endpoint_url:
            # the SDKs' and the AWS CLI's service-specific endpoint variables
            env["AWS_ENDPOINT_URL_DYNAMODB"] = self.dynamodb_endpoint_url
            env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = self.dynamodb_endpoint_url
        if self.is_local:
            env["AWS_ACCESS_KEY_ID"] = LOCAL_ACCESS_KEY
            env["AWS_SECRET_ACCESS_KEY"] = LOCAL_ACCESS_KEY
        return env
