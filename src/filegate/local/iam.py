"""The function roles' IAM, enforced by the emulator: who may do what, as AWS decides it.

On Lambda a function's code runs with the credentials of a session of its execution role
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), and every call it
makes is authorised against that role's policies. This module gives the local stack the same:

- :class:`RoleSessions` (in the supervisor) assumes a function's role through the emulator's
  STS (moto issues an ``ASIA...`` key, a secret and a session token) and records the key, the
  session's ARN and the role's policy documents in the *principals file* of the stack's work
  directory.
- :class:`IamMiddleware` (in both emulator processes, around moto's WSGI app) finds the access
  key a request was signed with (``Authorization`` header, or ``X-Amz-Credential`` of a
  presigned URL). A key the principals file does not list is not checked: the AWS CLI and
  ``filegate`` commands work with any credentials, as the runbook does. A listed key's request
  is described as IAM sees it (:func:`describe`: actions and resource ARNs for S3, DynamoDB,
  SQS, KMS, EventBridge's PutEvents and Secrets Manager) and evaluated against the role's
  identity policies (:class:`PolicyEvaluator`): an explicit Deny wins, else an Allow is
  needed, else it is denied. A denial answers as the service does (S3: 403 ``AccessDenied``
  XML; DynamoDB and KMS: 400 ``AccessDeniedException`` JSON; SQS: 403 ``AccessDenied``).
- An SQS event source mapping polls with the function's role: :meth:`RoleSessions.mapping_refusal`
  says why Lambda would refuse to create it, and the local stack refuses to start it; a
  DynamoDB stream mapping reads the stream with it (:meth:`RoleSessions.stream_mapping_refusal`).
- S3 answers a GET or HEAD of a missing object with 403, not 404, to a principal without
  ``s3:ListBucket`` on the bucket (S3 API reference, HeadObject and GetObject, "Permissions").

moto has an IAM check of its own (``INITIAL_NO_AUTH_ACTION_COUNT``, ``moto/iam/access_control``)
but it is process-wide (every request, "testing" credentials included, would be checked and
refused), only S3 requests carry a resource ARN (every other service is checked against
``*``), a statement whose ``Condition`` does not match becomes an explicit Deny, and the
DynamoDB process has no IAM state at all. Hence this module, and the principals file both
processes read.

Not modelled (docs/aws-fidelity.md, "IAM"): resource-based policies (bucket, queue and key
policies) for these principals, permissions boundaries, SCPs, session policies and policy
variables. A statement with a ``Condition`` is not evaluated: an Allow with one never applies,
a Deny with one always does (stricter, never looser).
"""

from __future__ import annotations

import ast
import functools
import html
import io
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from filegate.settings import ENV_EMULATOR_PRINCIPALS, MAX_PRESIGN_EXPIRY

logger = logging.getLogger(__name__)

# Set for the emulator processes: the principals file (read in filegate.settings).
ENV_PRINCIPALS = ENV_EMULATOR_PRINCIPALS
PRINCIPALS_FILE = "principals.json"
MAPPING_ACTIONS = ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")
STREAM_MAPPING_ACTIONS = ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams")
# A worker's role session. Lambda gives an execution environment credentials for its lifetime
# and retires environments on its own schedule; the twin's workers are warm for as long as the
# stack runs, so each session lasts 12 hours (IAM's longest role session) and a worker is
# replaced by a fresh environment (a new session) once less than the longest presigned URL's
# lifetime is left: every URL a worker signs stays valid for its whole X-Amz-Expires.
SESSION_SECONDS = 12 * 3600
ENVIRONMENT_MAX_AGE_SECONDS = SESSION_SECONDS - MAX_PRESIGN_EXPIRY

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# --- the principals the emulator issued -------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """A role session the local stack issued: its key, its ARN and its role's policies."""

    access_key_id: str
    arn: str  # arn:<partition>:sts::<account>:assumed-role/<role>/<session>
    account: str
    policies: tuple[str, ...]  # the role's identity policy documents, as JSON

    def to_json(self) -> dict[str, Any]:
        return {"arn": self.arn, "account": self.account, "policies": list(self.policies)}


