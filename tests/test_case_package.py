"""The case package: the action table is the one definition every layer reads, the
deadline module is pure, and a lifecycle asks Temporal for one deadline timer and
upserts search attributes only when one changed. The lifecycle here is recorded as
`tests/histories/tag_lifecycle.json` for the replay test."""

from __future__ import annotations

import uuid
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import workflow
from temporalio.client import Client

from tests.conftest import record_history
from tests.test_case_workflow import ALICE, case_input, case_worker, events_of, start_case
from web.auth import PERMISSIONS
from web.openapi import build_spec
from web.schemas import ACTION_SCHEMAS
from workflows.case import deadlines
from workflows.case.contracts import (
    Actor,
    AnalyzeInput,
    CaseSnapshot,
    CaseState,
    ConfirmInput,
    Customer,
    FeedbackInput,
    Resolution,
    ResolveInput,
    RevisitInput,
    StageClock,
    TagInput,
)
from workflows.case.lifecycle import ACTIONS, BY_NAME, MOVES, STAFF_ACTIONS, available, refusal
from workflows.case.vocabulary import OPEN_STAGES, STAGES, Stage
from workflows.case.workflow import CaseWorkflow
from workflows.sla import BusinessCalendar, SlaPolicy

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
HANDLER = Actor("hank", "handler")
SUPERVISOR = Actor("sue", "supervisor")


def state(**changes) -> CaseState:
    base = CaseState(case_id="AS-1", kind="complaint", channel="web", order_id="SO-1",
                     customer=Customer(id="C-1", name="王芳"), items=[], description="坏了",
                     status_token="", customer_url="http://x/s/t")
    return replace(base, **changes)


# ------------------------------------------------------------ the table


def test_every_row_names_an_update_of_the_workflow_with_its_input_type():
    updates = workflow._Definition.from_class(CaseWorkflow).updates
    for action in ACTIONS:
        assert action.update in updates, action.name
        assert updates[action.update].arg_types == [action.input], action.name
    # And nothing the workflow takes is missing from the table: intake is the system's,
    # erase the operator's (`aftersales privacy erase`, never a person's action on a case),
    # unassign the access lifecycle's (a deactivated assignee's cases back to the queue).
    assert set(updates) - {a.update for a in ACTIONS} == {"intake", "erase", "unassign"}


def test_every_layer_reads_the_table():
    assert set(ACTION_SCHEMAS) == {a.name for a in STAFF_ACTIONS}
    for action in STAFF_ACTIONS:
        assert ACTION_SCHEMAS[action.name].contract is action.input
        assert PERMISSIONS[action.permission] == action.roles
    paths = build_spec()["paths"]
    for action in STAFF_ACTIONS:
        operation = paths[f"/api/v1/cases/{{case_id}}/{action.name}"]["post"]
        assert operation["summary"] == action.summary
        assert ", ".join(action.stages) in operation["description"]


def test_moves_lead_only_between_stages_and_every_open_stage_can_be_left():
    assert all(a in STAGES and b in STAGES and a != b for a, b in MOVES)
    for stage in OPEN_STAGES:
        assert any(a == stage for a, _ in MOVES), stage
    assert not any(a == Stage.CANCELLED for a, _ in MOVES)


def test_refusal_says_stage_role_and_state_in_that_order():
    confirm, approve = BY_NAME["confirm"], BY_NAME["approve"]
    assert refusal(confirm, state(stage="analyze"), HANDLER, NOW).kind == "WrongStage"
    waiting = state(stage="resolve", resolution=Resolution(type="refund", amount="900",
                                                          awaiting="approval"))
    assert refusal(approve, waiting, HANDLER, NOW).kind == "Forbidden"
    assert refusal(approve, waiting, SUPERVISOR, NOW) is None
    assert refusal(approve, replace(waiting, resolution=Resolution(type="refund")),
                   SUPERVISOR, NOW).kind == "WrongStage"


def test_available_actions_follow_the_state():
    names = [a.name for a in available(state(stage="confirm"), HANDLER, NOW)]
    assert names == ["confirm", "request-info", "assign", "tag", "reply", "note",
                     "escalate", "merge", "reject", "cancel"]
    asked = state(stage="analyze", pending_question="photo?", assignee="hank")
    names = [a.name for a in available(asked, HANDLER, NOW)]
    assert "request-info" not in names and "assign" not in names  # asked; already theirs
    closed_long_ago = state(stage="closed", closed_at=NOW - timedelta(days=31))
    assert available(closed_long_ago, SUPERVISOR, NOW) == []
    merged = state(stage="closed", closed_at=NOW, merged_into="AS-2222222222")
    assert available(merged, SUPERVISOR, NOW) == []  # its workflow has ended


def test_the_snapshot_is_the_state_plus_what_follows_from_it():
    state_names = {f.name for f in fields(CaseState)}
    snapshot_names = {f.name for f in fields(CaseSnapshot)}
    assert state_names < snapshot_names
    assert snapshot_names - state_names == {"version", "updated_at", "stage_due_at",
                                            "resolution_due_at", "overdue", "at_risk_at",
                                            "sla_policy", "refundable", "approval_limit"}


# ------------------------------------------------------------ deadlines (pure)


