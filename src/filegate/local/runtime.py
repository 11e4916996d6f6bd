"""Runs the deployed Lambda function locally, in warm worker processes.

``prepare_function`` fetches the deployed zip of a function, or of one of its versions (the
``live`` alias names one), from the emulator, checks it against its CodeSha256, unpacks it,
and builds the runtime's package directory (only what the AWS Python runtime provides:
boto3, botocore and their dependencies). A ``Worker`` is one
warm execution environment: an isolated interpreter running ``bootstrap``, with the function's
configured environment, handler and timeout, and, when the local stack issues them, the
credentials of a session of the function's execution role (``Credentials``), as Lambda
gives them. A timed-out or crashed invocation is a failed
one, and the worker is replaced, as on Lambda; so is one whose environment fails to start
(``Runtime.InitError``), which never raises out of ``invoke``.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import queue
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filegate.aws import Target
from filegate.errors import LocalStackError
from filegate.local import bootstrap
from filegate.ops.artifacts import artifact_key
from filegate.package import RUNTIME_PROVIDED
from filegate.settings import executable_path
from filegate.storage import BucketOps

INIT_TIMEOUT_SECONDS = 10.0  # Lambda's init phase limit


@dataclass(frozen=True)
class FunctionSpec:
    """A deployed function as the local runtime runs it."""

    name: str
    arn: str
    handler: str
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, str]
    code_dir: Path
    runtime_dir: Path
    version: str = "$LATEST"  # a published version when invoked through an alias
    code_sha256: str = ""  # Lambda's CodeSha256 of the code in code_dir
    role_arn: str = ""  # the execution role

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"


@dataclass
class Invocation:
    """The outcome of one invocation, with the log lines it printed."""

    request_id: str
    ok: bool
    result: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0
    max_memory_mb: int = 0
    init_ms: float | None = None
    timed_out: bool = False
    lines: list[tuple[int, str]] = field(default_factory=list)


def prepare_function(
    target: Target,
    function_name: str,
    code_bucket: str,
    code_key: str | None,
    work_dir: Path,
    qualifier: str | None = None,
) -> FunctionSpec:
    """Fetch, verify and unpack the deployed code of a function (or one of its versions).

    ``code_key`` None: the content-addressed key of the code the function (version) runs,
    ``lambda/<sha256 hex>.zip``, where every local deploy puts it.
    """
    lambda_ = target.client("lambda")
    arguments = {"FunctionName": function_name, **({"Qualifier": qualifier} if qualifier else {})}
    config = lambda_.get_function_configuration(**arguments)
    key = code_key or code_key_for(config.get("CodeSha256", ""))
    data = BucketOps(target.client("s3")).read(code_bucket, key)
    if data is None:
        raise LocalStackError(
            f"s3://{code_bucket}/{key} does not exist: the code of function {function_name}"
            " is missing from the artifact bucket; deploy again"
        )
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    if config.get("CodeSha256") not in (digest, hashlib.sha256(data).hexdigest()):
        raise LocalStackError(
            f"s3://{code_bucket}/{key} does not match the code of function {function_name}"
            f" (CodeSha256 {config.get('CodeSha256')}): deploy again"
        )
    code_dir = work_dir / f"code-{hashlib.sha256(data).hexdigest()[:16]}"
    if not code_dir.exists():
        zipfile.ZipFile(io.BytesIO(data)).extractall(code_dir)
    return FunctionSpec(
        name=function_name,
        arn=config["FunctionArn"],
        handler=config["Handler"],
        timeout_seconds=int(config.get("Timeout", 3)),
        memory_mb=int(config.get("MemorySize", 128)),
        # Lambda hands every variable over as a string; moto keeps Number parameters as ints.
        environment={
            name: str(value)
            for name, value in config.get("Environment", {}).get("Variables", {}).items()
        },
        code_dir=code_dir,
        runtime_dir=runtime_packages_dir(work_dir),
        version=str(config.get("Version", "$LATEST")),
        code_sha256=str(config.get("CodeSha256", "")),
        role_arn=str(config.get("Role", "")),
    )


def code_key_for(code_sha256: str) -> str:
    """The artifact key of a zip from its digest (Lambda's base64 CodeSha256, or hex)."""
    if len(code_sha256) == 64:
        hex_digest = code_sha256
    else:
        try:
            hex_digest = base64.b64decode(code_sha256, validate=True).hex()
        except ValueError as exc:
            raise LocalStackError(f"{code_sha256!r} is not a SHA-256 digest") from exc
    return artifact_key(hex_digest)


def runtime_packages_dir(work_dir: Path) -> Path:
    """A directory holding only the packages the AWS Lambda Python runtime provides."""
    runtime_dir = work_dir / "runtime-packages"
    runtime_dir.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PROVIDED:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise LocalStackError(f"the runtime package {name} is not installed: run `make`")
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        link = runtime_dir / source.name
        if not link.exists():
            link.symlink_to(source)
    return runtime_dir


# The variables Lambda sets from a session of the function's role, for one execution environment.
Credentials = Callable[[FunctionSpec], dict[str, str]]


def worker_environment(
    spec: FunctionSpec, target: Target, log_stream: str, credentials: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment Lambda gives a function, pointed at the emulator, tracing off; with the
    role session's credentials when given, else the target's (any the emulator accepts)."""
    return {
        "PATH": executable_path(),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        **spec.environment,
        **target.local_env(),
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "_HANDLER": spec.handler,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_XRAY_SDK_ENABLED": "false",
        **(credentials or {}),
    }


def new_log_stream(version: str = "$LATEST") -> str:
    return f"{time.strftime('%Y/%m/%d', time.gmtime())}/[{version}]{uuid.uuid4().hex}"


class Worker:
    """One warm execution environment: a bootstrap process and the lines it prints."""

    def __init__(
        self,
        spec: FunctionSpec,
        target: Target,
        credentials: Credentials | None = None,
        max_age_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spec = spec
        self._target = target
        self._credentials = credentials
        # An environment older than this is replaced before its next invocation (a new one gets
        # new credentials): Lambda retires environments too, and their sessions end.
        self._max_age_seconds = max_age_seconds
        self._clock = clock
        self._started_at = 0.0
        self.log_stream = new_log_stream(spec.version)
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._pending_init_ms: float | None = None
        self._lock = threading.Lock()

    @property
    def spec(self) -> FunctionSpec:
        return self._spec

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _bootstrap_arguments(self) -> str:
        spec = self._spec
        return bootstrap.arguments(
            [str(spec.code_dir), str(spec.runtime_dir)],
            spec.handler,
            {
                "function_name": spec.name,
                "function_version": spec.version,
                "invoked_function_arn": spec.arn,
                "memory_limit_in_mb": spec.memory_mb,
                "log_group_name": spec.log_group,
                "log_stream_name": self.log_stream,
            },
        )

    def start(self) -> None:
        self._lines = queue.Queue()
        self._started_at = self._clock()
        session = self._credentials(self._spec) if self._credentials else None
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-u", bootstrap.__file__, self._bootstrap_arguments()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=worker_environment(self._spec, self._target, self.log_stream, session),
            cwd=self._spec.code_dir,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        threading.Thread(target=self._read, args=(self._process,), daemon=True).start()
        ready, _ = self._collect(time.monotonic() + INIT_TIMEOUT_SECONDS)
        if not ready or not ready.get("ready"):
            self.stop()
            raise LocalStackError(f"function {self._spec.name} failed to initialise: {ready}")
        self._pending_init_ms = float(ready["init_ms"])

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _collect(self, deadline: float) -> tuple[dict[str, Any] | None, list[tuple[int, str]]]:
        """Lines until the bootstrap's result line; None when the deadline passes or it dies."""
        lines: list[tuple[int, str]] = []
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None, lines
            if line is None:
                return None, lines
            if line.startswith(bootstrap.RESULT_MARK):
                try:
                    return json.loads(line[len(bootstrap.RESULT_MARK) :]), lines
                except ValueError:
                    return None, lines  # cut off: the process died while it answered
            if line:
                lines.append((int(time.time() * 1000), line))

    def invoke(self, payload: Any) -> Invocation:
        """Run one invocation; a timeout or crash fails it and restarts the worker."""
        with self._lock:
            request_id = str(uuid.uuid4())
            if self._too_old():
                self.stop()
            if self._process is None or self._process.poll() is not None:
                try:
                    self.start()
                except LocalStackError as exc:
                    return self._init_failed(request_id, exc)
            started = time.monotonic()
            deadline_ms = time.time() * 1000 + self._spec.timeout_seconds * 1000
            request = {"request_id": request_id, "payload": payload, "deadline_ms": deadline_ms}
            invocation = Invocation(request_id=request_id, ok=False, init_ms=self._pending_init_ms)
            self._pending_init_ms = None
            try:
                assert self._process is not None
                assert self._process.stdin is not None
                self._process.stdin.write(json.dumps(request) + "\n")
                self._process.stdin.flush()
            except (BrokenPipeError, OSError):
                answer, invocation.lines = None, []
            else:
                answer, invocation.lines = self._collect(
                    time.monotonic() + self._spec.timeout_seconds
                )
            elapsed_ms = (time.monotonic() - started) * 1000
            return self._finish(invocation, answer, elapsed_ms)

    def _too_old(self) -> bool:
        age = self._clock() - self._started_at
        return self._max_age_seconds is not None and age >= self._max_age_seconds

    def _init_failed(self, request_id: str, exc: LocalStackError) -> Invocation:
        """An environment that did not come up (its init raised, timed out or was killed)
        fails the invocation, as on Lambda; the next invocation tries a fresh one."""
        reason = str(exc)
        return Invocation(
            request_id=request_id,
            ok=False,
            error={"errorType": "Runtime.InitError", "errorMessage": reason},
            lines=[(int(time.time() * 1000), f"INIT_REPORT Status: error\t{reason}")],
        )

    def _finish(
        self, invocation: Invocation, answer: dict[str, Any] | None, elapsed_ms: float
    ) -> Invocation:
        if answer is None:
            invocation.timed_out = elapsed_ms >= self._spec.timeout_seconds * 1000
            reason = (
                f"Task timed out after {self._spec.timeout_seconds:.2f} seconds"
                if invocation.timed_out
                else "Runtime exited without providing a reason"
            )
            invocation.error = {"errorType": "Runtime.ExitError", "errorMessage": reason}
            invocation.lines.append((int(time.time() * 1000), reason))
            invocation.duration_ms = elapsed_ms
            self.stop()
            return invocation
        invocation.ok = bool(answer["ok"])
        invocation.result = answer.get("result")
        invocation.error = answer.get("error")
        invocation.duration_ms = float(answer["duration_ms"])
        invocation.max_memory_mb = int(answer["max_memory_mb"])
        return invocation

    def stop_when_idle(self) -> None:
        """Stop once the invocation in flight, if any, has finished (what a code update on
        AWS does to an environment that is busy: it finishes, then is not used again)."""
        with self._lock:
            self.stop()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream:
                stream.close()
