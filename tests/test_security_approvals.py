"""Security review, approvals and overdue reassignment: each test here failed on the code
before its fix (or, for `reassign_on_overdue`, fails when the rule is broken).

The approval limit caps what an order gets back without a supervisor: refunds are counted
across a case's resolution attempts (a reopen does not start from zero) and across the
order's cases, from the order system's own figure. The supervisor who planned a refund
cannot approve it (four eyes) unless the policy relaxes it (`[rules] four_eyes = false`).

Refunds run end to end: the web app through its test client, a real Temporal dev server
and worker, and an order-system simulator of this module's own over HTTP. The overdue
rule runs on the time-skipping test server."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment
from werkzeug.serving import make_server

from aftersales.policy import PolicyError, parse_policy
from db.accounts import create_token, create_user
from db.models import Case, OutboxMessage
from simulators import order_system
from tests.conftest import BackgroundWorker, binary, make_settings, record_history_sync
from tests.test_case_workflow import case_input, case_worker, events_of, outbox_of, start_case
from web import create_app
from web.caseview import available_actions
from workflows.case.contracts import Actor, AssignInput, CaseState, Customer, Resolution
from workflows.case.lifecycle import BY_NAME, refusal
from workflows.case.workflow import CaseWorkflow

HOUR = timedelta(hours=1)


# --- the stack: order system, worker, web app ------------------------------------------


@pytest.fixture(scope="module")
def stack(temporal_address, tmp_path_factory):
    orders = order_system.OrderSystem(state_file=None)
    server = make_server("127.0.0.1", 0, order_system.create_app(orders), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    folder = tmp_path_factory.mktemp("approvals")
    url = f"sqlite:///{folder / 'db.sqlite'}"
    settings = make_settings(temporal_address, url, f"http://127.0.0.1:{server.server_port}")
    app = create_app(settings)
    worker = BackgroundWorker(settings)
    worker.start()
    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "hank", "handler")
        create_user(session, "sue", "supervisor")
        create_user(session, "sam", "supervisor")
        tokens = {name: create_token(session, name) for name in ("hank", "sue", "sam")}
    yield {"app": app, "tokens": tokens, "orders": orders, "temporal": temporal_address,
           "settings": settings, "folder": folder}
    worker.stop()
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()


def call(stack, method: str, path: str, who: str = "hank", app: str = "app", **kwargs):
    headers = {"Authorization": f"Bearer {stack['tokens'][who]}"}
    return stack[app].test_client().open(path, method=method, headers=headers, **kwargs)


def open_case(stack, order_id: str, app: str = "app") -> str:
    response = call(stack, "POST", "/api/v1/cases", app=app, json={
        "kind": "refund", "channel": "app", "order_id": order_id,
        "customer": {"id": "C-7", "name": "周敏"}, "items": [], "description": "退款"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def act(stack, case_id: str, action: str, body: dict, who: str = "hank",
        app: str = "app") -> None:
    response = call(stack, "POST", f"/api/v1/cases/{case_id}/{action}", who=who, app=app,
                    json=body)
    assert response.status_code == 200, response.get_json()


def resolve_refund(stack, case_id: str, resolution: dict, who: str = "hank",
                   app: str = "app") -> None:
    """From analyze (a fresh or a reopened case) to a planned refund."""
    case = get(stack, case_id)
    if case["stage"] == "confirm":
        act(stack, case_id, "confirm", {"note": "ok"})
    act(stack, case_id, "analyze", {"root_cause": "product_quality",
                                    "responsible_party": "supplier", "note": "faulty"})
    act(stack, case_id, "resolve", {"resolution": resolution}, who=who, app=app)


def get(stack, case_id: str) -> dict:
    response = call(stack, "GET", f"/api/v1/cases/{case_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def wait_for(stack, case_id: str, predicate, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        case = get(stack, case_id)
        if predicate(case):
            return case
        assert time.monotonic() < deadline, (case["stage"], case["status"],
                                             case["resolution"])
        time.sleep(0.1)


def awaits_approval(case: dict) -> bool:
    return (case["resolution"] or {}).get("awaiting") == "approval"


def resolved(case: dict) -> bool:
    return case["stage"] == "feedback"


def paid(stack, case_id: str) -> list[str]:
    return [r["amount"] for r in stack["orders"].refunds.values() if r["case_id"] == case_id]


def approval_requested(case: dict) -> list[dict]:
    return [e["detail"] for e in case["timeline"] if e["type"] == "approval_requested"]


# --- #2 the approval limit cannot be split ------------------------------------------------


def test_a_refund_split_across_a_reopen_waits_for_approval(stack):
    # 500.00 is at the limit, so it is paid; after a reopen another 500.00 would make the
    # order's refunds 1000.00: that one waits for a supervisor.
    case_id = open_case(stack, "SO-10003")  # 1198.00 paid
    resolve_refund(stack, case_id, {"type": "refund", "amount": "500.00"})
    wait_for(stack, case_id, resolved)
    assert paid(stack, case_id) == ["500.00"]
    act(stack, case_id, "reopen", {"reason": "the customer wants the rest back"})
    resolve_refund(stack, case_id, {"type": "refund", "amount": "500.00"})
    case = wait_for(stack, case_id, awaits_approval)
    assert case["status"] == "waiting_on_approval"
    assert paid(stack, case_id) == ["500.00"]  # the second half is not paid yet
    assert approval_requested(case)[-1] == {
        "amount": "500.00", "limit": "500.00", "refunded_before": "500.00",
        "total": "1000.00"}
    act(stack, case_id, "approve", {"note": "checked"}, who="sam")
    wait_for(stack, case_id, resolved)
    assert paid(stack, case_id) == ["500.00", "500.00"]
    record_history_sync(stack["temporal"], case_id, "approval_split")


def test_a_partial_refund_by_compensation_counts_too(stack):
    case_id = open_case(stack, "SO-10007")  # 1797.00 paid
    resolve_refund(stack, case_id, {"type": "compensation", "amount": "300.00"})
    wait_for(stack, case_id, resolved)
    act(stack, case_id, "reopen", {"reason": "still unhappy"})
    resolve_refund(stack, case_id, {"type": "refund", "amount": "250.00"})
    case = wait_for(stack, case_id, awaits_approval)
    assert approval_requested(case)[-1]["refunded_before"] == "300.00"
    assert paid(stack, case_id) == ["300.00"]


def test_two_cases_on_the_same_order_together_above_the_limit_wait(stack):
    first = open_case(stack, "SO-10009")  # 1254.00 paid
    resolve_refund(stack, first, {"type": "refund", "amount": "300.00"})
    wait_for(stack, first, resolved)
    second = open_case(stack, "SO-10009")
    resolve_refund(stack, second, {"type": "refund", "amount": "300.00"})
    case = wait_for(stack, second, awaits_approval)
    assert approval_requested(case)[-1]["refunded_before"] == "300.00"
    assert paid(stack, second) == []
    # Another order's refunds do not count: 300.00 alone is paid without approval.
    other = open_case(stack, "SO-10012")
    resolve_refund(stack, other, {"type": "refund", "amount": "300.00"})
    wait_for(stack, other, resolved)
    assert paid(stack, other) == ["300.00"]


# --- #2 four eyes ---------------------------------------------------------------------------


def test_the_supervisor_who_planned_a_refund_cannot_approve_it(stack):
    case_id = open_case(stack, "SO-10014")  # 1344.70 paid
    resolve_refund(stack, case_id, {"type": "refund", "amount": "600.00"}, who="sue")
    wait_for(stack, case_id, awaits_approval)
    refused = call(stack, "POST", f"/api/v1/cases/{case_id}/approve", who="sue",
                   json={"note": "looks fine to me"})
    assert refused.status_code == 403
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert "sue planned this refund" in refused.get_json()["detail"]
    case = get(stack, case_id)
    assert awaits_approval(case) and case["resolution"]["approved_by"] is None
    assert paid(stack, case_id) == []
    assert _outbox(stack, case_id, "approval_waiting") == [
        {"case_id": case_id, "amount": "600.00", "total": "600.00", "planned_by": "sue"}]
    # The case page does not offer her the approve form either; another supervisor's has it.
    assert "approve" not in _offered(stack, case_id, "sue")
    assert "approve" in _offered(stack, case_id, "sam")
    act(stack, case_id, "approve", {"note": "second pair of eyes"}, who="sam")
    case = wait_for(stack, case_id, resolved)
    assert case["resolution"]["approved_by"] == "sam"
    assert paid(stack, case_id) == ["600.00"]


@pytest.fixture
def relaxed(stack):
    """A one-person shop: the same worker and database, a policy that relaxes four eyes."""
    policy = stack["folder"] / "one_person_shop.toml"
    policy.write_text("[rules]\nfour_eyes = false\n", encoding="utf-8")
    app = create_app(replace(stack["settings"], sla_file=str(policy)))
    stack["relaxed"] = app
    yield stack
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()


def test_four_eyes_off_lets_the_planner_approve(relaxed):
    stack = relaxed
    case_id = open_case(stack, "SO-10021", app="relaxed")  # 10157.00 paid
    resolve_refund(stack, case_id, {"type": "refund", "amount": "600.00"}, who="sue",
                   app="relaxed")
    wait_for(stack, case_id, awaits_approval)
    act(stack, case_id, "approve", {"note": "one-person shop"}, who="sue", app="relaxed")
    case = wait_for(stack, case_id, resolved)
    assert case["resolution"]["approved_by"] == "sue"
    assert paid(stack, case_id) == ["600.00"]


def _outbox(stack, case_id: str, template: str) -> list[dict]:
    with stack["app"].extensions["aftersales"].sessions() as session:
        return [m.payload for m in session.scalars(select(OutboxMessage).where(
            OutboxMessage.case_id == case_id, OutboxMessage.template == template))]


def _offered(stack, case_id: str, supervisor: str) -> list[str]:
    """The action forms the case page shows this supervisor now."""
    with stack["app"].extensions["aftersales"].sessions() as session:
        row = session.get(Case, case_id)
        assert row is not None
        return available_actions(row, "supervisor", supervisor, [], datetime.now(UTC))


def test_four_eyes_in_the_action_table_and_the_policy():
    waiting = Resolution(type="refund", amount="900.00", awaiting="approval",
                         planned_by="sue")
    state = CaseState(case_id="AS-1", kind="refund", channel="app", order_id="SO-1",
                      customer=Customer("C-1", "x"), items=[], description="",
                      status_token="", customer_url="", stage="resolve", resolution=waiting)
    now = datetime.now(UTC)
    approve = BY_NAME["approve"]
    refused = refusal(approve, state, Actor("sue", "supervisor"), now)
    assert refused is not None and refused.kind == "Forbidden"
    assert "four eyes" in refused.message and refused.code == "four_eyes"
    assert refusal(approve, state, Actor("sam", "admin"), now) is None
    relaxed = replace(state, resolution=replace(waiting, four_eyes=False))
    assert refusal(approve, relaxed, Actor("sue", "supervisor"), now) is None
    assert parse_policy("").four_eyes is True
    assert parse_policy("[rules]\nfour_eyes = false\n").four_eyes is False
    with pytest.raises(PolicyError, match="four_eyes in \\[rules\\] must be true or false"):
        parse_policy('[rules]\nfour_eyes = "no"\n')


# --- #15 reassign_on_overdue ------------------------------------------------------------


@pytest.fixture
async def skipping_env():
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"))
    yield env
    await env.shutdown()


@pytest.mark.parametrize("rule", ["olga", ""], ids=["to-olga", "off"])
async def test_an_overdue_case_is_reassigned_as_the_policy_says(
        skipping_env, sqlite_url, order_system_url, rule):
    # The rule as an operator writes it in the policy file; P2 gets room so that only
    # confirm (P3: 8 h) breaches.
    policy = parse_policy(f'[rules]\nreassign_on_overdue = "{rule}"\n'
                          '[targets.default]\nP2 = { resolution = "6d" }\n')
    inp = case_input(policy)
    alice = Actor("alice", "handler")
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(skipping_env.client, tq, inp)
        await handle.execute_update(CaseWorkflow.assign, AssignInput(alice, "alice"))
        await skipping_env.sleep(8 * HOUR - timedelta(minutes=5))
        snap = await handle.query(CaseWorkflow.snapshot)
        assert not snap.overdue and snap.assignee == "alice"
        await skipping_env.sleep(timedelta(minutes=10))
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.overdue
        escalated = [e for e in events_of(sessions, inp.case_id) if e.type == "escalated"]
        assert [e.detail["level"] for e in escalated] == [1]
        assigned = [m.recipient for m in outbox_of(sessions, inp.case_id)
                    if m.template == "case_assigned"]
        with sessions() as session:
            row = session.get(Case, inp.case_id)
            assert row is not None
            shown = row.assignee  # what the desk and the supervisor's console list
        if rule:
            assert snap.assignee == "olga" and shown == "olga"
            assert escalated[0].detail["assignee"] == {"from": "alice", "to": "olga"}
            assert assigned == ["olga"]
        else:
            assert snap.assignee == "alice" and shown == "alice"
            assert "assignee" not in escalated[0].detail
            assert assigned == []
