"""The bare Temporal baseline for `aftersales bench`: a workflow with the same Temporal
shape as the bench's case lifecycle and none of the domain, so the bench can say what
Aftersales costs on top of Temporal itself.

The shape is read off a real case's history (the bench prints both, `shape` and
`bare_shape`, and the dev-stack test checks they agree): the case is opened by an
update-with-start that looks the order up (an activity), runs triage and writes the
read model (local activities) and sends the customer's notification (an activity the
workflow starts and does not wait for); each staff or customer action is an update that
writes the read model, and some start a notification or call the order system.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200))
TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True)
class Step:
    awaited: int = 0  # activities the update waits for (order lookup, compensation)
    local: int = 0  # local activities (triage, read-model writes)
    background: int = 0  # activities started and not waited for (notifications)


# Per update, in lifecycle order: what the case workflow does for it in the bench.
PLAN = {
    "intake": Step(awaited=1, local=2, background=1),
    "confirm": Step(local=1, background=1),
    "analyze": Step(local=1),
    "resolve": Step(awaited=1, local=2, background=1),
    "feedback": Step(local=1),
    "revisit": Step(local=1),
}
STEPS = tuple(name for name in PLAN if name != "intake")


@dataclass
class BareInput:
    case_id: str


@dataclass
class BareStep:
    name: str


@activity.defn(name="bare_io")
async def bare_io(name: str) -> str:
    return name


@workflow.defn
class BareCaseWorkflow:
    def __init__(self) -> None:
        self._done: list[str] = []
        self._background: list[asyncio.Future] = []

    @workflow.run
    async def run(self, inp: BareInput) -> int:
        await workflow.wait_condition(lambda: len(self._done) == len(PLAN))
        await workflow.wait_condition(workflow.all_handlers_finished)
        await asyncio.gather(*self._background)
        return len(self._done)

    @workflow.update
    async def step(self, inp: BareStep) -> int:
        plan = PLAN[inp.name]
        for _ in range(plan.awaited):
            await workflow.execute_activity(bare_io, inp.name, start_to_close_timeout=TIMEOUT,
                                            retry_policy=RETRY)
        for _ in range(plan.local):
            await workflow.execute_local_activity(bare_io, inp.name,
                                                  start_to_close_timeout=TIMEOUT,
                                                  retry_policy=RETRY)
        for _ in range(plan.background):
            self._background.append(workflow.start_activity(
                bare_io, inp.name, start_to_close_timeout=TIMEOUT, retry_policy=RETRY))
        self._done.append(inp.name)
        return len(self._done)

    @step.validator
    def _validate_step(self, inp: BareStep) -> None:
        expected = list(PLAN)[len(self._done)] if len(self._done) < len(PLAN) else None
        if inp.name != expected:
            raise ValueError(f"step {inp.name} not allowed now")