class PrincipalFile:
    """The principals file as an emulator process reads it: reloaded when it changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: int | None = None
        self._principals: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def get(self, access_key_id: str) -> Principal | None:
        found = self._principals.get(access_key_id)
        if found is None and access_key_id.startswith("ASIA"):  # a session key: maybe new
            self._reload()
            found = self._principals.get(access_key_id)
        return found

    def _reload(self) -> None:
        with self._lock:
            try:
                stamp = self._path.stat().st_mtime_ns
            except FileNotFoundError:
                return
            if stamp == self._stamp:
                return
            document = json.loads(self._path.read_text())
            self._principals = {
                key: Principal(key, entry["arn"], entry["account"], tuple(entry["policies"]))
                for key, entry in document.items()
            }
            self._stamp = stamp


class RoleSessions:
    """Issues role sessions for the functions' workers and records them (the supervisor's end)."""

    def __init__(self, target: Any, path: Path) -> None:
        self._target = target
        self._path = path
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def credentials(self, role_arn: str, session_name: str) -> dict[str, str]:
        """AssumeRole on ``role_arn``: the variables Lambda sets for the function's code."""
        issued = self._target.client("sts").assume_role(
            RoleArn=role_arn,
            RoleSessionName=session_name[:64],
            DurationSeconds=SESSION_SECONDS,
        )
        credentials, user = issued["Credentials"], issued["AssumedRoleUser"]
        principal = Principal(
            access_key_id=credentials["AccessKeyId"],
            arn=user["Arn"],
            account=user["Arn"].split(":")[4],
            policies=tuple(self._role_policies(role_arn.rsplit("/", 1)[-1])),
        )
        with self._lock:  # workers start in parallel; the file is written by one at a time
            self._record(principal)
        return {
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
        }

    def mapping_refusal(self, role_arn: str, queue_arn: str) -> str | None:
        """Why Lambda would refuse an SQS event source mapping for this role, or None.

        The mapping polls with the function's execution role, which needs ReceiveMessage,
        DeleteMessage and GetQueueAttributes on the queue; CreateEventSourceMapping checks it
        (Lambda Developer Guide, "Using Lambda with Amazon SQS", "Execution role permissions").
        """
        evaluator = PolicyEvaluator(self._role_policies(role_arn.rsplit("/", 1)[-1]))
        for action in MAPPING_ACTIONS:
            if evaluator.allowed(f"sqs:{action}", queue_arn):
                return (
                    "InvalidParameterValueException: The provided execution role does not have"
                    f" permissions to call {action} on SQS ({role_arn}, {queue_arn})"
                )
        return None

    def stream_mapping_refusal(self, role_arn: str, stream_arn: str) -> str | None:
        """Why Lambda would refuse a DynamoDB stream mapping for this role, or None: the
        mapping reads the stream with the function's role (DynamoDB Developer Guide, "IAM
        policy to allow an AWS Lambda function to access DynamoDB stream records")."""
        evaluator = PolicyEvaluator(self._role_policies(role_arn.rsplit("/", 1)[-1]))
        for action in STREAM_MAPPING_ACTIONS:
            if evaluator.allowed(f"dynamodb:{action}", stream_arn):
                return (
                    f"InvalidParameterValueException: Cannot access stream {stream_arn}. Please"
                    " ensure the role can perform the GetRecords, GetShardIterator,"
                    " DescribeStream, and ListStreams Actions on your stream in IAM"
                    f" ({role_arn})"
                )
        return None

    def _role_policies(self, role_name: str) -> Iterator[str]:
        iam = self._target.client("iam")
        for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
            yield _as_json(document)
        attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
        for policy in attached:
            version = iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
            found = iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=version)
            yield _as_json(found["PolicyVersion"]["Document"])

    def _record(self, principal: Principal) -> None:
        document = json.loads(self._path.read_text()) if self._path.exists() else {}
        document[principal.access_key_id] = principal.to_json()
        staging = self._path.with_suffix(".tmp")
        staging.write_text(json.dumps(document))
        staging.replace(self._path)  # readers never see half a file


def _as_json(document: Any) -> str:
    """A policy document as JSON. boto3 decodes the URL-encoded document into a dict, except
    that moto 5.2.5 stores a CloudFormation role's inline policy as Python's repr of the dict,
    which boto3 hands back as that string."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            document = ast.literal_eval(document)
    return json.dumps(document)


# --- policy evaluation --------------------------------------------------------------------------


def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters, ``?`` any one character."""
    regex = re.escape(text).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(f"^{regex}$", re.IGNORECASE if ignore_case else 0)


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


