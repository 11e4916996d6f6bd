"""Starts and stops the whole local stack: the supervisor.

``LocalStack.start`` runs the emulator as a child process on 127.0.0.1 (and DynamoDB's own
emulator process, which the endpoint forwards DynamoDB requests to), builds the Lambda
package, deploys the template into the emulator (``provision``), starts warm workers running
the deployed zip (``runtime``) with credentials of their functions' roles, which both
emulator processes enforce (``iam``), fed by the local event source mapping (``esm``), serves the
Lambda Invoke API on those workers (``invoke``), evaluates the alarms (``alarms``), and writes
the state file that ``status``, ``env`` and ``down`` read (``state``; child processes and
ports: ``processes``). While it runs, ``follower`` keeps
the workers on what a deploy or rollback says should run (the ``live`` alias's version for the
mapping, the current code for function URLs), and ``running.json`` says which version the
mapping's workers run. Started ``empty`` (``filegate local up --empty``), it deploys nothing:
the emulator waits for the first ``filegate deploy --endpoint-url ...``, as a fresh AWS account
does, and once that stack is CREATE_COMPLETE (or UPDATE_COMPLETE) the supervisor adopts it
(``Provisioner.adopt``) and starts the same workers, mapping and alarms for it. ``stop``
undoes all of it: no process is left behind. Run as
``python -m filegate.local.stack`` it is the detached supervisor that
``filegate local up --detach`` starts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from filegate import package
from filegate.aws import Target
from filegate.errors import LocalStackError
from filegate.local.alarms import AlarmEvaluator, subscribe_outbox
from filegate.local.cloudwatch import Telemetry
from filegate.local.esm import EventSourceMapping
from filegate.local.follower import CodeFollower
from filegate.local.gateway import FunctionUrlGateway
from filegate.local.iam import (
    ENV_PRINCIPALS,
    ENVIRONMENT_MAX_AGE_SECONDS,
    PRINCIPALS_FILE,
    RoleSessions,
)
from filegate.local.invoke import LATEST, InvokeServer, LocalFunctions
from filegate.local.moto_version import require_supported_moto
from filegate.local.processes import free_port, tail, terminate, wait_listening
from filegate.local.provision import Deployment, Provisioner, StackParameters
from filegate.local.queue_channel import (
    ENV_CHANNEL,
    ENV_CHANNEL_KEY,
    MAX_SOCKET_PATH,
    ChannelQueue,
)
from filegate.local.runtime import (
    Credentials,
    FunctionSpec,
    Worker,
    code_key_for,
    prepare_function,
)
from filegate.local.schedules import ScheduledRuns
from filegate.local.state import (
    RUNNING_FILE,
    LocalState,
    is_alive,
    read_state,
    refuse_if_running,
    state_file,
    write_running,
    write_state_file,
)
from filegate.local.streams import StreamMapping
from filegate.outputs import ALERTS_TOPIC_ARN, QUEUE_URL
from filegate.settings import (
    ENV_EMULATOR_DYNAMODB_URL,
    ENV_LOCAL_LOG,
    ENV_STATE_DIR,
    LOCAL_BUCKET_NAME,
    LOCAL_CODE_BUCKET,
    LOCAL_LAMBDA_NAME,
    LOCAL_TABLE_NAME,
    LocalSettings,
    child_environment,
    local_log_file,
)

logger = logging.getLogger(__name__)

DETACHED_START_TIMEOUT = 180.0
STOP_TIMEOUT = 30.0
ADOPT_POLL_SECONDS = 1.0
_ADOPTABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE")

Progress = Callable[[str], None]


class LocalStack:
    """The local stack in this process: emulator child, deployment, workers, poller."""

    def __init__(
        self, settings: LocalSettings, progress: Progress | None = None, empty: bool = False
    ) -> None:
        self.settings = settings
        self._empty = empty
        self._adopter: threading.Thread | None = None
        self._stopping = threading.Event()
        self._progress = progress or (lambda message: logger.info("%s", message))
        self._target = Target(region=settings.region, endpoint_url=settings.endpoint_url)
        self._work_dir: Path | None = None
        self._emulator: subprocess.Popen[bytes] | None = None
        self._dynamodb: subprocess.Popen[bytes] | None = None
        self._workers: list[Worker] = []
        self._telemetry: Telemetry | None = None
        self._esm: EventSourceMapping | None = None
        self._queue_channel: tuple[str, bytes] | None = None  # socket path, key
        self._role_sessions: RoleSessions | None = None  # None: the functions' IAM is off
        self._lambda_client: Any = None
        self._gateways: list[FunctionUrlGateway] = []
        self._schedules: list[ScheduledRuns] = []
        self._streams: list[StreamMapping] = []
        self._urls: dict[str, str] = {}
        self._functions = LocalFunctions()
        self._invoke_server: InvokeServer | None = None
        self._alarms: AlarmEvaluator | None = None
        self._follower = CodeFollower()  # deploys and rollbacks reach the workers through it
        self.deployment: Deployment | None = None
        self.state: LocalState | None = None

    def start(self) -> LocalState:
        """Bring everything up; on any failure, tear down what was started and raise."""
        require_supported_moto()
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
        self._start_emulators(self._invoke_server.emulator_env())
        if self._empty:
            return self._await_stack()
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

    def _await_stack(self) -> LocalState:
        """Empty: no stack yet; a thread adopts the stack once a deploy has created it."""
        self.state = self._write_state(None)
        self._adopter = threading.Thread(target=self._adopt_when_ready, name="stack-adopter")
        self._adopter.start()
        self._progress(
            f"emulator ready with no stack: `filegate deploy --endpoint-url"
            f" {self.settings.endpoint_url} --region {self.settings.region} ...` creates"
            f" {self.settings.stack_name}"
        )
        return self.state

    def _adopt_when_ready(self) -> None:
        cfn = self._target.client("cloudformation")
        reported = ""
        while not self._stopping.wait(ADOPT_POLL_SECONDS):
            try:
                stack = cfn.describe_stacks(StackName=self.settings.stack_name)["Stacks"][0]
            except (ClientError, BotoCoreError):
                continue  # not created yet (or the emulator is going away)
            if stack["StackStatus"] not in _ADOPTABLE:
                continue  # being created, or rolled back: a retry deletes and creates it
            try:
                deployment = Provisioner(self._target, self.settings.stack_name).adopt()
            except Exception as exc:
                # The deploy that created the stack may still be applying what the emulator
                # ignores (the stack's tables, whose streams the mappings read): try again at
                # the next poll, logging each new reason once.
                if str(exc) != reported:
                    reported = str(exc)
                    logger.warning("the deployed stack is not ready to run yet: %s", exc)
                continue
            try:
                self._adopt(deployment)
            except Exception:
                logger.exception("cannot run the deployed stack %s", self.settings.stack_name)
            return

    def _adopt(self, deployment: Deployment) -> None:
        self._progress(f"stack {self.settings.stack_name} deployed: starting its function")
        self.deployment = deployment
        self._start_pipeline(deployment)
        self._start_alarms(deployment)
        self.state = self._write_state(deployment)
        self._progress("local stack ready")

    def _start_emulators(self, env: dict[str, str]) -> None:
        """The emulator and DynamoDB's own process, started together; both listen on return.

        The main one only forwards to the DynamoDB process when a request comes, so neither
        waits for the other to start.
        """
        starting: list[tuple[int, subprocess.Popen[bytes], Path]] = []
        iam_env = self._iam_env()
        env = {**env, **self._queue_channel_env(), **iam_env}
        if self.settings.dynamodb_process:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = {**env, ENV_EMULATOR_DYNAMODB_URL: url}
            # from here on, the supervisor's clients and the workers go to it directly
            self._target = dataclasses.replace(self._target, dynamodb_endpoint_url=url)
            self._dynamodb, log_path = self._spawn_emulator(
                port, "dynamodb.log", iam_env, "--dynamodb-only"
            )
            starting.append((port, self._dynamodb, log_path))
        self._emulator, log_path = self._spawn_emulator(self.settings.port, "emulator.log", env)
        starting.append((self.settings.port, self._emulator, log_path))
        for port, process, log_path in starting:
            wait_listening(port, process, log_path)

    def _iam_env(self) -> dict[str, str]:
        """Where both emulators find the role sessions issued to the functions, if at all."""
        assert self._work_dir is not None
        if not self.settings.iam:
            return {}
        path = self._work_dir / PRINCIPALS_FILE
        self._role_sessions = RoleSessions(self._target, path)
        return {ENV_PRINCIPALS: str(path)}

    def _credentials(self) -> Credentials | None:
        sessions = self._role_sessions
        if sessions is None:
            return None

        def issue(spec: FunctionSpec) -> dict[str, str]:
            if not spec.role_arn:
                raise LocalStackError(f"function {spec.name} has no execution role")
            try:
                return sessions.credentials(spec.role_arn, spec.name)
            except (BotoCoreError, ClientError) as exc:
                raise LocalStackError(
                    f"could not assume {spec.role_arn} for function {spec.name}: {exc}"
                ) from exc

        return issue

    def _queue_connector(self, queue_url: str) -> Callable[[], ChannelQueue] | None:
        if self._queue_channel is None:
            return None  # the SQS API
        address, key = self._queue_channel
        return functools.partial(ChannelQueue, address, key, queue_url, self._target.region)

    def _queue_channel_env(self) -> dict[str, str]:
        """Where the emulator serves the event source mapping's line to its queues, if at all."""
        assert self._work_dir is not None
        address = str(self._work_dir / "queues.sock")
        if not self.settings.queue_channel or len(address) > MAX_SOCKET_PATH:
            return {}
        self._queue_channel = (address, secrets.token_bytes(32))
        return {ENV_CHANNEL: address, ENV_CHANNEL_KEY: self._queue_channel[1].hex()}

    def _spawn_emulator(
        self, port: int, log_name: str, env: dict[str, str], *arguments: str
    ) -> tuple[subprocess.Popen[bytes], Path]:
        assert self._work_dir is not None
        log_path = self._work_dir / log_name
        environment = child_environment(without=frozenset({ENV_EMULATOR_DYNAMODB_URL}))
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "filegate.local.emulator", "--port", str(port), *arguments],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**environment, **env},
            )
        return process, log_path

    def _start_pipeline(self, deployment: Deployment) -> None:
        mapping, parameters = deployment.mapping, deployment.parameters
        spec = self._prepare(
            mapping.function,
            parameters.code_bucket,
            None if mapping.qualifier else parameters.code_key,
            qualifier=mapping.qualifier,
        )
        self._check_mapping_role(spec, mapping.queue_arn)
        workers = self._warm_workers(spec, self._mapping_workers(deployment))
        telemetry = self._telemetry = Telemetry(self._target)
        telemetry.start()
        self._register(spec, workers)
        queue_url = deployment.outputs[QUEUE_URL]
        self._esm = EventSourceMapping(
            self._target,
            mapping,
            queue_url,
            workers,
            self.settings.failed_message_delay,
            observer=functools.partial(_record, telemetry),
            connect=self._queue_connector(queue_url),
        )
        self._esm.start()
        write_running(self.settings, spec)
        if mapping.qualifier and not mapping.qualifier.isdigit():  # an alias, not a version
            self._follower.follow(
                f"{mapping.function}:{mapping.qualifier}",
                functools.partial(self._alias_version, mapping.function, mapping.qualifier),
                functools.partial(self._switch_mapping, deployment),
                spec.version,
            )
        self._start_gateways(deployment, telemetry)
        self._start_schedules(deployment)
        self._start_streams(deployment)
        self._follower.start()

    def _check_mapping_role(
        self, spec: FunctionSpec, source_arn: str, stream: bool = False
    ) -> None:
        """Lambda refuses a mapping whose function's role may not read its source: the queue,
        or (``stream``) the DynamoDB stream."""
        if self._role_sessions is None:
            return
        sessions = self._role_sessions
        refused = sessions.stream_mapping_refusal if stream else sessions.mapping_refusal
        refusal = refused(spec.role_arn, source_arn)
        if refusal:
            raise LocalStackError(f"the event source mapping of {spec.name}: {refusal}")

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
        found = self._lambda().get_alias(FunctionName=function, Name=alias)
        return str(found["FunctionVersion"])

    def _code_sha256(self, function: str) -> str:
        config = self._lambda().get_function_configuration(FunctionName=function)
        return str(config["CodeSha256"])

    def _lambda(self) -> Any:
        """One Lambda client for the code follower's checks (every second, for the stack's
        life): creating a client costs more CPU than the call it makes."""
        if self._lambda_client is None:
            self._lambda_client = self._target.client("lambda")
        return self._lambda_client

    def _switch_mapping(self, deployment: Deployment, version: str) -> None:
        """Workers of ``version`` take over the mapping; the old ones finish their batch."""
        assert self._esm is not None
        function = deployment.mapping.function
        spec = self._prepare(function, self._code_bucket(deployment), None, qualifier=version)
        workers = self._serve(spec, self._mapping_workers(deployment))
        self._retire(self._esm.swap(workers))
        write_running(self.settings, spec)

    def _switch_gateway(
        self, deployment: Deployment, gateway: FunctionUrlGateway, function: str, code_sha256: str
    ) -> None:
        """Workers of the function's new code take over its URL (what a code update does)."""
        spec = self._updated(deployment, function, code_sha256)
        self._retire(gateway.swap(self._serve(spec, self.settings.workers)))

    def _code_bucket(self, deployment: Deployment) -> str:
        """The stack's CodeBucket now (a deploy may have named another)."""
        cfn = self._target.client("cloudformation")
        stack = cfn.describe_stacks(StackName=deployment.stack_name)["Stacks"][0]
        values = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
        return str(values.get("CodeBucket", deployment.parameters.code_bucket))

    def _prepare(
        self, function: str, code_bucket: str, code_key: str | None, qualifier: str | None = None
    ) -> FunctionSpec:
        """The function's code fetched and unpacked in the work directory (``prepare_function``)."""
        assert self._work_dir is not None
        return prepare_function(
            self._target, function, code_bucket, code_key, self._work_dir, qualifier=qualifier
        )

    def _deployed(self, deployment: Deployment, function: str) -> FunctionSpec:
        """The function with the code the deployment's parameters name (at adoption)."""
        parameters = deployment.parameters
        return self._prepare(function, parameters.code_bucket, parameters.code_key)

    def _updated(self, deployment: Deployment, function: str, code_sha256: str) -> FunctionSpec:
        """The function with the new code a deploy gave it (from the stack's CodeBucket now)."""
        return self._prepare(function, self._code_bucket(deployment), code_key_for(code_sha256))

    def _serve(self, spec: FunctionSpec, count: int) -> list[Worker]:
        """``count`` warm workers of ``spec``, registered for direct invocations."""
        workers = self._warm_workers(spec, count)
        self._register(spec, workers)
        return workers

    def _retire(self, workers: list[Worker]) -> None:
        """Stop workers that others took over from, each once its invocation in flight has
        finished: killing a stream-fed function's batch failed an invocation, which its errors
        alarm counted (a failed `filegate verify` right after a deploy)."""
        for worker in workers:
            worker.stop_when_idle()
            self._workers.remove(worker)

    def _warm_workers(self, spec: FunctionSpec, count: int) -> list[Worker]:
        """Start ``count`` execution environments for a function (their inits run in parallel)."""
        credentials = self._credentials()
        max_age = ENVIRONMENT_MAX_AGE_SECONDS if credentials else None
        workers = [Worker(spec, self._target, credentials, max_age) for _ in range(count)]
        self._workers.extend(workers)
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(Worker.start, workers))
        return workers

    def _start_gateways(self, deployment: Deployment, telemetry: Telemetry) -> None:
        """Serve each function URL of the template on 127.0.0.1 (api_port, then upwards)."""
        for offset, url in enumerate(deployment.function_urls):
            spec = self._deployed(deployment, url.function_name)
            workers = self._serve(spec, self.settings.workers)
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

    def _start_schedules(self, deployment: Deployment) -> None:
        """Run each scheduled function of the template at its rate, as EventBridge does
        (one warm worker each; `aws lambda invoke` runs it at once)."""
        for schedule in deployment.schedules:
            self._serve(self._deployed(deployment, schedule.function_name), 1)
            runs = ScheduledRuns(self._functions, schedule, self.settings.region)
            runs.start()
            self._schedules.append(runs)

    def _start_streams(self, deployment: Deployment) -> None:
        """Feed each DynamoDB stream mapping's function from its stream, as Lambda does (one
        warm worker each: one batch per shard at a time; `aws lambda invoke` runs it too)."""
        for config in deployment.stream_mappings:
            spec = self._deployed(deployment, config.function_name)
            self._check_mapping_role(spec, config.stream_arn, stream=True)
            workers = self._serve(spec, 1)
            mapping = StreamMapping(self._target, config, self._functions)
            mapping.start()
            self._streams.append(mapping)
            # A deploy of new code reaches it as it reaches a function URL's workers.
            self._follower.follow(
                spec.name,
                functools.partial(self._code_sha256, spec.name),
                functools.partial(self._switch_stream_function, deployment, spec.name, workers),
                spec.code_sha256,
            )

    def _switch_stream_function(
        self, deployment: Deployment, function: str, workers: list[Worker], code_sha256: str
    ) -> None:
        """A worker of the function's new code takes over its stream mapping's invocations."""
        fresh = self._serve(self._updated(deployment, function, code_sha256), 1)
        old, workers[:] = list(workers), fresh
        self._retire(old)

    def _stop_schedules(self) -> None:
        """The schedules and the stream mappings: what invokes functions on its own."""
        for runs in self._schedules:
            runs.stop()
        for mapping in self._streams:
            mapping.stop()
        self._schedules, self._streams = [], []

    def _start_alarms(self, deployment: Deployment) -> None:
        """Evaluate the alarms; what they send to the alerts topic lands in an outbox queue."""
        topic = deployment.outputs.get(ALERTS_TOPIC_ARN)
        if topic:
            subscribe_outbox(self._target, topic)
        self._alarms = AlarmEvaluator(self._target)
        self._alarms.start()

    def _write_state(self, deployment: Deployment | None) -> LocalState:
        state = LocalState(
            pid=os.getpid(),
            port=self.settings.port,
            endpoint_url=self.settings.endpoint_url,
            region=self.settings.region,
            stack_name=deployment.stack_name if deployment else self.settings.stack_name,
            outputs=deployment.outputs if deployment else {},
            urls=dict(self._urls),
            dynamodb_endpoint_url=self._target.dynamodb_endpoint_url or "",
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            log_file=local_log_file(),
        )
        write_state_file(self.settings, state)
        return state

    @property
    def workers(self) -> list[Worker]:
        return list(self._workers)

    def stop(self) -> None:
        """Stop everything this stack started; safe to call more than once."""
        self._stopping.set()
        if self._adopter is not None:
            self._adopter.join()  # an adoption under way finishes first, then is undone
            self._adopter = None
        if self._alarms:
            self._alarms.stop()
            self._alarms = None
        self._follower.stop()
        self._stop_schedules()
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
                terminate(emulator)
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


