"""Starts, describes and stops the whole local stack; owns its state file.

``LocalStack.start`` runs the emulator as a child process on 127.0.0.1 (and DynamoDB's own
emulator process, which the endpoint forwards DynamoDB requests to), builds the Lambda
package, deploys the template into the emulator (``provision``), starts warm workers running
the deployed zip (``runtime``) fed by the local event source mapping (``esm``), serves the
Lambda Invoke API on those workers (``invoke``), evaluates the alarms (``alarms``), and writes
the state file that ``status``, ``env`` and ``down`` read. While it runs, ``follower`` keeps
the workers on what a deploy or rollback says should run (the ``live`` alias's version for the
mapping, the current code for function URLs), and ``running.json`` says which version the
mapping's workers run. ``stop`` undoes all of it: no process is left behind. Run as
``python -m filegate.local.stack`` it is the detached supervisor that
``filegate local up --detach`` starts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filegate import package
from filegate.aws import Target
from filegate.errors import LocalStackError, PortInUseError
from filegate.local.alarms import AlarmEvaluator, subscribe_outbox
from filegate.local.cloudwatch import Telemetry
from filegate.local.esm import EventSourceMapping
from filegate.local.follower import CodeFollower
from filegate.local.gateway import FunctionUrlGateway
from filegate.local.invoke import LATEST, InvokeServer, LocalFunctions
from filegate.local.patches import ENV_DYNAMODB_URL
from filegate.local.provision import Deployment, Provisioner, StackParameters
from filegate.local.runtime import FunctionSpec, Worker, code_key_for, prepare_function
from filegate.settings import (
    LOCAL_BUCKET_NAME,
    LOCAL_CODE_BUCKET,
    LOCAL_LAMBDA_NAME,
    LOCAL_TABLE_NAME,
    LocalSettings,
)

log = logging.getLogger(__name__)

STATE_FILE = "local.json"
RUNNING_FILE = "running.json"  # which version of the mapped function the workers run
EMULATOR_START_TIMEOUT = 30.0
DETACHED_START_TIMEOUT = 180.0
STOP_TIMEOUT = 30.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LocalState:
    """What a running local stack tells other commands (the state file's content)."""

    pid: int
    port: int
    endpoint_url: str
    region: str
    stack_name: str
    outputs: dict[str, str]
    started_at: str
    log_file: str = ""
    urls: dict[str, str] = field(default_factory=dict)
    dynamodb_endpoint_url: str = ""  # DynamoDB's own emulator process; the endpoint forwards to it

    def env(self) -> dict[str, Any]:
        """The `filegate local env` document: connection facts and every stack output.

        A function URL's output names the local gateway that serves it, and is also given
        in snake case (``UploadApiUrl`` -> ``upload_api_url``).
        """
        served = {_snake(name): url for name, url in self.urls.items()}
        return {
            "endpoint_url": self.endpoint_url,
            **(
                {"dynamodb_endpoint_url": self.dynamodb_endpoint_url}
                if self.dynamodb_endpoint_url
                else {}
            ),
            "region": self.region,
            "stack_name": self.stack_name,
            **served,
            **self.outputs,
            **self.urls,
        }

    @property
    def target(self) -> Target:
        return Target(
            region=self.region,
            endpoint_url=self.endpoint_url,
            dynamodb_endpoint_url=self.dynamodb_endpoint_url or None,
        )


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def state_file(settings: LocalSettings) -> Path:
    return settings.state_dir / STATE_FILE


def read_state(settings: LocalSettings) -> LocalState | None:
    path = state_file(settings)
    try:
        return LocalState(**json.loads(path.read_text("utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise LocalStackError(
            f"the state file {path} is damaged: delete it and start again"
        ) from exc


def require_state(settings: LocalSettings) -> LocalState:
    state = read_state(settings)
    if state is None or not _alive(state.pid):
        raise LocalStackError(
            "no local stack is running: start one with `filegate local up --detach`"
        )
    return state


def update_outputs(settings: LocalSettings, outputs: dict[str, str]) -> LocalState:
    """Record a running stack's outputs after a stack update (``filegate deploy``)."""
    state = dataclasses.replace(require_state(settings), outputs=dict(outputs))
    _write_state_file(settings, state)
    return state


def running_version(settings: LocalSettings) -> str | None:
    """The function version the local event source mapping runs now, as the supervisor says."""
    try:
        return str(json.loads((settings.state_dir / RUNNING_FILE).read_text("utf-8"))["version"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def wait_running(settings: LocalSettings, version: str, timeout: float = 60.0) -> None:
    """Return once the local stack runs ``version`` (it follows the alias within a second)."""
    deadline = time.monotonic() + timeout
    while running_version(settings) != version:
        if time.monotonic() > deadline:
            raise LocalStackError(
                f"the local stack did not switch to version {version} within {timeout:.0f} s:"
                f" see its log in {settings.state_dir}"
            )
        time.sleep(0.1)


def _write_running(settings: LocalSettings, spec: FunctionSpec) -> None:
    path = settings.state_dir / RUNNING_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"function": spec.name, "version": spec.version}), "utf-8")
    temporary.replace(path)


def _write_state_file(settings: LocalSettings, state: LocalState) -> None:
    path = state_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(state), indent=2), "utf-8")
    temporary.replace(path)