@dataclass(frozen=True)
class _Statement:
    allow: bool
    actions: tuple[re.Pattern[str], ...]
    not_action: bool
    resources: tuple[re.Pattern[str], ...]
    not_resource: bool
    conditional: bool

    @classmethod
    def parse(cls, statement: Mapping[str, Any]) -> _Statement:
        not_action, not_resource = "NotAction" in statement, "NotResource" in statement
        actions = _listed(statement.get("NotAction" if not_action else "Action"))
        resources = _listed(statement.get("NotResource" if not_resource else "Resource"))
        return cls(
            allow=statement.get("Effect") == "Allow",
            actions=tuple(_pattern(a, ignore_case=True) for a in actions),
            not_action=not_action,
            resources=tuple(_pattern(r, ignore_case=False) for r in resources),
            not_resource=not_resource,
            conditional=bool(statement.get("Condition")),
        )

    def applies(self, action: str, resource: str) -> bool:
        acts = any(p.match(action) for p in self.actions) != self.not_action
        on = any(p.match(resource) for p in self.resources) != self.not_resource
        # Conditions are not evaluated: an Allow with one never applies, a Deny always does.
        return acts and on and (not self.conditional or not self.allow)


class PolicyEvaluator:
    """A principal's identity policies: Deny wins, else an Allow is needed (IAM's logic,
    "Policy evaluation logic", IAM User Guide). Answers are cached per (action, resource)."""

    def __init__(self, policies: Iterable[str]) -> None:
        statements: list[_Statement] = []
        for policy in policies:
            for statement in _listed_statements(json.loads(policy).get("Statement", [])):
                statements.append(_Statement.parse(statement))
        self._statements = tuple(statements)
        self.allowed = functools.lru_cache(maxsize=4096)(self._allowed)

    def _allowed(self, action: str, resource: str) -> str | None:
        """None when allowed; else why not ("explicit" or "implicit" deny)."""
        applying = [s for s in self._statements if s.applies(action, resource)]
        if any(not s.allow for s in applying):
            return "explicit"
        return None if applying else "implicit"


def _listed_statements(value: Any) -> list[Mapping[str, Any]]:
    return [value] if isinstance(value, dict) else list(value)


# --- requests as IAM sees them ------------------------------------------------------------------


@dataclass(frozen=True)
class Described:
    """One request: its service, the (action, resource) pairs IAM checks, and for an S3 object
    read, the bucket whose s3:ListBucket decides between 404 and 403."""

    service: str
    checks: tuple[tuple[str, str], ...]
    protocol: str  # "s3", "json" or "query": how a denial is written
    missing_object_bucket: str | None = None


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def credential_scope(environ: Mapping[str, Any]) -> list[str] | None:
    """[access key, date, region, service, "aws4_request"] of a SigV4 request or URL."""
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    if "Credential=" in header:
        scope = header.partition("Credential=")[2].partition(",")[0].strip()
        return scope.split("/")
    query = str(environ.get("QUERY_STRING", ""))
    if "X-Amz-Credential=" in query:
        values = parse_qs(query).get("X-Amz-Credential")
        return values[0].split("/") if values else None
    # SigV2 (S3 only): a header "AWS <key>:<signature>" or a presigned URL's AWSAccessKeyId;
    # its scope names no region (the partition is then "aws").
    if header.startswith("AWS "):
        return [header[4:].partition(":")[0], "", "", "s3"]
    if "AWSAccessKeyId=" in query:
        values = parse_qs(query).get("AWSAccessKeyId")
        return [values[0], "", "", "s3"] if values else None
    return None


def describe(environ: dict[str, Any], principal: Principal, scope: list[str]) -> Described:
    region, service = (scope[2] or "us-east-1", scope[3]) if len(scope) >= 4 else ("", "")
    arn = _Arns(partition(region), region, principal.account)
    if service == "s3":
        return _describe_s3(environ, arn)
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    body = _body(environ)
    if target:
        operation = target.rsplit(".", 1)[-1]
        request = json.loads(body or b"{}")
        checks = _JSON_SERVICES.get(service, _any_resource)(operation, request, arn)
        return Described(service, tuple((f"{service}:{a}", r) for a, r in checks), "json")
    form = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    form.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
    operation = form.get("Action", "")
    checks = _QUERY_SERVICES.get(service, _any_resource)(operation, form, arn)
    return Described(service, tuple((f"{service}:{a}", r) for a, r in checks), "query")


