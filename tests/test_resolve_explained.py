"""A resolve that explains itself, end to end over the real stack (the web app over HTTP,
the Temporal dev server and a worker, the simulators over HTTP; tests/test_resolutions.py's
stack, fresh for this module): coupon codes checked against the order system, the
approval's wait not counted on the handler's resolution clock, and the order as it stands
after the case's refund."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import record_history_sync
from tests.test_resolutions import (
    awaiting,
    call,
    open_case,
    refunds_of,
    running_stack,
    to_resolve,
    wait_for,
)


@pytest.fixture(scope="module")
def systems(temporal_address, tmp_path_factory):
    with running_stack(temporal_address, tmp_path_factory) as running:
        yield running


def compensations_of(systems, case_id: str) -> list[dict]:
    granted = httpx.get(f"{systems['orders']}/compensations", timeout=10).json()
    return [c for c in granted if c["case_id"] == case_id]


def test_the_order_system_knows_its_coupons(systems):
    """The simulator's coupons: a known one with its value and expiry; an unknown code is
    404; a grant of an expired, used or unknown code is refused."""
    known = httpx.get(f"{systems['orders']}/coupons/SORRY-30", timeout=10)
    assert known.status_code == 200
    coupon = known.json()
    assert coupon["value"] == "30.00" and coupon["state"] == "active"
    assert datetime.fromisoformat(coupon["expires_at"].replace("Z", "+00:00")) > datetime.now(UTC)
    assert httpx.get(f"{systems['orders']}/coupons/NO-SUCH", timeout=10).status_code == 404
    assert httpx.get(f"{systems['orders']}/coupons/OLD-SORRY-10",
                     timeout=10).json()["state"] == "expired"
    assert httpx.get(f"{systems['orders']}/coupons/USED-SORRY-15",
                     timeout=10).json()["state"] == "used"
    for code, status, kind in (("OLD-SORRY-10", 409, "coupon_expired"),
                               ("USED-SORRY-15", 409, "coupon_used"),
                               ("NO-SUCH", 422, "unknown_coupon")):
        response = httpx.post(f"{systems['orders']}/orders/SO-10003/compensations",
                              headers={"Idempotency-Key": f"test:{code}"},
                              json={"case_id": "AS-TEST", "coupon_code": code}, timeout=10)
        assert (response.status_code, response.json()["type"]) == (status, kind)


@pytest.mark.parametrize("code, said", [
    ("NO-SUCH-CODE", "the order system has no coupon NO-SUCH-CODE"),
    ("OLD-SORRY-10", "coupon OLD-SORRY-10 has expired"),
    ("USED-SORRY-15", "coupon USED-SORRY-15 has already been used"),
])
def test_a_coupon_the_order_system_refuses_is_422_on_coupon_code_and_nothing_changes(
        systems, code, said):
    case = open_case(systems, "SO-10003", "complaint", [])
    to_resolve(systems, case)
    before = call(systems, "GET", f"/api/v1/cases/{case['id']}").json()
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "compensation", "coupon_code": code, "amount": "10.00"}})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert problem["errors"] == {"resolution.coupon_code": [said]}
    # In a list of remedies, the remedy's own field is named.
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolutions": [{"type": "apology"},
                        {"type": "compensation", "coupon_code": code}]})
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == {"resolutions.1.coupon_code": [said]}
    after = call(systems, "GET", f"/api/v1/cases/{case['id']}").json()
    assert after["version"] == before["version"] and after["resolution"] is None
    assert after["stage"] == "resolve" and compensations_of(systems, case["id"]) == []


def test_a_known_coupon_is_granted(systems):
    case = open_case(systems, "SO-10004", "complaint", [])
    to_resolve(systems, case)
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "compensation", "coupon_code": "SORRY-30", "amount": "30.00"}})
    assert response.status_code == 200, response.text
    wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert [c["coupon_code"] for c in compensations_of(systems, case["id"])] == ["SORRY-30"]


def orders_paid_over(systems, amount: float) -> list[str]:
    """The simulator's delivered orders paid more than `amount`, by id."""
    orders = httpx.get(f"{systems['orders']}/orders", timeout=10).json()
    return sorted(o["id"] for o in orders if o["status"] == "delivered"
                  and sum(float(p["amount"]) for p in o["payments"]) > amount)


def resolution_clock(case: dict) -> dict:
    return next(c for c in case["deadlines"]["clocks"] if c["name"] == "resolution")


def test_the_approval_wait_pauses_the_resolution_clock_and_the_order_shows_the_refund(
        systems):
    case = open_case(systems, "SO-10014", "refund", [])
    to_resolve(systems, case)
    before = call(systems, "GET", f"/api/v1/cases/{case['id']}").json()
    assert before["order"]["refunded"] == "0.00" and before["approval_limit"] == "500.00"
    paid = sum(float(p["amount"]) for p in before["order"]["payments"])
    assert before["refundable"] == f"{paid:.2f}"
    assert resolution_clock(before)["state"] == "running"
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "refund", "amount": "600.00"}})
    waiting = wait_for(systems, case["id"], awaiting("approval"))
    clock = resolution_clock(waiting)
    assert (clock["state"], clock["paused_reason"]) == ("paused", "waiting_on_approval")
    assert clock["due_at"] is None
    assert waiting["deadlines"]["resolution_due_at"] is None
    used_at_pause = clock["used"]
    time.sleep(3)  # the supervisor takes a while: not the handler's time
    approved = call(systems, "POST", f"/api/v1/cases/{case['id']}/approve", who="sue",
                    json={"note": "checked"})
    assert approved.status_code == 200, approved.text
    done = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    clock = resolution_clock(done)
    assert clock["state"] == "met" and clock["paused_reason"] is None
    assert clock["used"] - used_at_pause < 2.5, (used_at_pause, clock["used"])
    # The order as it stands: the refund counted, and less left to refund.
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["600.00"]
    assert done["order"]["refunded"] == "600.00"
    assert done["refundable"] == f"{paid - 600:.2f}"
    types = [e["type"] for e in done["timeline"]]
    assert types.index("approval_requested") < types.index("approved")
    record_history_sync(systems["temporal"], case["id"], "approval_paused")


