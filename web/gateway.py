"""The web app's way into Temporal: starts cases and sends their updates.

Flask handlers are synchronous and the Temporal client is asyncio, so one event loop
runs in a daemon thread per web process, with one connected client reused by every
request (no per-request connection set-up).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from aftersales.settings import Settings
from aftersales.temporal import connect
from workflows.case.contracts import CaseInput, CaseSnapshot, UpdateResult, workflow_id
from workflows.case.refusals import Refusal
from workflows.case.workflow import CaseWorkflow

T = TypeVar("T")
CONNECT_TIMEOUT = 5.0


class TemporalUnavailable(Exception):
    """Temporal cannot be reached; the request may be retried."""


class OutcomeUnknown(TemporalUnavailable):
    """The command was sent, or may have been, but no answer came in time: it may still
    be applied. Sent again with the same update id, an action learns its outcome."""


MAYBE = ("the change may still be applied. Retry with the same Idempotency-Key to learn "
         "its outcome; without one, read the case before trying again")


class CaseNotRunning(Exception):
    """The case's workflow no longer takes actions (it ended)."""


class ActionRefused(Exception):
    """A validator or the workflow refused the action; `kind` says why (the HTTP
    status), `code` which refusal of workflows/case/refusals.py it is, `params` the
    values its sentence names and `field` the input it is about (None when the failure
    carried none)."""

    def __init__(self, kind: str, message: str, code: str | None = None,
                 params: dict[str, Any] | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code
        self.params = params or {}
        self.field = field

    @classmethod
    def of(cls, why: Refusal) -> ActionRefused:
        """A refusal the web found itself, asking the action table before sending."""
        return cls(why.kind, why.message, why.code, why.params, why.field)

    @classmethod
    def from_failure(cls, cause: ApplicationError) -> ActionRefused:
        """The workflow's refusal: code, params and field from the failure's details."""
        details = cause.details[0] if cause.details else None
        if not isinstance(details, dict):
            details = {}
        code, params, field = details.get("code"), details.get("params"), details.get("field")
        return cls(cause.type or "InvalidAction", cause.message,
                   code if isinstance(code, str) else None,
                   params if isinstance(params, dict) else None,
                   field if isinstance(field, str) else None)


class CaseGateway:
    """Commands to case workflows, callable from synchronous code."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Client | None = None
        self._lock = threading.Lock()

    # -- lifecycle

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        loop = self._ensure_loop()
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # stop waiting in the loop too; the server may still apply it
            raise

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever,
                                                name="temporal-gateway", daemon=True)
                self._thread.start()
            return self._loop

    async def _get_client(self) -> Client:
        if self._client is None:
            try:
                self._client = await asyncio.wait_for(connect(self._settings), CONNECT_TIMEOUT)
            except (TimeoutError, RuntimeError, OSError) as err:
                raise TemporalUnavailable(f"Temporal at {self._settings.temporal_address} "
                                          f"cannot be reached: {err}") from err
        return self._client

    def close(self) -> None:
        """Stop the loop thread; the client's connection goes with it."""
        with self._lock:
            loop, self._loop = self._loop, None
            self._client = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            loop.close()

    # -- commands

    def healthy(self) -> bool:
        async def check() -> bool:
            client = await self._get_client()
            return await client.service_client.check_health(timeout=timedelta(seconds=2))

        try:
            return bool(self._run(check(), CONNECT_TIMEOUT + 3))
        except Exception:
            return False

    def open_case(self, inp: CaseInput) -> UpdateResult:
        """Start the case workflow and wait until its record stage is done."""

        async def start() -> UpdateResult:
            client = await self._get_client()
            operation = WithStartWorkflowOperation(
                CaseWorkflow.run,
                inp,
                id=workflow_id(inp.case_id),
                task_queue=self._settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
            return await client.execute_update_with_start_workflow(
                CaseWorkflow.intake, start_workflow_operation=operation)

        try:
            return self._call(start())
        except OutcomeUnknown as err:
            # A retry opens a new case (a new id): say so, rather than "retry".
            raise OutcomeUnknown(f"Temporal did not answer in time; case {inp.case_id} may "
                                 "still be opened. Look for it before opening the case "
                                 "again") from err

    def act(self, case_id: str, update: str, arg: Any, update_id: str | None = None
            ) -> UpdateResult:
        """Send one update, by its name in the action table, to a running case and
        return its result. With `update_id`, the server runs the update once per case
        run: sent again (after a timeout), it answers with the first outcome."""

        async def send() -> UpdateResult:
            client = await self._get_client()
            handle = client.get_workflow_handle(workflow_id(case_id))
            return await handle.execute_update(update, arg, id=update_id,
                                               result_type=UpdateResult)

        return self._call(send())

    def snapshot(self, case_id: str) -> CaseSnapshot:
        """The case as the workflow holds it right now (a query; changes nothing)."""

        async def query() -> CaseSnapshot:
            client = await self._get_client()
            return await client.get_workflow_handle(workflow_id(case_id)).query(
                CaseWorkflow.snapshot)

        return self._call(query())

    def signal(self, case_id: str, signal: Any, arg: Any) -> None:
        """Deliver an event from outside (a courier scan) to a running case."""

        async def send() -> None:
            client = await self._get_client()
            await client.get_workflow_handle(workflow_id(case_id)).signal(signal, arg)

        self._call(send())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return self._run(coro, self._settings.update_timeout)
        except TemporalUnavailable:
            raise  # no connection: nothing was sent
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError):
                raise ActionRefused.from_failure(cause) from err
            raise ActionRefused("InvalidAction", str(cause or err)) from err
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise CaseNotRunning(err.message) from err
            if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise OutcomeUnknown(f"Temporal did not answer ({err.message}); {MAYBE}") \
                    from err
            raise
        except TimeoutError as err:
            raise OutcomeUnknown(f"Temporal did not answer in time; {MAYBE}") from err
