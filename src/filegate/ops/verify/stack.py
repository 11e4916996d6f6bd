"""The checks of the stack as a whole: its status (which, when it cannot be read at all,
stops the run with ``StackError``) and its alarms (``ops.alarms.stack_alarms``, the one
definition `filegate alarms` uses too)."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from filegate.errors import StackError
from filegate.ops.alarms import stack_alarms
from filegate.ops.verify.base import Checks
from filegate.ops.verify.results import ALARMS, STACK, CheckResult


class StackChecks(Checks):
    """The stack's status and its alarms."""

    def stack_status(self) -> CheckResult:
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=self.ref.stack_name)[
                "Stacks"
            ]
        except (ClientError, BotoCoreError) as exc:
            raise StackError(
                f"cannot describe stack {self.ref.stack_name}: {exc}; check --stack, --region"
                " and that the stack (or `filegate local up`) is running"
            ) from exc
        status = str(stacks[0]["StackStatus"])
        healthy = status.endswith("_COMPLETE") and "ROLLBACK" not in status
        return CheckResult(STACK, healthy, status)

    def alarms(self) -> CheckResult:
        found = stack_alarms(self.ref, self.client)
        if not found:
            return CheckResult(ALARMS, False, "none of the stack's alarms found")
        firing = sorted(a["AlarmName"] for a in found if a.get("StateValue") == "ALARM")
        states = sorted(f"{a['AlarmName']}={a.get('StateValue')}" for a in found)
        if firing:
            return CheckResult(ALARMS, False, f"in ALARM: {', '.join(firing)}")
        return CheckResult(ALARMS, True, f"{len(found)} alarms, none in ALARM: {', '.join(states)}")