def _body(environ: dict[str, Any]) -> bytes:
    """The request's body, read once and put back for the app."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body: bytes = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


@dataclass(frozen=True)
class _Arns:
    partition: str
    region: str
    account: str

    def of(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"


Checks = list[tuple[str, str]]


def _any_resource(operation: str, _: Mapping[str, Any], __: _Arns) -> Checks:
    # A service this stack's code does not call: checked against statements for "*" only.
    return [(operation, "*")]


# S3: which action authorises an operation ("Required permissions for Amazon S3 API
# operations", S3 User Guide); the sub-resource in the query string names most of them.
_OBJECT_SUBRESOURCE = {
    ("GET", "tagging"): "GetObjectTagging",
    ("PUT", "tagging"): "PutObjectTagging",
    ("DELETE", "tagging"): "DeleteObjectTagging",
    ("GET", "acl"): "GetObjectAcl",
    ("PUT", "acl"): "PutObjectAcl",
    ("GET", "attributes"): "GetObjectAttributes",
    ("GET", "retention"): "GetObjectRetention",
    ("PUT", "retention"): "PutObjectRetention",
    ("GET", "legal-hold"): "GetObjectLegalHold",
    ("PUT", "legal-hold"): "PutObjectLegalHold",
    ("POST", "restore"): "RestoreObject",
    ("GET", "uploadId"): "ListMultipartUploadParts",
    ("DELETE", "uploadId"): "AbortMultipartUpload",
    ("POST", "uploads"): "PutObject",  # CreateMultipartUpload
    ("POST", "uploadId"): "PutObject",  # CompleteMultipartUpload
    ("PUT", "uploadId"): "PutObject",  # UploadPart (UploadPartCopy also reads its source)
}
_BUCKET_SUBRESOURCE = {
    ("GET", "versions"): "ListBucketVersions",
    ("GET", "uploads"): "ListBucketMultipartUploads",
    ("GET", "location"): "GetBucketLocation",
    ("GET", "notification"): "GetBucketNotification",
    ("PUT", "notification"): "PutBucketNotification",
    ("GET", "policy"): "GetBucketPolicy",
    ("PUT", "policy"): "PutBucketPolicy",
    ("DELETE", "policy"): "DeleteBucketPolicy",
    ("GET", "versioning"): "GetBucketVersioning",
    ("PUT", "versioning"): "PutBucketVersioning",
    ("GET", "cors"): "GetBucketCORS",
    ("PUT", "cors"): "PutBucketCORS",
    ("POST", "delete"): "DeleteObject",  # DeleteObjects: each key's DeleteObject
}


def _describe_s3(environ: dict[str, Any], arn: _Arns) -> Described:
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    bucket, key = _bucket_and_key(environ)
    base = f"arn:{arn.partition}:s3:::"
    if not bucket:
        return Described("s3", (("s3:ListAllMyBuckets", "*"),), "s3")
    if key is None:
        action = _bucket_action(method, query)
        resource = f"{base}{bucket}/*" if action == "DeleteObject" else f"{base}{bucket}"
        return Described("s3", ((f"s3:{action}", resource),), "s3")
    checks = [(f"s3:{_object_action(method, query)}", f"{base}{bucket}/{key}")]
    source = environ.get("HTTP_X_AMZ_COPY_SOURCE")
    if source:  # CopyObject and UploadPartCopy read their source
        source_path = unquote(str(source).split("?")[0]).lstrip("/")
        checks.append(("s3:GetObject", f"{base}{source_path}"))
    reads = method in ("GET", "HEAD") and "uploadId" not in query
    return Described("s3", tuple(checks), "s3", bucket if reads else None)


def _bucket_and_key(environ: Mapping[str, Any]) -> tuple[str, str | None]:
    """Path-style (``/bucket/key``) or virtual-hosted (``bucket.s3.<region>.amazonaws.com``)."""
    path = str(environ.get("PATH_INFO", "/")).encode("latin-1").decode("utf-8", "replace")
    host = str(environ.get("HTTP_HOST", "")).split(":")[0]
    virtual = re.match(r"^(.+?)\.s3[.-]", host) or re.match(r"^(.+)\.localhost$", host)
    if virtual:
        bucket, key = virtual.group(1), path.lstrip("/")
    else:
        bucket, _, key = path.lstrip("/").partition("/")
    return bucket, (key or None)


def _object_action(method: str, query: Mapping[str, Any]) -> str:
    for (verb, name), action in _OBJECT_SUBRESOURCE.items():
        if verb == method and name in query:
            return action
    versioned = "versionId" in query
    if method in ("GET", "HEAD"):
        return "GetObjectVersion" if versioned else "GetObject"
    if method == "DELETE":
        return "DeleteObjectVersion" if versioned else "DeleteObject"
    return "PutObject"


def _bucket_action(method: str, query: Mapping[str, Any]) -> str:
    for (verb, name), action in _BUCKET_SUBRESOURCE.items():
        if verb == method and name in query:
            return action
    if method in ("GET", "HEAD"):
        if query and "list-type" not in query and "prefix" not in query:
            return f"GetBucket{next(iter(query)).title().replace('-', '')}"
        return "ListBucket"  # ListObjects(V2) and HeadBucket
    if method == "PUT":
        return f"PutBucket{next(iter(query)).title().replace('-', '')}" if query else "CreateBucket"
    if method == "DELETE":
        return "DeleteBucket"
    return "PutObject"  # POST to a bucket: a browser-form upload


# DynamoDB: each table (and index) a request names is a resource ("Actions, resources, and
# condition keys for Amazon DynamoDB", Service Authorization Reference).
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _dynamodb(operation: str, request: Mapping[str, Any], arn: _Arns) -> Checks:
    def table(name: str, index: str | None = None) -> str:
        base = name if name.startswith("arn:") else arn.of("dynamodb", f"table/{name}")
        return f"{base}/index/{index}" if index else base

    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(operation, table(name)) for name in request.get("RequestItems", {})]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        checks = []
        for item in request.get("TransactItems", []):
            for kind, body in item.items():
                checks.append((_TRANSACT_ACTIONS.get(kind, kind), table(body["TableName"])))
        return checks
    if "TableName" in request:
        return [(operation, table(request["TableName"], request.get("IndexName")))]
    if "StreamArn" in request:
        return [(operation, str(request["StreamArn"]))]
    return [(operation, "*")]


def _sqs_queue_arn(values: Mapping[str, Any], arn: _Arns) -> str:
    url = values.get("QueueUrl")
    if url:
        account, name = urlsplit(str(url)).path.strip("/").split("/")[-2:]
        return f"arn:{arn.partition}:sqs:{arn.region}:{account}:{name}"
    if values.get("QueueName"):
        return arn.of("sqs", str(values["QueueName"]))
    return "*"


def _sqs(operation: str, values: Mapping[str, Any], arn: _Arns) -> Checks:
    # A batch call is authorised by its single action (SQS Developer Guide, "Amazon SQS API
    # permissions: Actions and resource reference").
    action = operation.removesuffix("Batch")
    return [(action, _sqs_queue_arn(values, arn))]


def _kms(operation: str, request: Mapping[str, Any], arn: _Arns) -> Checks:
    key = str(request.get("KeyId", ""))
    if key.startswith("arn:"):
        return [(operation, key)]
    if key.startswith("alias/"):
        return [(operation, arn.of("kms", key))]
    return [(operation, arn.of("kms", f"key/{key}") if key else "*")]


def _events(operation: str, request: Mapping[str, Any], arn: _Arns) -> Checks:
    # PutEvents is authorised on each entry's bus; no name is the account's default bus
    # ("Actions, resources, and condition keys for Amazon EventBridge").
    if operation != "PutEvents":
        return [(operation, "*")]
    buses = {str(entry.get("EventBusName") or "default") for entry in request.get("Entries", [])}
    return [
        (operation, bus if bus.startswith("arn:") else arn.of("events", f"event-bus/{bus}"))
        for bus in sorted(buses)
    ]


def _secretsmanager(operation: str, request: Mapping[str, Any], arn: _Arns) -> Checks:
    # A secret is named by its name or its ARN; a policy's ARN pattern matches the name part
    # (AWS's ARN adds "-" and 6 random characters, which a "<prefix>*" pattern also covers).
    secret = str(request.get("SecretId") or request.get("Name") or "")
    if not secret:
        return [(operation, "*")]
    return [
        (
            operation,
            secret if secret.startswith("arn:") else arn.of("secretsmanager", f"secret:{secret}"),
        )
    ]


def _sts(operation: str, _: Mapping[str, Any], __: _Arns) -> Checks:
    # GetCallerIdentity needs no permission (STS API reference, GetCallerIdentity).
    return [] if operation == "GetCallerIdentity" else [(operation, "*")]


_JSON_SERVICES: dict[str, Callable[[str, Mapping[str, Any], _Arns], Checks]] = {
    "dynamodb": _dynamodb,
    "sqs": _sqs,
    "kms": _kms,
    "sts": _sts,
    "events": _events,
    "secretsmanager": _secretsmanager,
}
_QUERY_SERVICES: dict[str, Callable[[str, Mapping[str, Any], _Arns], Checks]] = {
    "sqs": _sqs,
    "sts": _sts,
}


# --- the middleware -----------------------------------------------------------------------------


class IamMiddleware:
    """Wraps moto's WSGI app: requests signed with an issued role key are authorised first."""

    def __init__(self, app: WsgiApp, principals: PrincipalFile) -> None:
        self._app = app
        self._principals = principals
        self._evaluators: dict[tuple[str, ...], PolicyEvaluator] = {}

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        scope = credential_scope(environ)
        principal = self._principals.get(scope[0]) if scope else None
        if principal is None or scope is None:
            return self._app(environ, start_response)
        described = describe(environ, principal, scope)
        evaluator = self._evaluator(principal)
        for action, resource in described.checks:
            why = evaluator.allowed(action, resource)
            if why:
                return _denied(environ, start_response, described, principal, action, resource, why)
        if described.missing_object_bucket is None:
            return self._app(environ, start_response)
        bucket_arn = f"arn:{partition(scope[2] or '')}:s3:::{described.missing_object_bucket}"
        if evaluator.allowed("s3:ListBucket", bucket_arn) is None:
            return self._app(environ, start_response)
        return self._hide_missing(environ, start_response, described, principal)

    def _evaluator(self, principal: Principal) -> PolicyEvaluator:
        evaluator = self._evaluators.get(principal.policies)
        if evaluator is None:
            evaluator = self._evaluators[principal.policies] = PolicyEvaluator(principal.policies)
        return evaluator

    def _hide_missing(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        described: Described,
        principal: Principal,
    ) -> Iterable[bytes]:
        """Without s3:ListBucket, a missing object is a 403: S3 does not say it is missing."""
        answer: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status, headers]
            return lambda data: None

        body = self._app(environ, capture)
        if not answer or not str(answer[0]).startswith("404"):
            start_response(*answer)
            return body
        if hasattr(body, "close"):
            body.close()
        action, resource = described.checks[0]
        return _denied(environ, start_response, described, principal, action, resource, "list")


