"""The local stack's state file: what a running stack tells the other commands.

``local.json`` in the state directory (``FILEGATE_STATE_DIR``) holds the supervisor's pid, the
endpoints and the stack's outputs (``LocalState``); ``running.json`` says which version of the
mapped function the workers run. ``status``, ``env``, ``down``, the operations commands and
``filegate deploy`` read them (the operations through ``twin``); the supervisor (``stack.py``)
writes them, and ``filegate deploy`` updates the outputs after an update (``twin``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filegate.aws import Target
from filegate.errors import LocalStackError
from filegate.extras import require_local_twin
from filegate.local.processes import ensure_port_free
from filegate.local.runtime import FunctionSpec
from filegate.settings import LocalSettings

STATE_FILE = "local.json"
RUNNING_FILE = "running.json"  # which version of the mapped function the workers run


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
    """The running local stack (the default target), or LocalStackError saying how to get one.

    Without the local twin installed this default is out of reach whether a stack runs or not,
    so what a command acts on never depends on what another installation started.
    """
    require_local_twin(
        "the local stack (the default target: no --profile, --endpoint-url or --target aws)",
        otherwise="pass --profile NAME or --target aws to act on AWS",
    )
    return _running(settings)


def _running(settings: LocalSettings) -> LocalState:
    state = read_state(settings)
    if state is None or not is_alive(state.pid):
        raise LocalStackError(
            "no local stack is running: start one with `filegate local up --detach`"
        )
    return state


def update_outputs(settings: LocalSettings, outputs: dict[str, str]) -> LocalState:
    """Record a running stack's outputs after a stack update (``filegate deploy``). The stack
    was named by --endpoint-url or is the default one: either way it is running, so this needs
    no local twin installed (a lean install may deploy to it)."""
    state = dataclasses.replace(_running(settings), outputs=dict(outputs))
    write_state_file(settings, state)
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


def write_running(settings: LocalSettings, spec: FunctionSpec) -> None:
    path = settings.state_dir / RUNNING_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"function": spec.name, "version": spec.version}), "utf-8")
    temporary.replace(path)


def write_state_file(settings: LocalSettings, state: LocalState) -> None:
    path = state_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(state), indent=2), "utf-8")
    temporary.replace(path)


def is_healthy(state: LocalState) -> bool:
    """The supervisor runs and the emulator answers for the stack."""
    if not is_alive(state.pid):
        return False
    try:
        cfn = state.target.client("cloudformation")
        cfn.describe_stacks(StackName=state.stack_name)
    except Exception:
        return False
    return True


def is_alive(pid: int) -> bool:
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


def refuse_if_running(settings: LocalSettings) -> None:
    """One local stack per state directory, and only on a free port."""
    running = read_state(settings)
    if running is not None and is_alive(running.pid):
        raise LocalStackError(
            f"a local stack is already running (pid {running.pid}, port {running.port}):"
            " use it, or stop it with `filegate local down`"
        )
    ensure_port_free(settings.port)
    ensure_port_free(settings.api_port)
