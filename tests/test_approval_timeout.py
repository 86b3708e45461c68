"""A refund that waits for approval escalates: after the policy's `approval_timeout` the
supervisors are told, after as long again the admins; a decision stops the clock, and a
deny or a cancel meanwhile pays nothing. Durable timers on the time-skipping test server,
the order-system simulator over HTTP, the read model on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from aftersales.policy import PolicyError, load_policy, parse_policy
from tests.conftest import binary, record_history
from tests.test_case_workflow import case_input, case_worker, events_of, outbox_of, start_case
from workflows.case.contracts import (
    Actor,
    AnalyzeInput,
    ApproveInput,
    ConfirmInput,
    ReasonInput,
    Resolution,
    ResolveInput,
)
from workflows.case.workflow import CaseWorkflow
from workflows.sla import BusinessCalendar

pytestmark = pytest.mark.temporal

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
HANK = Actor("hank", "handler")
SUE = Actor("sue", "supervisor")
ADA = Actor("ada", "admin")


@pytest.fixture
async def skipping_env():
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"))
    yield env
    await env.shutdown()


async def waiting_refund(client, task_queue, policy_text: str, order_id: str,
                         amount: str = "600.00"):
    """A refund case at the approval step, under the policy written in `policy_text`."""
    inp = case_input(parse_policy(policy_text))
    inp.kind, inp.order_id = "refund", order_id
    handle = await start_case(client, task_queue, inp)
    await handle.execute_update(CaseWorkflow.confirm, ConfirmInput(HANK, "ok"))
    await handle.execute_update(CaseWorkflow.analyze, AnalyzeInput(
        HANK, "product_quality", "supplier", "faulty"))
    await handle.execute_update(CaseWorkflow.resolve, ResolveInput(
        HANK, Resolution(type="refund", amount=amount)))
    snap = await handle.query(CaseWorkflow.snapshot)
    assert snap.resolution is not None and snap.resolution.awaiting == "approval"
    return inp, handle


async def until(handle, predicate) -> None:
    """Wait for the case to get there (the saga goes on after an update answered)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not predicate(snap := await handle.query(CaseWorkflow.snapshot)):
        assert loop.time() < deadline, (snap.stage, snap.status, snap.resolution)
        await asyncio.sleep(0.1)


def escalations(sessions, case_id: str) -> list[dict]:
    return [e.detail for e in events_of(sessions, case_id) if e.type == "escalated"]


def told(sessions, case_id: str) -> list[tuple[str, str]]:
    return [(m.recipient, m.payload["reason"]) for m in outbox_of(sessions, case_id)
            if m.template == "case_escalated"]


def refunds_of(order_system_url: str, case_id: str) -> list[str]:
    refunds = httpx.get(f"{order_system_url}/refunds", timeout=10).json()
    return [r["amount"] for r in refunds if r["case_id"] == case_id]


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_a_waiting_approval_escalates_to_supervisors_then_admins(
        skipping_env, database, request, order_system_url):
    url = request.getfixturevalue(f"{database}_url")
    async with case_worker(skipping_env.client, url, order_system_url) as (tq, sessions):
        order = "SO-10028" if database == "sqlite" else "SO-10021"
        inp, handle = await waiting_refund(skipping_env.client, tq, "", order)  # shipped: 4h
        await skipping_env.sleep(4 * HOUR - 5 * MINUTE)
        assert escalations(sessions, inp.case_id) == []
        await skipping_env.sleep(10 * MINUTE)
        rule = "a refund of 600.00 waited 4h of working time for approval"
        assert escalations(sessions, inp.case_id) == [
            {"level": 1, "to": "supervisor", "rule": rule, "clock": "approval"}]
        assert told(sessions, inp.case_id) == [("role:supervisor", rule)]
        await skipping_env.sleep(4 * HOUR)
        second = "a refund of 600.00 waited 8h of working time for approval"
        assert [e["to"] for e in escalations(sessions, inp.case_id)] == ["supervisor",
                                                                         "admin"]
        assert told(sessions, inp.case_id)[1] == ("role:admin", second)
        # The admins were the last level: it waits on, told nobody more.
        await skipping_env.sleep(24 * HOUR)
        assert len(escalations(sessions, inp.case_id)) == 2
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.resolution is not None and snap.resolution.awaiting == "approval"
        assert refunds_of(order_system_url, inp.case_id) == []
        await handle.execute_update(CaseWorkflow.approve, ApproveInput(ADA, "finally"))
        await until(handle, lambda snap: snap.stage == "feedback")
        if database == "sqlite":
            await record_history(skipping_env.client, inp.case_id, "approval_escalated")
        assert refunds_of(order_system_url, inp.case_id) == ["600.00"]


