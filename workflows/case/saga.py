"""A small saga runner for resolutions that span several systems.

Each step runs an action and, once it succeeded, registers how to undo it. When a
later step fails for good, the registered compensations run in reverse order. Step
results and compensations are recorded on the resolution so the timeline shows what
happened in which system.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.exceptions import ActivityError, ApplicationError

from workflows.case.contracts import Resolution


class Saga:
    """Runs steps in order and compensates the finished ones when a step fails."""

    def __init__(self, resolution: Resolution) -> None:
        # Where the steps are recorded: the plan, or the remedy of a combined plan that
        # runs now (each compensation is recorded where its step was).
        self.resolution = resolution
        self._undo: list[tuple[str, Callable[[], Awaitable[Any]], Resolution]] = []

    async def step(
        self,
        name: str,
        action: Callable[[], Awaitable[Any]],
        compensation: Callable[[], Awaitable[Any]] | None = None,
    ) -> Any:
        """Run one step; on success remember its compensation."""
        result = await action()
        self.resolution.steps.append({"step": name, "state": "done"})
        if compensation is not None:
            self._undo.append((name, compensation, self.resolution))
        return result

    async def compensate(self) -> list[str]:
        """Undo the finished steps, newest first. A compensation that fails for good is
        recorded and the others still run; returns the steps left for a person."""
        left: list[str] = []
        while self._undo:
            name, undo, resolution = self._undo.pop()
            try:
                await undo()
            except Exception as err:
                resolution.steps.append({"step": name, "state": "compensation_failed",
                                         "reason": error_message(err)})
                left.append(name)
                continue
            resolution.steps.append({"step": name, "state": "compensated"})
        return left


def error_type(err: BaseException) -> str | None:
    """The `type` of the business refusal behind a failed activity, if it was one."""
    cause = err.cause if isinstance(err, ActivityError) else None
    return cause.type if isinstance(cause, ApplicationError) else None


def error_message(err: BaseException) -> str:
    """What a failed activity (or any other failure) says, for the timeline."""
    if isinstance(err, ActivityError):
        cause = err.cause
        return str(cause.message if isinstance(cause, ApplicationError) else cause or err)
    return str(err)
