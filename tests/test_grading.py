"""Inspection grades (A-D) of returned goods: the policy's `grades`, then end to end on the
stack of tests/test_resolutions.py (the web app over HTTP, a real Temporal dev server and
worker, the order, inventory and courier simulators over HTTP), then the desk's fraud
badge and the reports' count on the read model (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from aftersales.policy import load_policy
from db import reports
from tests import test_resolutions as stack
from tests.conftest import record_history_sync
from tests.test_pages import app, put, signed_in  # noqa: F401 - `app` is a fixture
from tests.test_resolutions import (
    awaiting,
    call,
    move,
    movements_of,
    open_case,
    refunds_of,
    to_resolve,
    wait_for,
    waybill,
)
from tests.test_sla_policy import refusal, write_policy

# The stack of tests/test_resolutions.py; module-scoped, so this module gets its own.
systems = stack.systems

KETTLE = [{"sku": "SKU-KETTLE-4", "quantity": 1}]  # 149.00 on SO-10008


# --- the policy -----------------------------------------------------------------------------


def test_the_shipped_policy_pays_all_for_a_and_nine_tenths_for_b():
    assert load_policy().grades == {"A": "1.0", "B": "0.9"}


def test_grades_in_the_policy_keep_the_default_for_a_grade_not_given(tmp_path):
    policy = load_policy(write_policy(tmp_path, """
        [rules]
        grades = { B = 0.85 }
        """))
    assert policy.grades == {"A": "1.0", "B": "0.85"}


@pytest.mark.parametrize(("value", "expected"), [
    ("{ C = 0.5 }", "unknown refunding grade (C and D pay no refund) 'C'"),
    ("{ B = 0 }", "grades.B in [rules] must be a share above 0 and at most 1"),
    ("{ B = 1.2 }", "grades.B in [rules] must be a share above 0 and at most 1"),
    ("{ B = true }", "grades.B in [rules] must be a share"),
    ('{ B = "most" }', "grades.B in [rules] must be a share"),
    ('{ B = "nan" }', "grades.B in [rules] must be a share"),
    ('"B"', "[rules.grades] must be a table"),
])
def test_a_wrong_grade_share_stops_the_start_naming_the_line(tmp_path, value, expected):
    error = refusal(tmp_path, f"""
        [rules]
        four_eyes = true
        grades = {value}
        """)
    assert expected in str(error)
    assert error.line == 3


# --- end to end -----------------------------------------------------------------------------


def returned(systems, items=KETTLE, **resolve) -> dict:
    """A return_refund of `items` whose parcel has reached the warehouse."""
    case = open_case(systems, "SO-10008", "return", items)
    to_resolve(systems, case)
    body = resolve or {"resolution": {"type": "return_refund", "items": items}}
    # A supervisor: the order's three kettles come back one by one across this module.
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", who="sue",
                    json=body)
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], awaiting("parcel"))
    pickup = case["resolution"]["refs"].get("waybills", {}).get("return_pickup") or next(
        r["refs"]["waybills"]["return_pickup"] for r in case["resolution"]["remedies"]
        if r["type"] == "return_refund")
    move(systems, pickup, 3)
    return wait_for(systems, case["id"], awaiting("inspection"))


def inspect(systems, case_id: str, **body) -> httpx.Response:
    return call(systems, "POST", f"/api/v1/cases/{case_id}/inspect", json=body)


def test_grade_b_restocks_as_open_box_and_refunds_the_policy_share(systems):
    case = returned(systems)
    response = inspect(systems, case["id"], grade="B", note="box opened, used once")
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    # 149.00 x 0.9 = 134.10: paid once; the rest stays with the retailer.
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["134.10"]
    assert case["resolution"]["refs"]["graded_refund"] == {
        "full": "149.00", "share": "0.9", "paid": "134.10"}
    moves = movements_of(systems, case["id"])
    assert [(m["kind"], m.get("location")) for m in moves] == [("restock", "open_box")]
    kettle = httpx.get(f"{systems['inventory']}/stock/SKU-KETTLE-4", timeout=10).json()
    assert kettle["open_box"] >= 1
    inspected = [e for e in case["timeline"] if e["type"] == "inspected"][-1]
    assert inspected["detail"] == {"passed": True, "grade": "B",
                                   "note": "box opened, used once"}
    assert case["fraud_review"] is False
    record_history_sync(systems["temporal"], case["id"], "graded_return")


def test_grade_a_restocks_to_stock_and_refunds_in_full(systems):
    before = httpx.get(f"{systems['inventory']}/stock/SKU-KETTLE-4", timeout=10).json()
    case = returned(systems)
    assert inspect(systems, case["id"], grade="A").status_code == 200
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["149.00"]
    assert [m.get("location") for m in movements_of(systems, case["id"])] == [None]
    after = httpx.get(f"{systems['inventory']}/stock/SKU-KETTLE-4", timeout=10).json()
    assert after["on_hand"] == before["on_hand"] + 1
    assert after.get("open_box", 0) == before.get("open_box", 0)


def test_grade_c_sends_the_goods_back_and_pays_nothing(systems):
    case = returned(systems)
    assert inspect(systems, case["id"], grade="C", note="dropped").status_code == 200
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    assert refunds_of(systems, case["id"]) == []
    assert movements_of(systems, case["id"]) == []
    assert "return_to_customer" in case["resolution"]["refs"]["waybills"]
    assert case["fraud_review"] is False


def test_grade_d_keeps_the_goods_and_flags_the_case_for_fraud_review(systems):
    case = returned(systems)
    response = inspect(systems, case["id"], grade="D", note="a brick in the box")
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    assert case["fraud_review"] is True
    assert refunds_of(systems, case["id"]) == []
    assert movements_of(systems, case["id"]) == []
    # Not the item sent: nothing goes back to the customer.
    assert "return_to_customer" not in case["resolution"]["refs"].get("waybills", {})
    failure = [e for e in case["timeline"] if e["type"] == "resolution_failed"][-1]
    assert "fraud review" in failure["detail"]["reason"]
    assert "fraud_review" in [e["type"] for e in case["timeline"]]
    listed = call(systems, "GET", "/api/v1/cases?fraud_review=true").json()
    assert case["id"] in [c["id"] for c in listed["items"]]
    clean = call(systems, "GET", "/api/v1/cases?fraud_review=false").json()
    assert case["id"] not in [c["id"] for c in clean["items"]]
    record_history_sync(systems["temporal"], case["id"], "graded_fraud")


def test_a_grade_inside_a_combined_resolution_pays_its_share(systems):
    case = returned(systems, resolutions=[
        {"type": "apology"},
        {"type": "return_refund", "items": KETTLE}])
    assert inspect(systems, case["id"], grade="B").status_code == 200
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["134.10"]
    remedy = case["resolution"]["remedies"][1]
    assert remedy["refs"]["graded_refund"]["paid"] == "134.10"


def test_bad_grades_are_refused_and_change_nothing(systems):
    case = open_case(systems, "SO-10008", "return", KETTLE)
    to_resolve(systems, case)
    resolved = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", who="sue",
                    json={"resolution": {"type": "return_refund", "items": KETTLE}})
    assert resolved.status_code == 200, resolved.text
    case = wait_for(systems, case["id"], awaiting("parcel"))
    # A grade on goods not yet received.
    early = inspect(systems, case["id"], grade="A")
    assert early.status_code == 409
    assert early.headers["Content-Type"].startswith("application/problem+json")
    move(systems, waybill(case, "return_pickup"), 3)
    case = wait_for(systems, case["id"], awaiting("inspection"))
    version = case["version"]
    for body in ({"grade": "E"}, {"grade": "b"}, {"grade": ""}, {"grade": None},
                 {"grade": ["A"]}, {"grade": "A", "passed": False},
                 {"grade": "D", "passed": True}, {"note": "no verdict"}, {}):
        response = inspect(systems, case["id"], **body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["Content-Type"].startswith("application/problem+json")
    again = call(systems, "GET", f"/api/v1/cases/{case['id']}").json()
    assert again["version"] == version and again["resolution"]["awaiting"] == "inspection"
    # Agreeing fields are accepted: the grade decides.
    assert inspect(systems, case["id"], grade="C", passed=False).status_code == 200
    wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")


def test_a_repair_takes_passed_and_refuses_a_grade(systems):
    case = open_case(systems, "SO-10008", "repair", KETTLE)
    to_resolve(systems, case)
    resolved = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", who="sue",
                    json={"resolution": {"type": "repair", "items": KETTLE}})
    assert resolved.status_code == 200, resolved.text
    case = wait_for(systems, case["id"], awaiting("parcel"))
    move(systems, waybill(case, "repair_pickup"), 3)
    case = wait_for(systems, case["id"], awaiting("inspection"))
    response = inspect(systems, case["id"], grade="A")
    assert response.status_code == 422
    assert "repair" in response.json()["detail"]
    assert inspect(systems, case["id"], passed=True).status_code == 200
    wait_for(systems, case["id"], lambda c: c["resolution"]["awaiting"] == "parcel")


# --- instant refund (极速退款) ----------------------------------------------------------------


def vip_return(systems, customer: str, order_id: str, items: list[dict],
               amount: str | None = None) -> dict:
    """A return of a VIP's order (SO-10009 and SO-10033 are C-1001's, a VIP, in the
    order system) resolved by a supervisor (their delivery is past the return window),
    its pickup waybill created."""
    response = call(systems, "POST", "/api/v1/cases", json={
        "kind": "return", "channel": "app", "order_id": order_id,
        "customer": {"id": customer, "name": "王芳"}, "items": items,
        "description": "不想要了"})
    assert response.status_code == 201, response.text
    case = response.json()
    assert case["customer"]["tier"] == "vip"
    to_resolve(systems, case)
    resolution = {"type": "return_refund", "items": items,
                  **({"amount": amount} if amount else {})}
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", who="sue",
                    json={"resolution": resolution})
    assert response.status_code == 200, response.text
    return wait_for(systems, case["id"], awaiting("parcel"))


def test_a_vips_return_is_refunded_at_pickup_and_not_again_after_inspection(systems):
    case = vip_return(systems, "C-IR1", "SO-10009", KETTLE)
    number = waybill(case, "return_pickup")
    assert refunds_of(systems, case["id"]) == []  # nothing before the courier has it
    move(systems, number)  # the courier scans the pickup
    case = wait_for(systems, case["id"], lambda c: c["instant_refund_at"] is not None)
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["149.00"]
    assert case["resolution"]["refs"]["instant_refund"] is True
    assert "legal_refund" not in [c["name"] for c in case["deadlines"]["clocks"]]
    move(systems, number, 2)
    case = wait_for(systems, case["id"], awaiting("inspection"))
    assert inspect(systems, case["id"], grade="A").status_code == 200
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    refunds = refunds_of(systems, case["id"])
    assert [(r["amount"], r["idempotency_key"]) for r in refunds] == [
        ("149.00", f"{case['id']}:1:refund")]
    assert case["recovery_tasks"] == []
    steps = [e["detail"]["step"] for e in case["timeline"] if e["type"] == "resolution_step"]
    assert "instant_refund" in steps and "refund" not in steps
    record_history_sync(systems["temporal"], case["id"], "instant_refund")


def test_a_failed_inspection_after_an_instant_refund_records_one_recovery_task(systems):
    case = vip_return(systems, "C-IR2", "SO-10033", KETTLE)
    number = waybill(case, "return_pickup")
    move(systems, number, 3)
    case = wait_for(systems, case["id"], awaiting("inspection"))
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["149.00"]
    assert inspect(systems, case["id"], grade="C", note="dropped").status_code == 200
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["149.00"]
    [task] = case["recovery_tasks"]
    assert task["amount"] == "149.00" and task["state"] == "open"
    assert task["refund_id"] == refunds_of(systems, case["id"])[0]["id"]
    assert "dropped" in task["reason"]
    assert [e["type"] for e in case["timeline"]].count("recovery_task") == 1
    listed = call(systems, "GET", "/api/v1/cases?recovery=true").json()
    assert case["id"] in [c["id"] for c in listed["items"]]
    record_history_sync(systems["temporal"], case["id"], "instant_refund_recovery")


def test_above_the_amount_cap_a_vips_return_waits_for_the_inspection(systems):
    # 2 x 259.00, settled at 320.00: above the cap, below the approval limit.
    shirts = [{"sku": "SKU-SHIRT-77", "quantity": 2}]
    case = vip_return(systems, "C-IR3", "SO-10009", shirts, amount="320.00")
    move(systems, waybill(case, "return_pickup"), 3)
    case = wait_for(systems, case["id"], awaiting("inspection"))
    assert refunds_of(systems, case["id"]) == []
    assert case["instant_refund_at"] is None
    assert inspect(systems, case["id"], grade="A").status_code == 200
    wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["320.00"]


def test_a_regular_customers_return_waits_for_the_inspection(systems):
    case = open_case(systems, "SO-10008", "return", KETTLE)
    assert case["customer"]["tier"] == "regular"
    to_resolve(systems, case)
    resolved = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", who="sue",
                    json={"resolution": {"type": "return_refund", "items": KETTLE}})
    assert resolved.status_code == 200, resolved.text
    case = wait_for(systems, case["id"], awaiting("parcel"))
    move(systems, waybill(case, "return_pickup"), 3)
    case = wait_for(systems, case["id"], awaiting("inspection"))
    assert refunds_of(systems, case["id"]) == [] and case["instant_refund_at"] is None


def test_an_open_escalated_case_of_the_customer_stops_the_instant_refund(systems):
    other = call(systems, "POST", "/api/v1/cases", json={
        "kind": "complaint", "channel": "app", "order_id": "SO-10001",
        "customer": {"id": "C-IR4", "name": "王芳"}, "description": "还没解决，我要投诉"})
    assert other.status_code == 201, other.text
    escalated = call(systems, "POST", f"/api/v1/cases/{other.json()['id']}/escalate",
                     json={"reason": "the customer threatens a chargeback"})
    assert escalated.status_code == 200, escalated.text
    wait_for(systems, other.json()["id"], lambda c: "escalated" in [
        e["type"] for e in c["timeline"]])
    case = vip_return(systems, "C-IR4", "SO-10033", KETTLE)
    move(systems, waybill(case, "return_pickup"))
    case = wait_for(systems, case["id"], lambda c: "instant_refund_refused" in [
        e["type"] for e in c["timeline"]])
    refused = [e for e in case["timeline"] if e["type"] == "instant_refund_refused"][-1]
    assert other.json()["id"] in refused["detail"]["reason"]
    move(systems, waybill(case, "return_pickup"), 2)
    case = wait_for(systems, case["id"], awaiting("inspection"))
    assert refunds_of(systems, case["id"]) == []
    assert inspect(systems, case["id"], grade="A").status_code == 200
    wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["149.00"]


# --- the desk and the reports ---------------------------------------------------------------


def test_the_desk_and_the_reports_show_a_case_flagged_for_fraud_review(app):  # noqa: F811
    from tests.test_pages import NOW

    put(app, "AS-FRAUD1", stage="analyze", assignee="hank", fraud_review=True,
        kind="return", created_at=NOW - timedelta(hours=1))
    put(app, "AS-CLEAN1", stage="analyze", assignee="hank", kind="return",
        created_at=NOW - timedelta(hours=1))
    client = signed_in(app, "hank")
    page = client.get("/desk/cases/AS-FRAUD1").get_data(as_text=True)
    assert 'id="fraud-review"' in page and "Flagged for fraud review" in page
    assert 'id="fraud-review"' not in client.get("/desk/cases/AS-CLEAN1").get_data(
        as_text=True)
    desk = client.get("/desk").get_data(as_text=True)
    row = desk[desk.index("AS-FRAUD1"):]
    assert "fraud review" in row[:row.index("</tr>")]
    clean = desk[desk.index("AS-CLEAN1"):]
    assert "fraud review" not in clean[:clean.index("</tr>")]
    zh = signed_in(app, "hank", "zh_CN").get("/desk/cases/AS-FRAUD1")
    assert "欺诈审核" in zh.get_data(as_text=True)
    with app.extensions["aftersales"].sessions() as session:
        f = reports.ReportFilter(start=NOW - timedelta(days=1), end=NOW + timedelta(days=1))
        assert reports.summary(session, f)["fraud_review"] == 1


def test_the_desk_and_the_reports_show_recovery_tasks(app):  # noqa: F811
    from tests.test_pages import NOW

    task = {"id": "AS-REC1:1:0:recovery", "amount": "149.00", "refund_id": "RF-1",
            "reason": "inspection failed: dropped", "at": NOW.isoformat(), "state": "open"}
    put(app, "AS-REC1", stage="analyze", assignee="hank", kind="return",
        instant_refund_at=NOW - timedelta(hours=1), recovery_tasks=[task],
        created_at=NOW - timedelta(hours=2))
    put(app, "AS-REC2", stage="feedback", assignee="hank", kind="return",
        instant_refund_at=NOW - timedelta(hours=1), created_at=NOW - timedelta(hours=2))
    client = signed_in(app, "hank")
    page = client.get("/desk/cases/AS-REC1").get_data(as_text=True)
    assert 'id="recovery-1"' in page and "149.00" in page and "dropped" in page
    assert 'id="instant-refund"' in page
    calm = client.get("/desk/cases/AS-REC2").get_data(as_text=True)
    assert 'id="recovery-1"' not in calm and 'id="instant-refund"' in calm
    desk = client.get("/desk").get_data(as_text=True)
    row = desk[desk.index("AS-REC1"):]
    assert "recovery" in row[:row.index("</tr>")]
    zh = signed_in(app, "hank", "zh_CN").get("/desk/cases/AS-REC1").get_data(as_text=True)
    assert "追款任务" in zh and "极速退款" in zh
    with app.extensions["aftersales"].sessions() as session:
        f = reports.ReportFilter(start=NOW - timedelta(days=1), end=NOW + timedelta(days=1))
        summary = reports.summary(session, f)
        assert summary["instant_refunds"] == 2
        assert summary["recovery_tasks"] == {"count": 1, "amount": "149.00"}


def test_the_customers_standing_counts_instant_refunds_in_90_days_and_open_disputes(
        app):  # noqa: F811
    from db.models import TimelineEvent
    from db.standing import customer_standing
    from tests.test_pages import NOW
    from workflows.case.contracts import Customer

    def mine(case_id: str, **changes) -> None:
        put(app, case_id, customer=Customer(id="C-77", name="王芳", tier="vip"), **changes)

    mine("AS-IR1", stage="closed", instant_refund_at=NOW - timedelta(days=89))
    mine("AS-IR2", stage="feedback", instant_refund_at=NOW - timedelta(days=3))
    mine("AS-IR3", stage="closed", instant_refund_at=NOW - timedelta(days=91))  # too old
    mine("AS-IR4", stage="analyze")  # open, calm: no dispute
    mine("AS-IR5", stage="confirm")
    put(app, "AS-OTHER", stage="analyze", instant_refund_at=NOW - timedelta(days=1),
        customer=Customer(id="C-78", name="李娜"))  # another customer
    sessions = app.extensions["aftersales"].sessions
    with sessions() as session:
        calm = customer_standing(session, "C-77", "AS-NEW", NOW)
        assert (calm.instant_refunds_90d, calm.disputes) == (2, [])
        # This case's own refund is not counted against it.
        assert customer_standing(session, "C-77", "AS-IR2", NOW).instant_refunds_90d == 1
    with sessions.begin() as session:
        session.add(TimelineEvent(case_id="AS-IR5", seq=9, at=NOW, actor="hank",
                                  type="escalated", stage_before="confirm",
                                  stage_after="confirm", detail={}))
    mine("AS-IR6", stage="closed", fraud_review=True)
    mine("AS-IR7", stage="closed")  # escalated once, but closed: settled
    with sessions.begin() as session:
        session.add(TimelineEvent(case_id="AS-IR7", seq=9, at=NOW, actor="hank",
                                  type="escalated", stage_before="analyze",
                                  stage_after="analyze", detail={}))
    with sessions() as session:
        standing = customer_standing(session, "C-77", "AS-NEW", NOW)
        assert standing.disputes == ["AS-IR5", "AS-IR6"]
        assert customer_standing(session, "C-78", "AS-NEW", NOW).disputes == []


@pytest.mark.parametrize(("value", "expected"), [
    ('{ tiers = ["vip"], max_amount = "300.00" }', "per_customer_90d is missing"),
    ('{ tiers = ["emperor"], max_amount = "300.00", per_customer_90d = 3 }',
     "instant_refund.tiers in [rules] must be a list of customer tiers"),
    ('{ tiers = "vip", max_amount = "300.00", per_customer_90d = 3 }',
     "instant_refund.tiers in [rules] must be a list"),
    ('{ tiers = ["vip"], max_amount = 300.5, per_customer_90d = 3 }',
     "instant_refund.max_amount in [rules] must be a decimal string"),
    ('{ tiers = ["vip"], max_amount = "-1", per_customer_90d = 3 }',
     "instant_refund.max_amount in [rules] must be a decimal string"),
    ('{ tiers = ["vip"], max_amount = "300.00", per_customer_90d = -1 }',
     "per_customer_90d in [rules] must be a whole number 0 or more"),
    ('{ tiers = ["vip"], max_amount = "300.00", per_customer_90d = true }',
     "per_customer_90d in [rules] must be a whole number 0 or more"),
    ('{ tiers = ["vip"], max_amount = "300.00", per_customer_90d = 3, vip_only = 1 }',
     "unknown instant_refund key 'vip_only'"),
])
def test_a_wrong_instant_refund_rule_stops_the_start_naming_the_line(tmp_path, value,
                                                                     expected):
    error = refusal(tmp_path, f"""
        [rules]
        four_eyes = true
        instant_refund = {value}
        """)
    assert expected in str(error)
    assert error.line == 3


def test_instant_refunds_can_be_turned_off(tmp_path):
    policy = load_policy(write_policy(tmp_path, """
        [rules]
        instant_refund = { tiers = [], max_amount = "0", per_customer_90d = 0 }
        """))
    assert policy.instant_refund.tiers == []


def test_the_inspect_form_grades_a_return_and_asks_a_repair_pass_or_fail(app):  # noqa: F811
    from werkzeug.datastructures import MultiDict

    from web.desk import form_body
    from workflows.case.contracts import Resolution

    put(app, "AS-G1", stage="resolve", status="resolving", assignee="hank",
        resolution=Resolution(type="return_refund", state="running", awaiting="inspection"))
    combined = Resolution(type="combined", state="running", awaiting="inspection",
                          remedies=[Resolution(type="apology", state="done"),
                                    Resolution(type="return_refund", state="running")])
    put(app, "AS-G2", stage="resolve", status="resolving", assignee="hank",
        resolution=combined)
    put(app, "AS-G3", stage="resolve", status="resolving", assignee="hank",
        resolution=Resolution(type="repair", state="running", awaiting="inspection"))
    client = signed_in(app, "hank")
    for case_id in ("AS-G1", "AS-G2"):
        page = client.get(f"/desk/cases/{case_id}").get_data(as_text=True)
        for grade in "ABCD":
            assert f'id="inspect-{grade}" name="grade" value="{grade}"' in page
        assert 'name="passed"' not in page
        assert "opened or minor wear (open box)" in page
    repair = client.get("/desk/cases/AS-G3").get_data(as_text=True)
    assert 'name="passed" value="yes"' in repair and 'name="grade"' not in repair
    assert form_body("inspect", MultiDict({"grade": "B", "note": " worn "})) == {
        "grade": "B", "note": "worn"}
    assert form_body("inspect", MultiDict({"passed": "no"})) == {"passed": False}
    assert form_body("inspect", MultiDict({})) == {}
