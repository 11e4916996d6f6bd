"""The local stack as the operations see it: finding the running one, and the steps a stack in
the emulator needs after an operation (``stackref.LocalTwin``).

The CLI builds a ``LocalStacks`` and hands it to ``stackref``; ``filegate.ops`` only ever sees
the ``LocalTwin`` protocol, so it imports nothing from here. Owns: reading the supervisor's
state file for a command, re-applying what the emulator ignores after a deploy
(``Provisioner.reapply``), and waiting for the workers to run the live version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from filegate.aws import Target
from filegate.local.provision import Provisioner
from filegate.local.state import (
    LocalState,
    is_healthy,
    read_state,
    require_state,
    update_outputs,
    wait_running,
)
from filegate.settings import LOCAL_CODE_BUCKET, LocalSettings
from filegate.stackref import StackLocation, StackRef, described


@dataclass(frozen=True)
class EmulatorTwin:
    """A stack in the emulator; ``settings`` set when it is the running local stack's."""

    target: Target
    stack_name: str
    settings: LocalSettings | None = None

    def after_deploy(
        self,
        changed: list[str],
        outputs: dict[str, str],
        live_version: str | None,
        step: Callable[[str], None],
    ) -> list[str]:
        step("applying what the emulator ignores, for the changed resources")
        applied = Provisioner(self.target, self.stack_name).reapply(changed)
        if self.settings is not None:
            update_outputs(self.settings, outputs)
            if live_version:
                step(f"waiting for the local stack to run version {live_version}")
                wait_running(self.settings, live_version)
        return applied

    def wait_running(self, version: str) -> None:
        if self.settings is not None:
            wait_running(self.settings, version)

    def artifact_bucket(self) -> str:
        return LOCAL_CODE_BUCKET

    def runs_mapping(self) -> bool:
        """The supervisor runs the mapping (the emulator's own is disabled on purpose)."""
        if self.settings is None:
            return False
        state = read_state(self.settings)
        return state is not None and self._is(state) and is_healthy(state)

    def _is(self, state: LocalState) -> bool:
        return state.endpoint_url == self.target.endpoint_url and state.stack_name == (
            self.stack_name
        )


class LocalStacks:
    """``stackref.LocalStacks`` over the state file of ``filegate local up``."""

    def location(self, region: str | None, stack_name: str | None) -> StackLocation:
        settings = LocalSettings.resolve(region=region)
        state = require_state(settings)
        name = stack_name or state.stack_name
        return StackLocation(state.target, name, self._twin(state, settings, name))

    def resolve(self, region: str | None, stack_name: str | None) -> StackRef:
        settings = LocalSettings.resolve(region=region)
        state = require_state(settings)
        name = stack_name or state.stack_name
        twin = self._twin(state, settings, name)
        if name != state.stack_name:
            return described(state.target, name, twin)
        # A function URL's output names the local gateway that serves it.
        return StackRef(state.target, name, {**state.outputs, **state.urls}, twin)

    def twin(self, target: Target, stack_name: str) -> EmulatorTwin:
        settings = LocalSettings.resolve(region=target.region)
        state = read_state(settings)
        twin = EmulatorTwin(target, stack_name, settings)
        return twin if state is not None and twin._is(state) else EmulatorTwin(target, stack_name)

    @staticmethod
    def _twin(state: LocalState, settings: LocalSettings, stack_name: str) -> EmulatorTwin:
        ours = stack_name == state.stack_name
        return EmulatorTwin(state.target, stack_name, settings if ours else None)
