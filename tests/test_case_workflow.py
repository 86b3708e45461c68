"""CaseWorkflow's deadlines on the time-skipping test server, and its update
validators on the real dev server. Activities are the real ones: the order lookup
over HTTP to the simulator, the projection into a SQLite read model."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.projection import CaseProjector
from aftersales.worker import SystemClients, build_worker
from db.engine import make_engine, make_sessionmaker
from db.links import LinkSeal
from db.models import OutboxMessage, TimelineEvent
from tests.conftest import binary, make_settings, record_history, settled_history_length
from workflows.case.contracts import (
    Actor,
    AnalyzeInput,
    CaseInput,
    ConfirmInput,
    Customer,
    FeedbackInput,
    Projection,
    ReasonInput,
    ReplyInput,
    RequestInfoInput,
    Resolution,
    ResolveInput,
    RevisitInput,
    StaffReplyInput,
)
from workflows.case.workflow import CaseWorkflow
from workflows.sla import CalendarSpec, SlaPolicy

pytestmark = pytest.mark.temporal  # the time-skipping test server, the dev server
ALICE = Actor("alice", "handler")
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def case_input(policy: SlaPolicy | None = None, priority: str | None = None) -> CaseInput:
    case_id = "AS-T" + uuid.uuid4().hex[:8].upper()
    return CaseInput(
        case_id=case_id, kind="complaint", channel="phone", order_id="SO-10003",
        customer=Customer(id="C-1003", name="张伟", phone="13800000003"),
        items=[], description="收到的水壶不加热", status_token=uuid.uuid4().hex,
        customer_url="http://testserver/s/x", policy=policy or SlaPolicy(),
        opened_by="alice", priority=priority, publish_search_attributes=False,
    )


@asynccontextmanager
async def case_worker(client: Client, database_url: str, order_system_url: str):
    settings = make_settings("unused", database_url, order_system_url)
    engine = make_engine(database_url)
    systems = SystemClients.from_settings(settings)
    worker = build_worker(client, settings, systems, CaseProjector(make_sessionmaker(engine),
                                                               LinkSeal(settings.secret_key)))
    async with worker:
        yield settings.task_queue, make_sessionmaker(engine)
    await systems.aclose()
    engine.dispose()


async def start_case(client: Client, task_queue: str, inp: CaseInput):
    handle = await client.start_workflow(CaseWorkflow.run, inp, id=f"case-{inp.case_id}",
                                         task_queue=task_queue)
    await handle.execute_update(CaseWorkflow.intake)
    return handle


def events_of(sessions, case_id: str) -> list[TimelineEvent]:
    with sessions() as session:
        return list(session.scalars(select(TimelineEvent).where(
            TimelineEvent.case_id == case_id).order_by(TimelineEvent.seq)))


def outbox_of(sessions, case_id: str) -> list[OutboxMessage]:
    with sessions() as session:
        return list(session.scalars(select(OutboxMessage).where(
            OutboxMessage.case_id == case_id)))


@pytest.fixture
async def skipping_env():
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"))
    yield env
    await env.shutdown()


async def test_confirm_deadline_two_days_out_fires_and_escalates(
        skipping_env, sqlite_url, order_system_url):
    policy = SlaPolicy()
    policy.targets["complaint"]["P3"] = replace(policy.targets["complaint"]["P3"],
                                                confirm=2 * 86400)
    # The breach raises the case to P2; give P2 room so only the confirm clock breaches.
    policy.targets["complaint"]["P2"] = replace(policy.targets["complaint"]["P2"],
                                                resolution=5 * 86400)
    inp = case_input(policy)
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(skipping_env.client, tq, inp)
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.stage == "confirm" and not snap.overdue
        await skipping_env.sleep(2 * DAY - HOUR)
        assert not (await handle.query(CaseWorkflow.snapshot)).overdue
        await skipping_env.sleep(2 * HOUR)
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.overdue
        assert [b["clock"] for b in snap.breaches] == ["confirm"]
        types = [e.type for e in events_of(sessions, inp.case_id)]
        assert "overdue" in types and "escalated" in types
        escalation = [m for m in outbox_of(sessions, inp.case_id)
                      if m.template == "case_overdue"]
        assert [m.recipient for m in escalation] == ["role:supervisor"]

        # Confirming late ends the clock breached; the breach stays on record.
        await handle.execute_update(CaseWorkflow.confirm, ConfirmInput(ALICE, "sorry, late"))
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.stage == "analyze" and not snap.overdue
        assert [c.state for c in snap.clocks if c.name == "confirm"] == ["breached"]
        assert len(snap.breaches) == 1
        await record_history(skipping_env.client, inp.case_id, "overdue")


async def test_revisit_becomes_due_three_days_after_resolution(
        skipping_env, sqlite_url, order_system_url):
    inp = case_input()  # P3: revisit 3 days after resolution
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(skipping_env.client, tq, inp)
        await handle.execute_update(CaseWorkflow.confirm, ConfirmInput(ALICE, "ok"))
        await handle.execute_update(CaseWorkflow.analyze, AnalyzeInput(
            ALICE, "product_quality", "supplier", "heating element faulty"))
        await handle.execute_update(CaseWorkflow.resolve, ResolveInput(
            ALICE, Resolution(type="apology"), "we are sorry"))
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.stage == "feedback"
        resolved_at = snap.resolution.done_at
        await handle.execute_update(CaseWorkflow.feedback, FeedbackInput(4, "ok"))
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.stage == "revisit"
        assert snap.revisit_due_at == resolved_at + 3 * DAY

        await skipping_env.sleep(3 * DAY - HOUR)
        assert "revisit_due" not in [e.type for e in events_of(sessions, inp.case_id)]
        await skipping_env.sleep(2 * HOUR)
        assert "revisit_due" in [e.type for e in events_of(sessions, inp.case_id)]
        assert any(m.template == "revisit_due" and m.recipient == "alice"
                   for m in outbox_of(sessions, inp.case_id))
        assert not (await handle.query(CaseWorkflow.snapshot)).overdue
        # The handler has a day (revisit_grace) to make the call before it is overdue.
        await skipping_env.sleep(DAY)
        assert (await handle.query(CaseWorkflow.snapshot)).overdue

        await handle.execute_update(CaseWorkflow.revisit, RevisitInput(ALICE, "satisfied"))
        assert (await handle.query(CaseWorkflow.snapshot)).stage == "closed"


async def test_low_rating_makes_revisit_due_at_once(skipping_env, sqlite_url, order_system_url):
    inp = case_input()
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(skipping_env.client, tq, inp)
        await handle.execute_update(CaseWorkflow.confirm, ConfirmInput(ALICE, "ok"))
        await handle.execute_update(CaseWorkflow.analyze, AnalyzeInput(
            ALICE, "service_attitude", "merchant", "rude agent"))
        await handle.execute_update(CaseWorkflow.resolve, ResolveInput(
            ALICE, Resolution(type="apology"), "sorry"))
        await handle.execute_update(CaseWorkflow.feedback, FeedbackInput(1, "still angry"))
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.revisit_due_at <= snap.updated_at
        await skipping_env.sleep(timedelta(minutes=1))
        assert "revisit_due" in [e.type for e in events_of(sessions, inp.case_id)]


async def test_request_info_pause_keeps_used_time(skipping_env, sqlite_url, order_system_url):
    inp = case_input()  # P3: confirm within 8 h
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, _):
        handle = await start_case(skipping_env.client, tq, inp)
        await skipping_env.sleep(2 * HOUR)
        await handle.execute_update(CaseWorkflow.request_info,
                                    RequestInfoInput(ALICE, "请提供照片"))
        snap = await handle.query(CaseWorkflow.snapshot)
        confirm = next(c for c in snap.clocks if c.name == "confirm")
        assert confirm.state == "paused" and confirm.due_at is None
        assert abs(confirm.used - 2 * 3600) < 60

        await skipping_env.sleep(10 * HOUR)  # longer than the target: no breach while paused
        snap = await handle.query(CaseWorkflow.snapshot)
        assert not snap.overdue and snap.status == "waiting_on_customer"

        await handle.execute_update(CaseWorkflow.reply, ReplyInput("照片已发"))
        snap = await handle.query(CaseWorkflow.snapshot)
        confirm = next(c for c in snap.clocks if c.name == "confirm")
        assert confirm.state == "running"
        remaining = confirm.due_at - snap.updated_at
        assert abs(remaining - 6 * HOUR) < timedelta(minutes=1)

        # The answer waits for a reply; the handler writes back, so only confirm runs on.
        await handle.execute_update(CaseWorkflow.staff_reply, StaffReplyInput(ALICE, "收到"))
        await skipping_env.sleep(5 * HOUR)
        assert not (await handle.query(CaseWorkflow.snapshot)).overdue
        await skipping_env.sleep(2 * HOUR)
        assert (await handle.query(CaseWorkflow.snapshot)).overdue


async def test_priority_change_keeps_used_time(skipping_env, sqlite_url, order_system_url):
    inp = case_input()  # P3: analyze 24 h, resolution 72 h
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, _):
        handle = await start_case(skipping_env.client, tq, inp)
        await skipping_env.sleep(10 * HOUR)
        await handle.execute_update(CaseWorkflow.confirm,
                                    ConfirmInput(ALICE, "urgent after all", priority="P2"))
        snap = await handle.query(CaseWorkflow.snapshot)
        resolution = next(c for c in snap.clocks if c.name == "resolution")
        # P2's 48 h resolution target, 10 h of it already used.
        assert resolution.target == 48 * 3600
        assert abs((resolution.due_at - snap.updated_at) - 38 * HOUR) < timedelta(minutes=1)


async def test_feedback_window_ends_as_no_response(skipping_env, sqlite_url, order_system_url):
    inp = case_input()
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(skipping_env.client, tq, inp)
        await handle.execute_update(CaseWorkflow.confirm, ConfirmInput(ALICE, "ok"))
        await handle.execute_update(CaseWorkflow.analyze, AnalyzeInput(
            ALICE, "late_delivery", "courier", "late"))
        await handle.execute_update(CaseWorkflow.resolve, ResolveInput(
            ALICE, Resolution(type="apology"), "sorry"))
        await skipping_env.sleep(72 * HOUR + timedelta(minutes=1))
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.stage == "revisit" and snap.rating is None
        timeouts = [e for e in events_of(sessions, inp.case_id) if e.type == "feedback_timeout"]
        assert timeouts and timeouts[0].detail == {"outcome": "no response"}


async def test_wrong_stage_update_is_refused_before_history(
        temporal_address, sqlite_url, order_system_url):
    client = await Client.connect(temporal_address)
    inp = replace(case_input(), publish_search_attributes=True)
    async with case_worker(client, sqlite_url, order_system_url) as (tq, _):
        handle = await start_case(client, tq, inp)
        before = await settled_history_length(handle)
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update(CaseWorkflow.revisit, RevisitInput(ALICE, "satisfied"))
        assert "not allowed while the case is in stage 'confirm'" in str(info.value.cause)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(CaseWorkflow.feedback, FeedbackInput(5))
        after = len((await handle.fetch_history()).events)
        assert after == before
        assert (await handle.query(CaseWorkflow.snapshot)).stage == "confirm"
        # A valid update right after still works.
        await handle.execute_update(CaseWorkflow.confirm, ConfirmInput(ALICE, "ok"))
        assert (await handle.query(CaseWorkflow.snapshot)).stage == "analyze"
        # Operators can find the case by its search attributes (visibility lags a little).
        query = f'WorkflowId = "case-{inp.case_id}" AND CaseStage = "analyze"'
        found = []
        for _ in range(50):
            found = [wf.id async for wf in client.list_workflows(query)]
            if found:
                break
            await asyncio.sleep(0.2)
        assert found == [f"case-{inp.case_id}"]
        await handle.terminate("test done")


def _events(sessions, case_id: str, kind: str) -> list[TimelineEvent]:
    return [e for e in events_of(sessions, case_id) if e.type == kind]


async def test_warnings_and_both_escalation_levels_fire_once_each_on_time(
        skipping_env, sqlite_url, order_system_url):
    policy = SlaPolicy()
    # Give P2 (the level the breach raises the case to) room, so only confirm breaches.
    policy.targets["complaint"]["P2"] = replace(policy.targets["complaint"]["P2"],
                                                resolution=6 * 86400)
    inp = case_input(policy)  # P3: confirm 8 h; warnings at 4 h, 6 h, 7.2 h
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(skipping_env.client, tq, inp)
        opened = (await handle.query(CaseWorkflow.snapshot)).created_at

        async def at(hours: float):
            now = await skipping_env.get_current_time()
            target = opened + timedelta(hours=hours)
            if target > now:
                await skipping_env.sleep(target - now)
            await handle.query(CaseWorkflow.snapshot)  # let due timers fire

        await at(3.9)
        assert _events(sessions, inp.case_id, "sla_warning") == []
        await at(4.1)
        assert [e.detail["share"] for e in _events(sessions, inp.case_id, "sla_warning")] == [0.5]
        await at(7.3)
        warnings = _events(sessions, inp.case_id, "sla_warning")
        assert [e.detail["share"] for e in warnings] == [0.5, 0.75, 0.9]
        for warning, hours in zip(warnings, (4, 6, 7.2), strict=True):
            assert abs((warning.at.replace(tzinfo=opened.tzinfo) - opened)
                       - timedelta(hours=hours)) < timedelta(minutes=1)
        assert any(m.template == "sla_warning" for m in outbox_of(sessions, inp.case_id))
        assert _events(sessions, inp.case_id, "escalated") == []

        await at(8.1)
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.overdue and snap.priority == "P2"
        level1 = _events(sessions, inp.case_id, "escalated")
        assert [e.detail["level"] for e in level1] == [1]
        assert level1[0].detail["priority"] == {"from": "P3", "to": "P2"}
        assert "100% of the confirm target (8h) for P3" in level1[0].detail["rule"]

        await at(11.9)
        assert len(_events(sessions, inp.case_id, "escalated")) == 1
        await at(12.1)
        levels = [e.detail["level"] for e in _events(sessions, inp.case_id, "escalated")]
        assert levels == [1, 2]
        recipients = {m.recipient for m in outbox_of(sessions, inp.case_id)
                      if m.template.startswith("case_overdue")}
        assert recipients == {"role:supervisor", "role:admin"}

        await at(60)  # nothing fires twice
        assert len(_events(sessions, inp.case_id, "sla_warning")) == 3
        assert len(_events(sessions, inp.case_id, "escalated")) == 2
        assert len(_events(sessions, inp.case_id, "overdue")) == 1


async def test_business_calendar_across_a_weekend_and_a_holiday(
        skipping_env, sqlite_url, order_system_url):
    zone = ZoneInfo("Asia/Shanghai")
    now = (await skipping_env.get_current_time()).astimezone(zone)
    # Skip to the next Friday 17:00 in Shanghai; the Monday after is a holiday.
    days_ahead = (4 - now.weekday()) % 7 or 7
    friday = (now + timedelta(days=days_ahead)).replace(hour=17, minute=0, second=0,
                                                       microsecond=0)
    monday = (friday + timedelta(days=3)).date()
    policy = replace(SlaPolicy(), calendar=CalendarSpec(
        timezone="Asia/Shanghai", hours="09:00-18:00",
        workdays=["mon", "tue", "wed", "thu", "fri"], holidays=[monday.isoformat()]))
    await skipping_env.sleep(friday - now)
    inp = case_input(policy)  # P3: confirm within 8 working hours
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(skipping_env.client, tq, inp)
        snap = await handle.query(CaseWorkflow.snapshot)
        confirm = next(c for c in snap.clocks if c.name == "confirm")
        # Fri 17-18 (1 h), weekend and the holiday skipped, Tue 09-16 (7 h).
        expected = friday.replace(hour=16) + timedelta(days=4)
        assert abs(confirm.due_at - expected) < timedelta(minutes=1)
        assert snap.stage_due_at == confirm.due_at

        await skipping_env.sleep(expected - timedelta(minutes=10) - friday)
        snap = await handle.query(CaseWorkflow.snapshot)
        assert not snap.overdue
        # 50 % (4 h) was reached on Tuesday 12:00, not during the weekend.
        warning = _events(sessions, inp.case_id, "sla_warning")[0]
        assert warning.at.replace(tzinfo=UTC).astimezone(zone).strftime(
            "%a %H:%M") == "Tue 12:00"
        await skipping_env.sleep(timedelta(minutes=20))
        assert (await handle.query(CaseWorkflow.snapshot)).overdue


async def test_a_case_paused_for_three_days_is_not_overdue(
        skipping_env, sqlite_url, order_system_url):
    inp = case_input()  # P3: confirm 8 h, resolution 72 h
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(skipping_env.client, tq, inp)
        await skipping_env.sleep(HOUR)
        await handle.execute_update(CaseWorkflow.request_info,
                                    RequestInfoInput(ALICE, "哪一件有问题？"))
        await skipping_env.sleep(3 * DAY)
        snap = await handle.query(CaseWorkflow.snapshot)
        assert not snap.overdue and snap.breaches == []
        assert {c.state for c in snap.clocks} == {"paused"}
        assert {c.paused_reason for c in snap.clocks} == {"waiting_on_customer"}
        assert _events(sessions, inp.case_id, "sla_warning") == []
        await handle.execute_update(CaseWorkflow.reply, ReplyInput("第二件"))
        snap = await handle.query(CaseWorkflow.snapshot)
        resolution = next(c for c in snap.clocks if c.name == "resolution")
        assert abs((resolution.due_at - snap.updated_at) - 71 * HOUR) < timedelta(minutes=1)


async def test_intake_priority_is_scored_and_explained(
        skipping_env, sqlite_url, order_system_url):
    inp = replace(case_input(), customer=Customer(id="C-1001", name="王芳", tier="vip"),
                  description="再不处理我就打12315", recent_cases=["AS-OLD1"])
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, _):
        handle = await start_case(skipping_env.client, tq, inp)
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.priority == "P1"  # P3, VIP +1, 12315 +1, repeat +1, never past P1
        text = " | ".join(snap.priority_reasons)
        assert "vip" in text and "12315" in text and "AS-OLD1" in text
        assert snap.sla_policy == {"source": "shipped", "version": "default"}


async def test_a_denied_threat_does_not_raise_the_priority_and_marks_the_patch(
        skipping_env, sqlite_url, order_system_url):
    """Where reading by clause differs from the old reading, the case takes the new one
    and records the `escalation-clauses` patch (its replays keep it); where both agree,
    no marker is written."""
    denied = replace(case_input(), description="No need for a lawyer, just refund me")
    plain = case_input()
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, _):
        for inp, marked in ((denied, True), (plain, False)):
            handle = await start_case(skipping_env.client, tq, inp)
            snap = await handle.query(CaseWorkflow.snapshot)
            assert snap.priority == "P3", snap.priority_reasons
            markers = [marker.details["patch-data"].payloads[0].data
                       for e in (await handle.fetch_history()).events
                       if e.HasField("marker_recorded_event_attributes")
                       and (marker := e.marker_recorded_event_attributes).marker_name
                       == "core_patch"]
            assert any(b"escalation-clauses" in m for m in markers) is marked, markers


async def test_reopen_after_an_unsatisfied_revisit_and_cancel(
        temporal_address, sqlite_url, order_system_url):
    client = await Client.connect(temporal_address)
    inp = replace(case_input(), publish_search_attributes=True)
    async with case_worker(client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(client, tq, inp)
        await handle.execute_update(CaseWorkflow.confirm, ConfirmInput(ALICE, "ok"))
        await handle.execute_update(CaseWorkflow.analyze, AnalyzeInput(
            ALICE, "product_quality", "supplier", "kettle leaks"))
        await handle.execute_update(CaseWorkflow.resolve, ResolveInput(
            ALICE, Resolution(type="compensation", points=300), "points"))
        await handle.execute_update(CaseWorkflow.feedback, FeedbackInput(2, "still leaks"))
        await handle.execute_update(CaseWorkflow.revisit, RevisitInput(
            ALICE, "unsatisfied", "wants a new kettle"))
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.stage == "analyze" and snap.reopen_count == 1
        assert [c.state for c in snap.clocks if c.name == "analyze"][-1] == "running"
        await handle.execute_update(CaseWorkflow.cancel, ReasonInput(ALICE, "customer withdrew"))
        result = await handle.result()
        assert (result.stage, result.recorded) == ("cancelled", True)
        types = [e.type for e in events_of(sessions, inp.case_id)]
        assert types.count("reopened") == 1 and types[-1] == "cancelled"
        await record_history(client, inp.case_id, "reopen_cancel")


async def test_a_shorter_target_at_confirm_records_the_breach(
        skipping_env, sqlite_url, order_system_url):
    inp = case_input()  # P3: confirm within 8 h
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(skipping_env.client, tq, inp)
        await skipping_env.sleep(3 * HOUR)
        await handle.execute_update(CaseWorkflow.confirm,
                                    ConfirmInput(ALICE, "VIP after all", priority="P1"))
        snap = await handle.query(CaseWorkflow.snapshot)
        # 3 h used against P1's 30 min: breached, and on record, not silently.
        assert [c.state for c in snap.clocks if c.name == "confirm"] == ["breached"]
        assert [b["clock"] for b in snap.breaches] == ["confirm"]
        assert [e.detail["clock"] for e in _events(sessions, inp.case_id, "overdue")] == [
            "confirm"]


async def test_at_risk_mark_is_three_quarters_of_the_target_and_clears_on_pause(
        skipping_env, sqlite_url, order_system_url):
    from db.models import Case

    inp = case_input()  # P3 on the 24x7 calendar: confirm within 8 h
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(skipping_env.client, tq, inp)
        snap = await handle.query(CaseWorkflow.snapshot)
        # The earliest 75 % mark of the running clocks: confirm's, at 6 of its 8 hours.
        assert abs(snap.at_risk_at - (snap.created_at + 6 * HOUR)) < timedelta(seconds=5)
        await skipping_env.sleep(6 * HOUR + timedelta(minutes=5))  # the 75 % warning flushes
        with sessions() as session:
            row = session.get(Case, inp.case_id)
            assert row is not None and not row.overdue
            assert abs(row.at_risk_at.replace(tzinfo=UTC) - (snap.created_at + 6 * HOUR)) \
                < timedelta(seconds=5)
        # Waiting on the customer stops the clocks: nothing is at risk meanwhile.
        await handle.execute_update(CaseWorkflow.request_info,
                                    RequestInfoInput(ALICE, "哪一件有问题？"))
        with sessions() as session:
            assert session.get(Case, inp.case_id).at_risk_at is None


async def test_a_slow_read_model_write_does_not_make_deadlines_fire_late(
        temporal_address, sqlite_url, order_system_url):
    """Each projection write (a local activity) takes 1.5 s here, yet every warning and the
    breach fire on time: the workflow's clock moves on with the local activity, so a timer
    set after a write is not late by the write's length, and lateness does not add up from
    one write to the next. The marks (8, 12, 14.4 and 16 s) are further apart than a write,
    so a timer never falls due while the previous mark's write still holds the workflow."""
    from db.models import Case

    WRITE_S, TARGET_S = 1.5, 16

    class SlowProjector(CaseProjector):
        @activity.defn(name="project_case")
        async def project(self, projection: Projection) -> None:
            await asyncio.sleep(WRITE_S)
            await super().project(projection)

    policy = SlaPolicy()
    policy.targets["complaint"] = {level: replace(t, confirm=TARGET_S)
                                   for level, t in policy.targets["complaint"].items()}
    inp = case_input(policy)
    client = await Client.connect(temporal_address)
    settings = make_settings(temporal_address, sqlite_url, order_system_url)
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    systems = SystemClients.from_settings(settings)
    worker = build_worker(client, settings, systems,
                          SlowProjector(sessions, LinkSeal(settings.secret_key)))
    try:
        async with worker:
            await start_case(client, settings.task_queue, inp)
            for _ in range(400):
                with sessions() as session:
                    row = session.get(Case, inp.case_id)
                    if row is not None and row.overdue:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the confirm deadline never fired")
            with sessions() as session:
                clock = next(c for c in session.get(Case, inp.case_id).data["clocks"]
                             if c["name"] == "confirm")
                started = datetime.fromisoformat(clock["running_since"].replace("Z", "+00:00"))
    finally:
        await systems.aclose()
    marks = [(0.5, "sla_warning"), (0.75, "sla_warning"), (0.9, "sla_warning"),
             (1.0, "overdue")]
    fired = [e for e in events_of(sessions, inp.case_id)
             if e.type in ("sla_warning", "overdue") and e.detail.get("clock") == "confirm"]
    engine.dispose()
    assert [e.type for e in fired] == [kind for _, kind in marks]
    for (share, _), event in zip(marks, fired, strict=True):
        late = (event.at.replace(tzinfo=UTC) - started).total_seconds() - share * TARGET_S
        # A deadline that waited for the write before it would be WRITE_S late or more.
        assert -0.05 <= late < WRITE_S * 0.8, (share, late)