async def test_a_decision_in_time_escalates_nothing_and_deny_pays_nothing(
        skipping_env, sqlite_url, order_system_url):
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        inp, handle = await waiting_refund(skipping_env.client, tq,
                                           '[rules]\napproval_timeout = "2h"\n', "SO-10007")
        await skipping_env.sleep(HOUR)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(CaseWorkflow.deny, ReasonInput(HANK, "no"))
        assert "needs the role supervisor or admin" in str(refused.value.cause)
        await handle.execute_update(CaseWorkflow.deny, ReasonInput(SUE, "not covered"))
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.stage == "analyze" and snap.resolution is not None
        assert snap.resolution.state == "failed" and snap.resolution.denied_by == "sue"
        await skipping_env.sleep(10 * HOUR)  # the timer is gone with the wait
        assert escalations(sessions, inp.case_id) == []
        assert refunds_of(order_system_url, inp.case_id) == []
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(CaseWorkflow.deny, ReasonInput(SUE, "again"))
        await record_history(skipping_env.client, inp.case_id, "approval_denied")


async def test_approval_timeout_off_and_counted_in_working_hours(
        skipping_env, sqlite_url, order_system_url):
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        off, off_handle = await waiting_refund(
            skipping_env.client, tq, '[rules]\napproval_timeout = "0s"\n', "SO-10012")
        # Working hours 09-18 every day, UTC: the timeout counts working time only.
        calendar = ('[calendar]\nhours = "09:00-18:00"\nworkdays = ["mon", "tue", "wed", '
                    '"thu", "fri", "sat", "sun"]\n')
        hours, hours_handle = await waiting_refund(
            skipping_env.client, tq, calendar + '[rules]\napproval_timeout = "4h"\n',
            "SO-10030")
        began = (await hours_handle.query(CaseWorkflow.snapshot)).updated_at
        due = BusinessCalendar.from_spec(parse_policy(calendar).calendar).add(began, 4 * 3600)
        await skipping_env.sleep(due - await skipping_env.get_current_time() - MINUTE)
        assert escalations(sessions, hours.case_id) == []
        await skipping_env.sleep(2 * MINUTE)
        assert [e["level"] for e in escalations(sessions, hours.case_id)] == [1]
        # Every day has 9 working hours: the next 4 come within a day.
        await skipping_env.sleep(24 * HOUR)
        assert len(escalations(sessions, hours.case_id)) == 2
        assert escalations(sessions, off.case_id) == []
        # Cancelled while waiting: released, and nothing is paid.
        await off_handle.execute_update(CaseWorkflow.cancel, ReasonInput(HANK, "withdrawn"))
        snap = await off_handle.query(CaseWorkflow.snapshot)
        assert snap.stage == "cancelled" and snap.resolution is not None
        assert snap.resolution.state == "failed"
        assert "resolution_withdrawn" in [e.type for e in events_of(sessions, off.case_id)]
        assert refunds_of(order_system_url, off.case_id) == []
        await record_history(skipping_env.client, off.case_id, "approval_cancelled")


def test_approval_timeout_in_the_policy_file():
    assert load_policy().approval_timeout == 4 * 3600
    assert parse_policy("").approval_timeout == 4 * 3600
    assert parse_policy('[rules]\napproval_timeout = "1d12h"\n').approval_timeout == 129600
    assert parse_policy('[rules]\napproval_timeout = "0s"\n').approval_timeout == 0
    for value, says in (('"soon"', "invalid duration 'soon'"), ("4", "must be a string"),
                        ('"-4h"', "invalid duration"), ('""', "invalid duration")):
        with pytest.raises(PolicyError) as error:
            parse_policy(f'[rules]\nfeedback_window = "72h"\napproval_timeout = {value}\n')
        assert error.value.line == 3
        assert "line 3: approval_timeout in [rules]" in str(error.value)
        assert says in str(error.value)