def is_healthy(state: LocalState) -> bool:
    """The supervisor runs and the emulator answers for the stack."""
    if not _alive(state.pid):
        return False
    try:
        cfn = state.target.client("cloudformation")
        cfn.describe_stacks(StackName=state.stack_name)
    except Exception:
        return False
    return True


def _alive(pid: int) -> bool:
    """True while the process runs (a zombie, exited but not yet reaped, is not alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def ensure_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUseError(
                f"port {port} on 127.0.0.1 is in use: stop what holds it"
                f" (`filegate local down`?) or pass --port"
            ) from None


def refuse_if_running(settings: LocalSettings) -> None:
    """One local stack per state directory, and only on a free port."""
    running = read_state(settings)
    if running is not None and _alive(running.pid):
        raise LocalStackError(
            f"a local stack is already running (pid {running.pid}, port {running.port}):"
            " use it, or stop it with `filegate local down`"
        )
    ensure_port_free(settings.port)
    ensure_port_free(settings.api_port)


def _wait_listening(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + EMULATOR_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalStackError(f"the emulator exited at start: {_tail(log_path)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise LocalStackError(f"the emulator did not listen on port {port} within 30 s")


def _terminate(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class LocalStack:
    """The local stack in this process: emulator child, deployment, workers, poller."""

    def __init__(self, settings: LocalSettings, progress: Progress | None = None) -> None:
        self.settings = settings
        self._progress = progress or (lambda message: log.info("%s", message))
        self._target = Target(region=settings.region, endpoint_url=settings.endpoint_url)
        self._work_dir: Path | None = None
        self._emulator: subprocess.Popen[bytes] | None = None
        self._dynamodb: subprocess.Popen[bytes] | None = None
        self._workers: list[Worker] = []
        self._telemetry: Telemetry | None = None
        self._esm: EventSourceMapping | None = None
        self._gateways: list[FunctionUrlGateway] = []
        self._urls: dict[str, str] = {}
        self._functions = LocalFunctions()
        self._invoke_server: InvokeServer | None = None
        self._alarms: AlarmEvaluator | None = None
        self._follower = CodeFollower()  # deploys and rollbacks reach the workers through it
        self.deployment: Deployment | None = None
        self.state: LocalState | None = None

    def start(self) -> LocalState:
        """Bring everything up; on any failure, tear down what was started and raise."""
        refuse_if_running(self.settings)
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalState:
        self._work_dir = Path(tempfile.mkdtemp(prefix="filegate-local-"))
        self._progress(f"starting the emulator on {self.settings.endpoint_url}")
        self._invoke_server = InvokeServer(self._functions)
        self._invoke_server.start()
        emulator_env = self._invoke_server.emulator_env()
        if self.settings.dynamodb_process:
            dynamodb_url = self._start_dynamodb_emulator()
            emulator_env[ENV_DYNAMODB_URL] = dynamodb_url
            # from here on, the supervisor's clients and the workers go to it directly
            self._target = dataclasses.replace(self._target, dynamodb_endpoint_url=dynamodb_url)
        self._start_emulator(emulator_env)
        self._progress("building the Lambda package")
        built = package.build(self._work_dir / "lambda.zip")
        parameters = StackParameters(
            bucket_name=LOCAL_BUCKET_NAME,
            lambda_name=LOCAL_LAMBDA_NAME,
            table_name=LOCAL_TABLE_NAME,
            code_bucket=LOCAL_CODE_BUCKET,
            code_key=f"lambda/{built.sha256_hex}.zip",
        )
        self._progress(f"deploying stack {self.settings.stack_name}")
        provisioner = Provisioner(self._target, self.settings.stack_name)
        provisioner.upload_package(built, parameters.code_bucket, parameters.code_key)
        self.deployment = provisioner.deploy(parameters)
        self._progress("starting the function's workers and the event source mapping")
        self._start_pipeline(self.deployment)
        self._start_alarms(self.deployment)
        self.state = self._write_state(self.deployment)
        self._progress("local stack ready")
        return self.state

    def _start_emulator(self, env: dict[str, str]) -> None:
        self._emulator = self._spawn_emulator(self.settings.port, "emulator.log", env)

    def _start_dynamodb_emulator(self) -> str:
        """DynamoDB's own emulator process, on a free port; its endpoint URL."""
        port = _free_port()
        self._dynamodb = self._spawn_emulator(port, "dynamodb.log", {}, "--dynamodb-only")
        return f"http://127.0.0.1:{port}"

    def _spawn_emulator(
        self, port: int, log_name: str, env: dict[str, str], *arguments: str
    ) -> subprocess.Popen[bytes]:
        assert self._work_dir is not None
        log_path = self._work_dir / log_name
        environment = {k: v for k, v in os.environ.items() if k != ENV_DYNAMODB_URL}
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "filegate.local.emulator", "--port", str(port), *arguments],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**environment, **env},
            )
        _wait_listening(port, process, log_path)
        return process

    def _start_pipeline(self, deployment: Deployment) -> None:
        assert self._work_dir is not None
        mapping, parameters = deployment.mapping, deployment.parameters
        spec = prepare_function(
            self._target,
            mapping.function,
            parameters.code_bucket,
            None if mapping.qualifier else parameters.code_key,
            self._work_dir,
            qualifier=mapping.qualifier,
        )
        workers = self._warm_workers(spec, self._mapping_workers(deployment))
        telemetry = self._telemetry = Telemetry(self._target)
        telemetry.start()
        self._register(spec, workers)
        self._esm = EventSourceMapping(
            self._target,
            mapping,
            deployment.outputs["QueueUrl"],
            workers,
            self.settings.retry_delay_seconds,
            observer=functools.partial(_record, telemetry),
        )
        self._esm.start()
        _write_running(self.settings, spec)
        if mapping.qualifier and not mapping.qualifier.isdigit():  # an alias, not a version
            self._follower.follow(
                f"{mapping.function}:{mapping.qualifier}",
                functools.partial(self._alias_version, mapping.function, mapping.qualifier),
                functools.partial(self._switch_mapping, deployment),
                spec.version,
            )
        self._start_gateways(deployment, telemetry)
        self._follower.start()

    def _register(self, spec: FunctionSpec, workers: list[Worker]) -> None:
        """Direct invocations (``aws lambda invoke``) of this function run on these workers.

        They answer for the version they run and, while its code is the function's current
        code, for $LATEST too (after a rollback, $LATEST is newer than what they run).
        """
        assert self._telemetry is not None
        versions = {spec.version}
        if spec.version == LATEST or spec.code_sha256 == self._code_sha256(spec.name):
            versions.add(LATEST)
        self._functions.register(
            spec, workers, functools.partial(_record, self._telemetry), versions
        )

    def _mapping_workers(self, deployment: Deployment) -> int:
        return max(1, min(self.settings.workers, deployment.mapping.maximum_concurrency))

    def _alias_version(self, function: str, alias: str) -> str:
        found = self._target.client("lambda").get_alias(FunctionName=function, Name=alias)
        return str(found["FunctionVersion"])

    def _code_sha256(self, function: str) -> str:
        config = self._target.client("lambda").get_function_configuration(FunctionName=function)
        return str(config["CodeSha256"])

    def _switch_mapping(self, deployment: Deployment, version: str) -> None:
        """Workers of ``version`` take over the mapping; the old ones finish their batch."""
        assert self._work_dir is not None
        assert self._esm is not None
        mapping = deployment.mapping
        spec = prepare_function(
            self._target,
            mapping.function,
            self._code_bucket(deployment),
            None,
            self._work_dir,
            qualifier=version,
        )
        workers = self._warm_workers(spec, self._mapping_workers(deployment))
        self._register(spec, workers)
        self._retire(self._esm.swap(workers))
        _write_running(self.settings, spec)

    def _switch_gateway(
        self, deployment: Deployment, gateway: FunctionUrlGateway, function: str, code_sha256: str
    ) -> None:
        """Workers of the function's new code take over its URL (what a code update does)."""
        assert self._work_dir is not None
        code_bucket = self._code_bucket(deployment)
        spec = prepare_function(
            self._target, function, code_bucket, code_key_for(code_sha256), self._work_dir
        )
        workers = self._warm_workers(spec, self.settings.workers)
        self._register(spec, workers)
        self._retire(gateway.swap(workers))

    def _code_bucket(self, deployment: Deployment) -> str:
        """The stack's CodeBucket now (a deploy may have named another)."""
        cfn = self._target.client("cloudformation")
        stack = cfn.describe_stacks(StackName=deployment.stack_name)["Stacks"][0]
        values = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
        return str(values.get("CodeBucket", deployment.parameters.code_bucket))

    def _retire(self, workers: list[Worker]) -> None:
        for worker in workers:
            worker.stop()
            self._workers.remove(worker)

    def _warm_workers(self, spec: FunctionSpec, count: int) -> list[Worker]:
        """Start ``count`` execution environments for a function (their inits run in parallel)."""
        workers = [Worker(spec, self._target) for _ in range(count)]
        self._workers.extend(workers)
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(Worker.start, workers))
        return workers

    def _start_gateways(self, deployment: Deployment, telemetry: Telemetry) -> None:
        """Serve each function URL of the template on 127.0.0.1 (api_port, then upwards)."""
        assert self._work_dir is not None
        parameters = deployment.parameters
        for offset, url in enumerate(deployment.function_urls):
            spec = prepare_function(
                self._target,
                url.function_name,
                parameters.code_bucket,
                parameters.code_key,
                self._work_dir,
            )
            workers = self._warm_workers(spec, self.settings.workers)
            self._register(spec, workers)
            port = self.settings.api_port + offset
            gateway = FunctionUrlGateway(
                workers,
                port,
                url.cors,
                f"{url.function_name}.lambda-url.localhost",
                observer=functools.partial(_record, telemetry),
            )
            gateway.start()
            self._gateways.append(gateway)
            self._urls[url.logical_id] = f"http://127.0.0.1:{port}/"
            self._follower.follow(
                url.function_name,
                functools.partial(self._code_sha256, url.function_name),
                functools.partial(self._switch_gateway, deployment, gateway, url.function_name),
                spec.code_sha256,
            )

    def _start_alarms(self, deployment: Deployment) -> None:
        """Evaluate the alarms; what they send to the alerts topic lands in an outbox queue."""
        topic = deployment.outputs.get("AlertsTopicArn")
        if topic:
            subscribe_outbox(self._target, topic)
        self._alarms = AlarmEvaluator(self._target)
        self._alarms.start()

    def _write_state(self, deployment: Deployment) -> LocalState:
        state = LocalState(
            pid=os.getpid(),
            port=self.settings.port,
            endpoint_url=self.settings.endpoint_url,
            region=self.settings.region,
            stack_name=deployment.stack_name,
            outputs=deployment.outputs,
            urls=dict(self._urls),
            dynamodb_endpoint_url=self._target.dynamodb_endpoint_url or "",
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            log_file=os.environ.get("FILEGATE_LOCAL_LOG", ""),
        )
        _write_state_file(self.settings, state)
        return state

    @property
    def workers(self) -> list[Worker]:
        return list(self._workers)

    def stop(self) -> None:
        """Stop everything this stack started; safe to call more than once."""
        if self._alarms:
            self._alarms.stop()
            self._alarms = None
        self._follower.stop()
        for gateway in self._gateways:
            gateway.stop()
        self._gateways, self._urls = [], {}
        if self._esm:
            self._esm.stop()
        for worker in self._workers:
            worker.stop()
        if self._telemetry:
            self._telemetry.stop()
        if self._invoke_server:
            self._invoke_server.stop()
            self._invoke_server = None
        self._esm, self._workers, self._telemetry = None, [], None
        for emulator in (self._emulator, self._dynamodb):
            if emulator is not None:
                _terminate(emulator)
        self._emulator = self._dynamodb = None
        if self.state is not None:
            current = read_state(self.settings)
            if current is not None and current.pid == self.state.pid:
                state_file(self.settings).unlink(missing_ok=True)
                (self.settings.state_dir / RUNNING_FILE).unlink(missing_ok=True)
            self.state = None
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalState]:
        try:
            yield self.start()
        finally:
            self.stop()