def start_detached(settings: LocalSettings, empty: bool = False) -> LocalState:
    """Start the stack as a background supervisor process and wait until it is ready
    (``empty``: the emulator is ready, with no stack)."""
    require_supported_moto()
    refuse_if_running(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.state_dir / f"local-{settings.port}.log"
    env = child_environment(
        extra={ENV_STATE_DIR: str(settings.state_dir), ENV_LOCAL_LOG: str(log_path)}
    )
    command = [sys.executable, "-m", "filegate.local.stack", "--settings", settings.to_json()]
    if empty:
        command.append("--empty")
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
            raise LocalStackError(f"the local stack failed to start:\n{tail(log)}")
        time.sleep(0.1)
    process.terminate()
    raise LocalStackError(f"the local stack was not ready within {DETACHED_START_TIMEOUT:.0f} s")


def stop_detached(settings: LocalSettings) -> LocalState | None:
    """Stop the running stack, if any; return what was running."""
    state = read_state(settings)
    if state is None:
        return None
    if is_alive(state.pid):
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while is_alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if is_alive(state.pid):
            os.killpg(state.pid, signal.SIGKILL)
    state_file(settings).unlink(missing_ok=True)
    return state


def main() -> None:
    """The detached supervisor's entry point."""
    parser = argparse.ArgumentParser(description="filegate local stack supervisor")
    parser.add_argument("--settings", required=True, help="LocalSettings as JSON")
    parser.add_argument("--empty", action="store_true", help="start with no stack")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = LocalSettings.from_json(args.settings)
    stack = LocalStack(settings, empty=args.empty)
    run_until_signalled(stack, lambda state: logger.info("ready: %s", state.env()))


if __name__ == "__main__":
    main()
