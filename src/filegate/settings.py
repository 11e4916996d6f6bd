"""Every setting filegate reads, resolved in one place.

Order of precedence: explicit argument > environment variable > default. Each environment
variable name is a constant here, and a bad value raises ConfigError naming the variable.
Only the standard library is imported: the Lambda package ships this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from filegate.errors import ConfigError

# --- read by the ingestion Lambda (set by the template) ---
ENV_DDB_TABLE = "DDB_TABLE"
ENV_UPLOAD_BUCKET = "UPLOAD_BUCKET"  # the one bucket whose events it records (the API's too)
ENV_LOG_LEVEL = "LOG_LEVEL"
# the partners table, where a partner's pending-upload count is given back (read by both)
ENV_PARTNERS_TABLE = "PARTNERS_TABLE"

# --- read by the upload API Lambda (set by the template; DDB_TABLE and UPLOAD_BUCKET as above) ---
ENV_MULTIPART_THRESHOLD = "MULTIPART_THRESHOLD_BYTES"
ENV_PRESIGN_EXPIRY = "PRESIGN_EXPIRY_SECONDS"
# the asymmetric KMS key that signs upload receipts (ARN); unset: no receipts (an older stack)
ENV_RECEIPT_KEY_ID = "RECEIPT_KEY_ID"
# --- read by the stale-uploads metric Lambda (set by the template; UPLOAD_BUCKET as above) ---
ENV_STALE_UPLOAD_SECONDS = "STALE_UPLOAD_SECONDS"
# --- read by the verdict-events publisher Lambda (set by the template) ---
ENV_EVENT_BUS_NAME = "EVENT_BUS_NAME"
# the partner webhooks' secrets' name prefix; unset: no webhooks (an older stack)
ENV_WEBHOOK_SECRET_PREFIX = "WEBHOOK_SECRET_PREFIX"  # noqa: S105 (a variable name)

# --- the upload client (`filegate upload`) ---
ENV_API_URL = "FILEGATE_API_URL"

# --- AWS conventions, read by the CLI and the local stack ---
ENV_REGION = "AWS_REGION"
ENV_DEFAULT_REGION = "AWS_DEFAULT_REGION"
ENV_ENDPOINT_URL = "AWS_ENDPOINT_URL"

# --- the local stack ---
ENV_STATE_DIR = "FILEGATE_STATE_DIR"
ENV_LOCAL_PORT = "FILEGATE_LOCAL_PORT"
ENV_LOCAL_API_PORT = "FILEGATE_LOCAL_API_PORT"
ENV_LOCAL_WORKERS = "FILEGATE_LOCAL_WORKERS"
ENV_LOCAL_RETRY_DELAY = "FILEGATE_LOCAL_RETRY_DELAY"
ENV_LOCAL_DYNAMODB_PROCESS = "FILEGATE_LOCAL_DYNAMODB_PROCESS"
ENV_LOCAL_QUEUE_CHANNEL = "FILEGATE_LOCAL_QUEUE_CHANNEL"
ENV_LOCAL_IAM = "FILEGATE_LOCAL_IAM"
ENV_LOCAL_AWS_TIMING = "FILEGATE_LOCAL_AWS_TIMING"
ENV_LOCAL_LOG = "FILEGATE_LOCAL_LOG"  # set by `local up --detach` for its supervisor: its log
ENV_PATH = "PATH"  # the local workers' executable search path, as the caller's

# --- building the Lambda package (package.py) ---
# the interpreter that compiles the zip's bytecode; default: python3.<minor> of the template's
# Runtime on PATH
ENV_BUILD_PYTHON = "FILEGATE_BUILD_PYTHON"
ENV_CACHE_HOME = "XDG_CACHE_HOME"  # the build's bytecode cache lives under it (~/.cache)

DEFAULT_REGION = "eu-central-1"
DEFAULT_STACK_NAME = "s3-lambda-dynamo-stack"
DEFAULT_LOCAL_PORT = 4566
DEFAULT_LOCAL_WORKERS = 5  # Lambda polls an SQS mapping with five concurrent batches at first
DEFAULT_LOCAL_RETRY_DELAY = 2
DEFAULT_MULTIPART_THRESHOLD = 64 * 1024 * 1024
DEFAULT_PRESIGN_EXPIRY = 900
MAX_SINGLE_PUT_BYTES = 5 * 1024**3  # S3 refuses a single PUT above 5 GiB
# SigV4 allows 7 days, but a URL stops working when the signing credentials expire, and the
# upload API signs with its execution role's temporary credentials, whose lifetime Lambda does
# not document ("Services that assume a role, such as the AWS Lambda execution role, don't
# necessarily comply with the role's session duration settings": AWS Knowledge Center, "Why
# is my presigned URL for an Amazon S3 bucket expiring before the expiration time that I
# specified?"). One hour, a role session's default duration; multipart uploads renew their
# part URLs, so a long transfer does not need long URLs.
MAX_PRESIGN_EXPIRY = 3600

LOCAL_BUCKET_NAME = "filegate-uploads-local"
LOCAL_LAMBDA_NAME = "filegate-ingest"
LOCAL_TABLE_NAME = "filegate-ledger"
LOCAL_CODE_BUCKET = "filegate-artifacts-local"
# The emulator accepts any credentials; a URL presigned with these is verified with this same
# value as its secret (local/s3_presign.py). Not secrets.
LOCAL_ACCESS_KEY = "testing"


def _required(env: Mapping[str, str], name: str, hint: str = "set it to a non-empty value") -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is not set: {hint}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"environment variable {name}={value} must be at least {minimum}")
    return value


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"environment variable {name}={raw!r} is not a switch: use 1 or 0")


_INGEST_BUCKET_HINT = (
    "the ingestion function records the events of its stack's upload bucket only, and this"
    " names it; deploy the current template (`filegate deploy`), which sets it"
)


@dataclass(frozen=True)
class IngestSettings:
    """What the ingestion Lambda needs: the ledger table, and the one bucket it records; and
    the partners table, where an upload that leaves PENDING gives its partner's pending count
    back (docs/quotas.md).

    The first two are required. Without PARTNERS_TABLE (a template from before quotas, which
    has no upload holding a count) nothing is given back. A function deployed with new code
    but an older template (no UPLOAD_BUCKET) refuses every invocation with a ConfigError
    naming the variable rather than record events of a bucket it cannot check: the messages
    wait in the queue, then the dead-letter queue, and the Errors alarm fires; `filegate
    deploy` puts the variable there.
    """

    table_name: str
    bucket: str
    partners_table: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestSettings:
        env = os.environ if env is None else env
        return cls(
            table_name=_required(env, ENV_DDB_TABLE),
            bucket=_required(env, ENV_UPLOAD_BUCKET, _INGEST_BUCKET_HINT),
            partners_table=env.get(ENV_PARTNERS_TABLE, "").strip() or None,
        )


def _bounded_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _int(env, name, default, low)
    if value > high:
        raise ConfigError(f"environment variable {name}={value} must be at most {high}")
    return value


@dataclass(frozen=True)
class UploadApiSettings:
    """What the upload API Lambda needs: its tables, the bucket, and the presign policy."""

    table_name: str
    partners_table: str
    bucket: str
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    presign_expiry_seconds: int = DEFAULT_PRESIGN_EXPIRY
    receipt_key_id: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UploadApiSettings:
        env = os.environ if env is None else env
        return cls(
            table_name=_required(env, ENV_DDB_TABLE),
            partners_table=_required(env, ENV_PARTNERS_TABLE),
            bucket=_required(env, ENV_UPLOAD_BUCKET),
            multipart_threshold=_bounded_int(
                env, ENV_MULTIPART_THRESHOLD, DEFAULT_MULTIPART_THRESHOLD, 1, MAX_SINGLE_PUT_BYTES
            ),
            presign_expiry_seconds=_bounded_int(
                env, ENV_PRESIGN_EXPIRY, DEFAULT_PRESIGN_EXPIRY, 1, MAX_PRESIGN_EXPIRY
            ),
            receipt_key_id=env.get(ENV_RECEIPT_KEY_ID, "").strip() or None,
        )


DEFAULT_STALE_UPLOAD_SECONDS = 86_400  # uploads.expiry.DEFAULT_OLDER_THAN


@dataclass(frozen=True)
class StaleUploadsSettings:
    """What the stale-uploads metric Lambda needs: the bucket, and the age that is stale."""

    bucket: str
    stale_after_seconds: int = DEFAULT_STALE_UPLOAD_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StaleUploadsSettings:
        env = os.environ if env is None else env
        return cls(
            bucket=_required(env, ENV_UPLOAD_BUCKET),
            stale_after_seconds=_int(
                env, ENV_STALE_UPLOAD_SECONDS, DEFAULT_STALE_UPLOAD_SECONDS, 1
            ),
        )


@dataclass(frozen=True)
class PublisherSettings:
    """What the verdict-events publisher needs: the EventBridge bus it puts events on, and
    where the partner webhooks' secrets are (None: no webhooks)."""

    event_bus_name: str
    webhook_secret_prefix: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PublisherSettings:
        env = os.environ if env is None else env
        prefix = env.get(ENV_WEBHOOK_SECRET_PREFIX, "").strip() or None
        return cls(_required(env, ENV_EVENT_BUS_NAME), prefix)