def _record(telemetry: Telemetry, worker: Worker, invocation: Any) -> None:
    telemetry.record(worker.spec, worker.log_stream, invocation)


def run_until_signalled(stack: LocalStack, on_ready: Callable[[LocalState], None]) -> None:
    """Start, report readiness, serve until SIGINT or SIGTERM, then stop everything."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with stack.running() as state:
            on_ready(state)
            stop.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def start_detached(settings: LocalSettings) -> LocalState:
    """Start the stack as a background supervisor process and wait until it is ready."""
    refuse_if_running(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.state_dir / f"local-{settings.port}.log"
    env = {
        **os.environ,
        "FILEGATE_STATE_DIR": str(settings.state_dir),
        "FILEGATE_LOCAL_LOG": str(log_path),
    }
    command = [sys.executable, "-m", "filegate.local.stack", "--settings", settings.to_json()]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    return _wait_ready(settings, process, log_path)


def _wait_ready(settings: LocalSettings, process: subprocess.Popen[bytes], log: Path) -> LocalState:
    deadline = time.monotonic() + DETACHED_START_TIMEOUT
    while time.monotonic() < deadline:
        state = read_state(settings)
        if state is not None and state.pid == process.pid:
            return state
        if process.poll() is not None:
            raise LocalStackError(f"the local stack failed to start:\n{_tail(log)}")
        time.sleep(0.1)
    process.terminate()
    raise LocalStackError(f"the local stack was not ready within {DETACHED_START_TIMEOUT:.0f} s")


def stop_detached(settings: LocalSettings) -> LocalState | None:
    """Stop the running stack, if any; return what was running."""
    state = read_state(settings)
    if state is None:
        return None
    if _alive(state.pid):
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(state.pid):
            os.killpg(state.pid, signal.SIGKILL)
    state_file(settings).unlink(missing_ok=True)
    return state


def main() -> None:
    """The detached supervisor's entry point."""
    parser = argparse.ArgumentParser(description="filegate local stack supervisor")
    parser.add_argument("--settings", required=True, help="LocalSettings as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = LocalSettings.from_json(args.settings)
    run_until_signalled(LocalStack(settings), lambda state: log.info("ready: %s", state.env()))


if __name__ == "__main__":
    main()