def _denied(
    environ: Mapping[str, Any],
    start_response: Callable[..., Any],
    described: Described,
    principal: Principal,
    action: str,
    resource: str,
    why: str,
) -> list[bytes]:
    because = {
        "explicit": "with an explicit deny in an identity-based policy",
        "implicit": f"because no identity-based policy allows the {action} action",
        "list": "because no identity-based policy allows the s3:ListBucket action",
    }[why]
    message = (
        f"User: {principal.arn} is not authorized to perform: {action} on resource:"
        f' "{resource}" {because}'
    )
    request_id = uuid.uuid4().hex.upper()
    logger.info("IAM denied %s on %s to %s", action, resource, principal.arn)
    if described.protocol == "s3":
        status, content_type = "403 Forbidden", "application/xml"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            f"<Message>{_xml(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
    elif described.service == "sqs":
        status, content_type = "403 Forbidden", _sqs_content_type(described)
        body = _sqs_denial(described, message, request_id)
    elif described.protocol == "json":
        status, content_type = "400 Bad Request", "application/x-amz-json-1.0"
        body = json.dumps({"__type": _json_error_type(described), "message": message}).encode()
    else:
        status, content_type = "403 Forbidden", "text/xml"
        body = _query_denial(message, request_id)
    headers = [
        ("Content-Type", content_type),
        ("x-amzn-RequestId", request_id),
        ("x-amz-request-id", request_id),
    ]
    if described.service == "sqs" and described.protocol == "json":
        headers.append(("x-amzn-query-error", "AccessDenied;Sender"))
    if environ.get("REQUEST_METHOD") == "HEAD":
        body = b""  # a HEAD answer has no body: the client sees only "403 Forbidden"
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _json_error_type(described: Described) -> str:
    if described.service == "dynamodb":
        return "com.amazon.coral.service#AccessDeniedException"
    return "AccessDeniedException"


def _sqs_content_type(described: Described) -> str:
    return "application/x-amz-json-1.0" if described.protocol == "json" else "text/xml"


def _sqs_denial(described: Described, message: str, request_id: str) -> bytes:
    if described.protocol == "json":
        return json.dumps({"__type": "com.amazonaws.sqs#AccessDenied", "message": message}).encode()
    return _query_denial(message, request_id)


def _query_denial(message: str, request_id: str) -> bytes:
    return (
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
        f"<Message>{_xml(message)}</Message></Error><RequestId>{request_id}</RequestId>"
        "</ErrorResponse>"
    ).encode()


def _xml(text: str) -> str:
    return html.escape(text, quote=True)