def resolve_region(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """--region > AWS_REGION > AWS_DEFAULT_REGION > eu-central-1 (where the pipeline first ran)."""
    env = os.environ if env is None else env
    return explicit or env.get(ENV_REGION) or env.get(ENV_DEFAULT_REGION) or DEFAULT_REGION


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """filegate's state directory (the local stack's state file; `filegate upload`'s resume
    state under uploads/): $FILEGATE_STATE_DIR, else $XDG_STATE_HOME/filegate, else
    ~/.local/state/filegate."""
    env = os.environ if env is None else env
    explicit = env.get(ENV_STATE_DIR)
    if explicit:
        return Path(explicit)
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "filegate"


def upload_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where `filegate upload` keeps the state of multipart uploads in flight, to resume them."""
    return default_state_dir(env) / "uploads"


def upload_api_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The upload API `filegate upload` talks to: --api, else $FILEGATE_API_URL, else None."""
    env = os.environ if env is None else env
    return explicit or env.get(ENV_API_URL) or None


def local_log_file(env: Mapping[str, str] | None = None) -> str:
    """The detached supervisor's log file ($FILEGATE_LOCAL_LOG), or "" in the foreground."""
    return (os.environ if env is None else env).get(ENV_LOCAL_LOG, "")


def executable_path(env: Mapping[str, str] | None = None) -> str:
    """$PATH, for the local workers' environment (a minimal one when unset)."""
    return (os.environ if env is None else env).get(ENV_PATH, "/usr/bin:/bin")


def child_environment(
    without: frozenset[str] = frozenset(), extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """This process's environment for a child process of the local stack, less ``without``,
    plus ``extra``: the one place the whole environment is read."""
    inherited = {k: v for k, v in os.environ.items() if k not in without}
    return {**inherited, **(extra or {})}


def build_python(env: Mapping[str, str] | None = None) -> str | None:
    """The interpreter the package build is told to compile bytecode with, if any."""
    return (os.environ if env is None else env).get(ENV_BUILD_PYTHON, "").strip() or None


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """filegate's cache directory: $XDG_CACHE_HOME/filegate, by default ~/.cache/filegate."""
    root = (os.environ if env is None else env).get(ENV_CACHE_HOME, "").strip()
    return (Path(root) if root else Path.home() / ".cache") / "filegate"


def interpreter_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for another Python interpreter, plus ``extra``: without the
    PYTHON* variables, which are this interpreter's (a 3.11 venv's PYTHONPATH is not a 3.12's)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return {**inherited, **(extra or {})}


@dataclass(frozen=True)
class LocalSettings:
    """How the local stack runs: ports, region, state directory, workers, retry timing, IAM."""

    port: int = DEFAULT_LOCAL_PORT
    region: str = DEFAULT_REGION
    state_dir: Path = Path(".filegate")
    stack_name: str = DEFAULT_STACK_NAME
    workers: int = DEFAULT_LOCAL_WORKERS
    retry_delay_seconds: int = DEFAULT_LOCAL_RETRY_DELAY
    api_port: int = DEFAULT_LOCAL_PORT + 1
    # DynamoDB served by an emulator process of its own (0: the one emulator serves it)
    dynamodb_process: bool = True
    # the event source mapping reads its queue over the emulator's own line (0: the SQS API)
    queue_channel: bool = True
    # the functions run with credentials of their roles, which the emulator enforces (0: not)
    iam: bool = True
    # a failed message comes back after the queue's visibility timeout, as on AWS, instead
    # of after retry_delay_seconds
    aws_timing: bool = False

    @property
    def failed_message_delay(self) -> int | None:
        """Seconds before a failed message is visible again; None: the queue's visibility
        timeout decides, as on AWS."""
        return None if self.aws_timing else self.retry_delay_seconds

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def upload_api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/"

    def to_json(self) -> str:
        """These settings for another process (the detached supervisor)."""
        return json.dumps({**asdict(self), "state_dir": str(self.state_dir)})

    @classmethod
    def from_json(cls, text: str) -> LocalSettings:
        values = json.loads(text)
        return cls(**{**values, "state_dir": Path(values["state_dir"])})

    @classmethod
    def resolve(
        cls,
        port: int | None = None,
        region: str | None = None,
        env: Mapping[str, str] | None = None,
        api_port: int | None = None,
        aws_timing: bool | None = None,
    ) -> LocalSettings:
        env = os.environ if env is None else env
        resolved_port = port or _int(env, ENV_LOCAL_PORT, DEFAULT_LOCAL_PORT, 1)
        resolved_api_port = api_port or _int(env, ENV_LOCAL_API_PORT, resolved_port + 1, 1)
        for value in (resolved_port, resolved_api_port):
            if not 0 < value < 65536:
                raise ConfigError(f"port {value} is out of range: use 1-65535")
        return cls(
            port=resolved_port,
            api_port=resolved_api_port,
            region=resolve_region(region, env),
            state_dir=default_state_dir(env),
            workers=_int(env, ENV_LOCAL_WORKERS, DEFAULT_LOCAL_WORKERS, 1),
            retry_delay_seconds=_int(env, ENV_LOCAL_RETRY_DELAY, DEFAULT_LOCAL_RETRY_DELAY, 0),
            dynamodb_process=_switch(env, ENV_LOCAL_DYNAMODB_PROCESS, default=True),
            queue_channel=_switch(env, ENV_LOCAL_QUEUE_CHANNEL, default=True),
            iam=_switch(env, ENV_LOCAL_IAM, default=True),
            aws_timing=(
                aws_timing
                if aws_timing is not None
                else _switch(env, ENV_LOCAL_AWS_TIMING, default=False)
            ),
        )


# --- the local twin's Lambda account (read by the emulator process) ---
ENV_LOCAL_LAMBDA_CONCURRENCY = "FILEGATE_LOCAL_LAMBDA_CONCURRENCY"
# Lambda's default "Concurrent executions" quota per account and region (Lambda quotas page);
# new accounts may start lower (10 or 50): set the variable to rehearse such an account.
DEFAULT_LAMBDA_CONCURRENCY = 1000


def local_lambda_concurrency(env: Mapping[str, str] | None = None) -> int:
    """The account concurrency limit the local twin's GetAccountSettings reports."""
    env = os.environ if env is None else env
    return _int(env, ENV_LOCAL_LAMBDA_CONCURRENCY, DEFAULT_LAMBDA_CONCURRENCY, 0)


# --- the emulator process: what the local stack tells it, and its switches (local/emulator.py,
# local/patches/) ---
ENV_EMULATOR_DYNAMODB_URL = "FILEGATE_EMULATOR_DYNAMODB_URL"
ENV_EMULATOR_INVOKE_URL = "FILEGATE_EMULATOR_INVOKE_URL"
ENV_EMULATOR_QUEUE_CHANNEL = "FILEGATE_EMULATOR_QUEUE_CHANNEL"
ENV_EMULATOR_QUEUE_CHANNEL_KEY = "FILEGATE_EMULATOR_QUEUE_CHANNEL_KEY"
ENV_EMULATOR_SQS_PATCH = "FILEGATE_EMULATOR_SQS_PATCH"
ENV_EMULATOR_DDB_PATCH = "FILEGATE_EMULATOR_DDB_PATCH"
ENV_EMULATOR_PROFILE = "FILEGATE_EMULATOR_PROFILE"
# the principals file the local stack writes: the function roles' sessions the IAM check knows
ENV_EMULATOR_PRINCIPALS = "FILEGATE_EMULATOR_PRINCIPALS"


@dataclass(frozen=True)
class EmulatorSettings:
    """One emulator process's settings: the local stack's other processes it reaches (the
    DynamoDB process, the invoke server, the queue channel's socket and key), the speed patches'
    switches (on unless set to 0; benchmarks/e2e_burst.py measures them), the profile file and
    the principals file of the function roles' sessions (``local/iam.py``)."""

    dynamodb_url: str | None = None
    invoke_url: str | None = None
    queue_channel: str | None = None
    queue_channel_key: str | None = None
    sqs_patch: bool = True
    ddb_patch: bool = True
    profile: str | None = None
    principals: str | None = None

    @classmethod
    def resolve(cls, env: Mapping[str, str] | None = None) -> EmulatorSettings:
        env = os.environ if env is None else env

        def text(name: str) -> str | None:
            return env.get(name, "").strip() or None

        return cls(
            dynamodb_url=text(ENV_EMULATOR_DYNAMODB_URL),
            invoke_url=text(ENV_EMULATOR_INVOKE_URL),
            queue_channel=text(ENV_EMULATOR_QUEUE_CHANNEL),
            queue_channel_key=text(ENV_EMULATOR_QUEUE_CHANNEL_KEY),
            sqs_patch=_switch(env, ENV_EMULATOR_SQS_PATCH, default=True),
            ddb_patch=_switch(env, ENV_EMULATOR_DDB_PATCH, default=True),
            profile=text(ENV_EMULATOR_PROFILE),
            principals=text(ENV_EMULATOR_PRINCIPALS),
        )