def test_a_denied_refund_resumes_the_clock(systems):
    order_id = next(o for o in orders_paid_over(systems, 600) if o != "SO-10014")
    case = open_case(systems, order_id, "refund", [])
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "refund", "amount": "550.00"}})
    wait_for(systems, case["id"], awaiting("approval"))
    denied = call(systems, "POST", f"/api/v1/cases/{case['id']}/deny", who="sue",
                  json={"reason": "no defect"})
    assert denied.status_code == 200, denied.text
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    clock = resolution_clock(case)
    assert clock["state"] == "running" and clock["paused_reason"] is None
    assert case["order"]["refunded"] == "0.00" and refunds_of(systems, case["id"]) == []


def customer_answers(systems, case: dict, message: str) -> None:
    token = case["customer_url"].rsplit("/", 1)[1]
    answered = systems["http"].post(f"/api/v1/status/{token}/reply",
                                    json={"message": message})
    assert answered.status_code == 200, answered.text


def clock_and_status(case: dict) -> tuple:
    clock = resolution_clock(case)
    return clock["state"], clock["paused_reason"], case["status"]


def waiting_with_a_question(systems, order_id: str, first: str) -> dict:
    """A refund of `order_id` waiting for a supervisor with a question to the customer
    open, asked before the resolve (`first` "question") or while it waits ("approval")."""
    case = open_case(systems, order_id, "refund", [])
    to_resolve(systems, case)
    ask = ("POST", f"/api/v1/cases/{case['id']}/request-info")
    if first == "question":
        call(systems, *ask, json={"question": "请提供照片"})
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "refund", "amount": "520.00"}})
    wait_for(systems, case["id"], awaiting("approval"))
    if first == "approval":
        call(systems, *ask, json={"question": "请提供照片"})
    return case


@pytest.mark.parametrize("first", ["approval", "question"])
def test_the_clock_waits_for_whoever_is_still_owed_an_answer(systems, first):
    """A question to the customer and a refund waiting for a supervisor overlap: the
    resolution clock stays paused until both have answered, whichever came first, and
    the case says who it waits on."""
    taken = {"approval": 1, "question": 2}[first]
    case = waiting_with_a_question(systems, orders_paid_over(systems, 600)[-taken], first)
    # The customer answers while the refund still waits: the clock stays paused, now for
    # the supervisor.
    customer_answers(systems, case, "照片已上传")
    now = wait_for(systems, case["id"], lambda c: c["pending_question"] is None)
    assert clock_and_status(now) == ("paused", "waiting_on_approval", "waiting_on_approval")
    approved = call(systems, "POST", f"/api/v1/cases/{case['id']}/approve", who="sue",
                    json={"note": "ok"})
    assert approved.status_code == 200, approved.text
    done = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert resolution_clock(done)["state"] == "met"

    # And the other way round: the supervisor decides while the question is open.
    case = waiting_with_a_question(systems, orders_paid_over(systems, 600)[-taken - 2],
                                   first)
    denied = call(systems, "POST", f"/api/v1/cases/{case['id']}/deny", who="sue",
                  json={"reason": "需要更多信息"})
    assert denied.status_code == 200, denied.text
    now = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    assert clock_and_status(now) == ("paused", "waiting_on_customer", "waiting_on_customer")
    customer_answers(systems, case, "照片已上传")
    now = wait_for(systems, case["id"], lambda c: c["pending_question"] is None)
    assert clock_and_status(now)[:2] == ("running", None)


def test_a_coupon_used_up_before_the_grant_fails_the_saga_with_nothing_paid(systems):
    """The early check passed, but the code was used while the plan waited for its
    approval: the grant, the durable check, is refused by the order system and the saga
    fails back to analyze with its reason; the plan's refund is never paid."""
    order_id = next(o for o in orders_paid_over(systems, 600)
                    if o not in ("SO-10014",) and not refunds_of_order(systems, o))
    case = open_case(systems, order_id, "complaint", [])
    to_resolve(systems, case)
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolutions": [{"type": "compensation", "coupon_code": "SORRY-40"},
                        {"type": "refund", "amount": "560.00"}]})
    assert response.status_code == 200, response.text
    wait_for(systems, case["id"], awaiting("approval"))
    systems["order_state"].coupons["SORRY-40"]["state"] = "used"
    try:
        approved = call(systems, "POST", f"/api/v1/cases/{case['id']}/approve", who="sue",
                        json={"note": "ok"})
        assert approved.status_code == 200, approved.text
        case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    finally:
        systems["order_state"].coupons["SORRY-40"]["state"] = "active"
    failed = [e for e in case["timeline"] if e["type"] == "resolution_failed"]
    assert failed and "coupon SORRY-40 has already been used" in failed[-1]["detail"]["reason"]
    assert [(r["type"], r["state"]) for r in case["resolution"]["remedies"]] == [
        ("compensation", "failed"), ("refund", "skipped")]
    assert refunds_of(systems, case["id"]) == [] and compensations_of(systems, case["id"]) == []


def refunds_of_order(systems, order_id: str) -> list[dict]:
    refunds = httpx.get(f"{systems['orders']}/refunds", timeout=10).json()
    return [r for r in refunds if r["order_id"] == order_id]
