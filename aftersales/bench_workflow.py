"""The bare Temporal baseline for `aftersales bench`: a workflow with the same shape as a
case (one activity at intake, five updates that each write once, one activity while
resolving) and none of the domain, so the bench can say what Aftersales costs on top
of Temporal itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200))
STEPS = ("confirm", "analyze", "resolve", "feedback", "revisit")


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
        self._started = False

    @workflow.run
    async def run(self, inp: BareInput) -> int:
        await workflow.execute_activity(bare_io, "lookup",
                                        start_to_close_timeout=timedelta(seconds=10),
                                        retry_policy=RETRY)
        self._started = True
        await workflow.wait_condition(lambda: len(self._done) == len(STEPS))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return len(self._done)

    @workflow.update
    async def step(self, inp: BareStep) -> int:
        await workflow.wait_condition(lambda: self._started)
        if inp.name == "resolve":
            await workflow.execute_activity(bare_io, "resolve",
                                            start_to_close_timeout=timedelta(seconds=10),
                                            retry_policy=RETRY)
        await workflow.execute_local_activity(bare_io, inp.name,
                                              start_to_close_timeout=timedelta(seconds=10),
                                              retry_policy=RETRY)
        self._done.append(inp.name)
        return len(self._done)

    @step.validator
    def _validate_step(self, inp: BareStep) -> None:
        if inp.name not in STEPS or inp.name in self._done:
            raise ValueError(f"step {inp.name} not allowed now")