def test_next_instant_is_the_earliest_pending_mark():
    policy, calendar = SlaPolicy(), BusinessCalendar.from_spec(SlaPolicy().calendar)
    pick = deadlines.calendar_for(calendar)
    confirm = StageClock(name="confirm", target=8 * 3600, running_since=NOW)
    resolution = StageClock(name="resolution", target=72 * 3600, running_since=NOW)
    case = state(stage="confirm", clocks=[confirm, resolution])
    assert deadlines.next_instant(case, policy, pick) == NOW + timedelta(hours=4)  # 50 %
    confirm.warned = [0.5, 0.75, 0.9]
    assert deadlines.next_instant(case, policy, pick) == NOW + timedelta(hours=8)  # breach
    confirm.state, resolution.state = "met", "paused"
    assert deadlines.next_instant(case, policy, pick) is None
    closed = state(stage="closed", closed_at=NOW)
    assert deadlines.next_instant(closed, policy, pick) == NOW + timedelta(days=30)


def test_due_times_follow_the_stage_clock():
    calendar = BusinessCalendar.from_spec(SlaPolicy().calendar)
    clock = StageClock(name="analyze", target=3600, running_since=NOW,
                       due_at=NOW + timedelta(hours=1))
    due = deadlines.due_times(state(stage="analyze", clocks=[clock]),
                              deadlines.calendar_for(calendar))
    assert due["stage_due_at"] == NOW + timedelta(hours=1)
    assert due["overdue"] is False
    assert due["at_risk_at"] == NOW + timedelta(minutes=45)


# ------------------------------------------------------------ one lifecycle, recorded


def _count(events, kind: str) -> int:
    return sum(e.HasField(f"{kind}_event_attributes") for e in events)


@pytest.mark.slow
async def test_a_lifecycle_starts_one_deadline_timer_and_upserts_only_changes(
        temporal_address, sqlite_url, order_system_url):
    client = await Client.connect(temporal_address)
    inp = replace(case_input(), publish_search_attributes=True,
                  case_id="AS-TG" + uuid.uuid4().hex[:8].upper())
    async with case_worker(client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(client, tq, inp)
        await handle.execute_update(CaseWorkflow.tag, TagInput(ALICE, add=["kettle", "vip"]))
        await handle.execute_update(CaseWorkflow.confirm, ConfirmInput(ALICE, "ok"))
        await handle.execute_update(CaseWorkflow.tag, TagInput(ALICE, remove=["vip"]))
        await handle.execute_update(CaseWorkflow.analyze, AnalyzeInput(
            ALICE, "product_quality", "supplier", "kettle leaks"))
        await handle.execute_update(CaseWorkflow.resolve, ResolveInput(
            ALICE, Resolution(type="compensation", points=300), "points"))
        await handle.execute_update(CaseWorkflow.feedback, FeedbackInput(5, "fine"))
        await handle.execute_update(CaseWorkflow.revisit, RevisitInput(ALICE, "satisfied"))
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.stage == "closed" and snap.tags == ["kettle"]
        tagged = [e.detail for e in events_of(sessions, inp.case_id) if e.type == "tagged"]
        assert tagged == [{"added": ["kettle", "vip"], "removed": []},
                          {"added": [], "removed": ["vip"]}]
        events = (await handle.fetch_history()).events
        # The first SLA mark (confirm's 50 %) lies hours ahead: one deadline timer
        # outlives the whole lifecycle instead of one per wait. The other timer is the
        # resolve update's bounded wait for a quick saga, cancelled when it is done.
        assert _count(events, "timer_started") == 2
        assert _count(events, "timer_canceled") == 1
        # Stage and due time change at intake, confirm, analyze, resolved, feedback and
        # revisit; the tag changes and the saga's own writes upsert nothing.
        # (The SDK's own TemporalChangeVersion upserts, one per patch, are left out.)
        upserts = [names for e in events
                   if e.HasField("upsert_workflow_search_attributes_event_attributes")
                   and (names := sorted(e.upsert_workflow_search_attributes_event_attributes
                                        .search_attributes.indexed_fields))
                   != ["TemporalChangeVersion"]]
        assert len(upserts) == 6, upserts
        await record_history(client, inp.case_id, "tag_lifecycle")


def test_tag_rules_are_one_function_for_the_schema_and_the_workflow():
    from workflows.case.contracts import tag_problem

    assert tag_problem("破损") is None and tag_problem("x" * 40) is None
    for bad in ("", " vip", "vip ", "a,b", "a\tb", "x" * 41):
        assert tag_problem(bad), bad


def test_every_clock_has_a_name_on_the_pages_and_a_place_in_the_reports():
    from db.reports import CLOCK_ORDER
    from web.caseview import CLOCK_NAMES
    from workflows.case.deadlines import RETARGETED_CLOCKS, WARNED_CLOCKS
    from workflows.case.vocabulary import CLOCKS
    from workflows.sla import STAGE_KEYS

    assert set(CLOCK_NAMES) == set(CLOCKS) == set(CLOCK_ORDER)
    assert set(WARNED_CLOCKS) <= set(CLOCKS) and set(RETARGETED_CLOCKS) <= set(STAGE_KEYS)
