"""A small saga runner for resolutions that span several systems.

Each step runs an action and, once it succeeded, registers how to undo it. When a
later step fails for good, the registered compensations run in reverse order. Step
results and compensations are recorded on the resolution so the timeline shows what
happened in which system.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from workflows.domain import Resolution


class Saga:
    """Runs steps in order and compensates the finished ones when a step fails."""

    def __init__(self, resolution: Resolution) -> None:
        self._resolution = resolution
        self._undo: list[tuple[str, Callable[[], Awaitable[Any]]]] = []

    async def step(
        self,
        name: str,
        action: Callable[[], Awaitable[Any]],
        compensation: Callable[[], Awaitable[Any]] | None = None,
    ) -> Any:
        """Run one step; on success remember its compensation."""
        result = await action()
        self._resolution.steps.append({"step": name, "state": "done"})
        if compensation is not None:
            self._undo.append((name, compensation))
        return result

    async def compensate(self) -> list[str]:
        """Undo the finished steps, newest first. A compensation that fails for good is
        recorded and the others still run; returns the steps left for a person."""
        left: list[str] = []
        while self._undo:
            name, undo = self._undo.pop()
            try:
                await undo()
            except Exception as err:
                self._resolution.steps.append({"step": name, "state": "compensation_failed",
                                               "reason": str(getattr(err, "cause", None)
                                                             or err)})
                left.append(name)
                continue
            self._resolution.steps.append({"step": name, "state": "compensated"})
        return left
