"""Several remedies on one case (`resolutions`): the rules of workflows/case/remedies.py
(fast), then end to end: the web app over HTTP, a real Temporal dev server and worker,
and the order, inventory and courier simulators over HTTP (the stack of
tests/test_resolutions.py, fresh for this module)."""

from __future__ import annotations

from decimal import Decimal

import httpx

from tests import test_resolutions as stack
from tests.conftest import record_history_sync
from tests.test_resolutions import (
    call,
    move,
    movements_of,
    open_case,
    refunds_of,
    to_resolve,
    wait_for,
)
from workflows.case.contracts import CaseItem, Resolution
from workflows.case.remedies import list_problem, money_back

# The stack of tests/test_resolutions.py; module-scoped, so this module gets its own.
systems = stack.systems


def test_each_kind_of_remedy_once_and_at_most_five():
    apology, coupon = Resolution("apology"), Resolution("compensation", coupon_code="A")
    refund = Resolution("refund", amount="10.00")
    goods = Resolution("exchange", items=[CaseItem("SKU-1", 1)])
    assert list_problem([apology, coupon, refund, goods]) is None
    assert list_problem([goods, Resolution("refund", amount="5.00")]) is None
    assert str(list_problem([])) == "name at least one remedy"
    assert "at most 5" in str(list_problem([apology] * 6))
    for pair, kind in (((apology, apology), "an apology"),
                       ((refund, Resolution("compensation", amount="3.00")),
                        "a refund of money"),
                       ((coupon, Resolution("compensation", points=100)),
                        "a coupon or points"),
                       ((goods, Resolution("repair", items=goods.items)), "goods")):
        assert f"remedies 1 and 2 are both {kind}" in str(list_problem(list(pair)))


def test_what_a_remedy_refunds():
    prices = {"SKU-1": Decimal("149.00")}
    two = [CaseItem("SKU-1", 2)]
    assert money_back(Resolution("refund", amount="10.50"), prices) == Decimal("10.50")
    assert money_back(Resolution("compensation", amount="3.00"), prices) == Decimal("3.00")
    # A coupon's amount is its value, not money back; goods in kind refund nothing.
    assert money_back(Resolution("compensation", coupon_code="A", amount="20.00"),
                      prices) == 0
    assert money_back(Resolution("exchange", items=two), prices) == 0
    assert money_back(Resolution("apology"), prices) == 0
    assert money_back(Resolution("return_refund", items=two), prices) == Decimal("298.00")
    assert money_back(Resolution("return_refund", items=two, amount="200.00"),
                      prices) == Decimal("200.00")


def coupons_of(systems, case_id: str) -> list[dict]:
    granted = httpx.get(f"{systems['orders']}/compensations", timeout=10).json()
    return [c for c in granted if c["case_id"] == case_id]


def report(systems) -> dict:
    response = call(systems, "GET", "/api/v1/reports/summary", who="sue")
    assert response.status_code == 200, response.text
    return response.json()


def test_apology_coupon_and_refund_run_in_order_as_one_resolution(systems):
    before = report(systems)["remedies"]
    case = open_case(systems, "SO-10003", "complaint", [])
    to_resolve(systems, case)
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolutions": [{"type": "apology"},
                        {"type": "compensation", "coupon_code": "SORRY-20"},
                        {"type": "refund", "amount": "80.00"}],
        "note": "late and scratched"})
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    plan = case["resolution"]
    assert plan["type"] == "combined" and plan["state"] == "done"
    assert plan["amount"] == "80.00"
    assert [(r["type"], r["state"]) for r in plan["remedies"]] == [
        ("apology", "done"), ("compensation", "done"), ("refund", "done")]
    # Paid once each, with keys of their own (remedy number before the step).
    refunds = refunds_of(systems, case["id"])
    assert [(r["amount"], r["idempotency_key"]) for r in refunds] == [
        ("80.00", f"{case['id']}:1:r3:refund")]
    coupons = coupons_of(systems, case["id"])
    assert [(c["coupon_code"], c["idempotency_key"]) for c in coupons] == [
        ("SORRY-20", f"{case['id']}:1:r2:compensation")]
    assert plan["remedies"][2]["refs"]["refund_id"] == refunds[0]["id"]
    assert plan["remedies"][1]["refs"]["compensation_id"] == coupons[0]["id"]
    # The timeline: planned with every remedy, the steps in the listed order, resolved.
    timeline = case["timeline"]
    planned = next(e for e in timeline if e["type"] == "resolution_planned")
    assert [r["type"] for r in planned["detail"]["remedies"]] == [
        "apology", "compensation", "refund"]
    steps = [(e["detail"]["remedy"], e["detail"]["step"]) for e in timeline
             if e["type"] == "resolution_step"]
    assert steps == [(2, "grant_compensation"), (3, "refund")]
    resolved = next(e for e in timeline if e["type"] == "resolved")
    assert [r["state"] for r in resolved["detail"]["remedies"]] == ["done"] * 3
    # The customer sees each remedy and its outcome.
    token = case["customer_url"].rsplit("/", 1)[1]
    view = systems["http"].get(f"/api/v1/status/{token}").json()
    assert [(r["type"], r["state"]) for r in view["resolution"]["remedies"]] == [
        ("apology", "done"), ("compensation", "done"), ("refund", "done")]
    assert view["resolution"]["remedies"][2]["refund_id"] == refunds[0]["id"]
    # The reports count the case once under each of the three.
    after = report(systems)["remedies"]
    assert {k: after[k] - before[k] for k in after} == {
        "refund": 1, "return_refund": 0, "exchange": 0, "repair": 0, "compensation": 1,
        "apology": 1}
    record_history_sync(systems["temporal"], case["id"], "remedies")


def test_the_whole_list_waits_for_approval_of_the_sum_of_its_refunds(systems):
    # 399.00 back for the returned earbud and 150.00 for the trouble: each below the
    # 500.00 limit, together above it.
    items = [{"sku": "SKU-EARB-031", "quantity": 1}]
    case = open_case(systems, "SO-10016", "complaint", items)
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolutions": [{"type": "return_refund", "items": items},
                        {"type": "compensation", "amount": "150.00"}]})
    case = wait_for(systems, case["id"],
                    lambda c: (c["resolution"] or {}).get("awaiting") == "approval")
    assert case["status"] == "waiting_on_approval"
    asked = next(e for e in case["timeline"] if e["type"] == "approval_requested")
    assert asked["detail"]["amount"] == "549.00" and asked["detail"]["total"] == "549.00"
    # Nothing has run: no waybill, no refund.
    assert [r["state"] for r in case["resolution"]["remedies"]] == ["planned", "planned"]
    assert not case["parcels"] and refunds_of(systems, case["id"]) == []
    assert call(systems, "POST", f"/api/v1/cases/{case['id']}/approve",
                json={"note": "x"}).status_code == 403  # a handler
    approved = call(systems, "POST", f"/api/v1/cases/{case['id']}/approve", who="sue",
                    json={"note": "photos checked"})
    assert approved.status_code == 200, approved.text
    case = wait_for(systems, case["id"],
                    lambda c: (c["resolution"] or {}).get("awaiting") == "parcel")
    number = case["resolution"]["remedies"][0]["refs"]["waybills"]["return_pickup"]
    move(systems, number, 3)
    wait_for(systems, case["id"],
             lambda c: (c["resolution"] or {}).get("awaiting") == "inspection")
    assert call(systems, "POST", f"/api/v1/cases/{case['id']}/inspect",
                json={"passed": True}).status_code == 200
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    refunds = refunds_of(systems, case["id"])
    assert sorted((r["amount"], r["idempotency_key"]) for r in refunds) == [
        ("150.00", f"{case['id']}:1:r2:refund"), ("399.00", f"{case['id']}:1:r1:refund")]
    types = [e["type"] for e in case["timeline"]]
    assert types.count("approval_requested") == 1 and types.count("approved") == 1


def test_a_failing_remedy_undoes_the_finished_steps_and_keeps_what_cannot_be_undone(
        systems):
    response = httpx.put(f"{systems['inventory']}/_control/stock/SKU-RICE-10",
                         json={"on_hand": 0}, timeout=10)
    assert response.status_code == 200
    items = [{"sku": "SKU-KETTLE-4", "quantity": 1}, {"sku": "SKU-RICE-10", "quantity": 1}]
    case = open_case(systems, "SO-10014", "complaint", items)
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolutions": [{"type": "compensation", "coupon_code": "SORRY-7"},
                        {"type": "exchange", "items": items}]})
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze"
                    and (c["resolution"] or {}).get("state") == "failed")
    coupon, exchange = case["resolution"]["remedies"]
    # The coupon was granted and stays (nothing to undo); the exchange failed and its
    # reservation of the first line was released.
    assert (coupon["state"], exchange["state"]) == ("done", "failed")
    assert [c["coupon_code"] for c in coupons_of(systems, case["id"])] == ["SORRY-7"]
    reservations = [m for m in movements_of(systems, case["id"]) if m["kind"] == "reservation"]
    assert [(r["sku"], r["state"]) for r in reservations] == [("SKU-KETTLE-4", "released")]
    assert {"step": "reserve:SKU-KETTLE-4", "state": "compensated"} in exchange["steps"]
    failure = [e for e in case["timeline"] if e["type"] == "resolution_failed"][-1]
    assert "out of stock" in failure["detail"]["reason"]
    assert failure["detail"]["remedies"] == [{"type": "compensation", "state": "done"},
                                             {"type": "exchange", "state": "failed"}]
    # The handler analyses and resolves again: new keys (attempt 2), the coupon not
    # granted twice.
    assert call(systems, "POST", f"/api/v1/cases/{case['id']}/analyze", json={
        "root_cause": "product_quality", "responsible_party": "supplier",
        "note": "no stock: refund instead"}).status_code == 200
    again = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolutions": [{"type": "apology"}, {"type": "refund", "amount": "149.00"}]})
    assert again.status_code == 200, again.text
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert [(r["amount"], r["idempotency_key"]) for r in refunds_of(systems, case["id"])] == [
        ("149.00", f"{case['id']}:2:r2:refund")]
    assert len(coupons_of(systems, case["id"])) == 1
    record_history_sync(systems["temporal"], case["id"], "remedies_failed")


def test_a_list_of_one_is_the_single_resolution(systems):
    case = open_case(systems, "SO-10005", "complaint", [])
    to_resolve(systems, case)
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolutions": [{"type": "refund", "amount": "30.00"}]})
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert case["resolution"]["type"] == "refund" and case["resolution"]["remedies"] == []
    assert [r["idempotency_key"] for r in refunds_of(systems, case["id"])] == [
        f"{case['id']}:1:refund"]


def test_bad_lists_are_refused_and_change_nothing(systems):
    case = open_case(systems, "SO-10002", "complaint",  # 168.00 paid
                     [{"sku": "SKU-TEA-001", "quantity": 1}])
    to_resolve(systems, case)
    path = f"/api/v1/cases/{case['id']}/resolve"
    before = call(systems, "GET", f"/api/v1/cases/{case['id']}").json()
    apology, refund = {"type": "apology"}, {"type": "refund", "amount": "10.00"}
    bad = {
        "empty list": ({"resolutions": []}, "resolutions"),
        "both": ({"resolution": apology, "resolutions": [refund]}, "resolutions"),
        "neither": ({"note": "just a note"}, "resolution"),
        "two apologies": ({"resolutions": [apology, refund, apology]}, "resolutions"),
        "two refunds": ({"resolutions": [refund, {"type": "compensation",
                                                  "amount": "5.00"}]}, "resolutions"),
        "coupon and points apart": ({"resolutions": [
            {"type": "compensation", "coupon_code": "A"},
            {"type": "compensation", "points": 100}]}, "resolutions"),
        "two goods remedies": ({"resolutions": [
            {"type": "return_refund", "items": [{"sku": "SKU-TEA-001", "quantity": 1}]},
            {"type": "repair", "items": [{"sku": "SKU-TEA-001", "quantity": 1}]}]},
            "resolutions"),
        "unknown type": ({"resolutions": [apology, {"type": "cash_in_envelope"}]},
                         "resolutions"),
        "too many": ({"resolutions": [apology, refund,
                                      {"type": "compensation", "coupon_code": "A"},
                                      {"type": "exchange",
                                       "items": [{"sku": "SKU-TEA-001", "quantity": 1}]},
                                      apology, apology]}, "resolutions"),
        "a remedy without its fields": ({"resolutions": [apology, {"type": "refund"}]},
                                        "resolutions"),
        "nested remedies": ({"resolutions": [apology, {**refund, "remedies": [refund]}]},
                            "resolutions"),
        "a list that is not a list": ({"resolutions": {"type": "apology"}}, "resolutions"),
        "a list of words": ({"resolutions": ["apology", "refund"]}, "resolutions"),
        "null": ({"resolutions": None}, "resolutions"),
        "a negative amount": ({"resolutions": [apology, {"type": "refund",
                                                         "amount": "-10.00"}]},
                              "resolutions"),
    }
    for name, (body, field) in bad.items():
        response = call(systems, "POST", path, json=body)
        assert response.status_code == 422, (name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        errors = response.json()["errors"]
        assert any(key.split(".")[0] == field for key in errors), (name, errors)
    # What the workflow checks against the order: the sum of the refunds (the return's
    # value counts) above what is left to refund.
    over = call(systems, "POST", path, json={"resolutions": [
        {"type": "return_refund", "items": [{"sku": "SKU-TEA-001", "quantity": 1}]},
        {"type": "refund", "amount": "0.01"}]})
    assert over.status_code == 422, over.text
    assert "168.01" in over.json()["detail"] and "168.00" in over.json()["detail"]
    beyond_items = call(systems, "POST", path, json={"resolutions": [
        apology, {"type": "exchange", "items": [{"sku": "SKU-TEA-001", "quantity": 2}]}]})
    assert beyond_items.status_code == 422, beyond_items.text
    after = call(systems, "GET", f"/api/v1/cases/{case['id']}").json()
    assert (after["stage"], after["resolution"]) == ("resolve", None)
    assert len(after["timeline"]) == len(before["timeline"])
    assert refunds_of(systems, case["id"]) == [] and coupons_of(systems, case["id"]) == []
    # At the limit of what is left it is accepted.
    exact = call(systems, "POST", path, json={"resolutions": [
        apology, {"type": "refund", "amount": "168.00"}]})
    assert exact.status_code == 200, exact.text
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["168.00"]


def test_a_denied_list_runs_none_of_its_remedies(systems):
    case = open_case(systems, "SO-10012", "complaint", [])  # 1797.00 paid
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolutions": [{"type": "compensation", "coupon_code": "SORRY-600"},
                        {"type": "refund", "amount": "600.00"}]})
    wait_for(systems, case["id"],
             lambda c: (c["resolution"] or {}).get("awaiting") == "approval")
    denied = call(systems, "POST", f"/api/v1/cases/{case['id']}/deny", who="sue",
                  json={"reason": "the photos show no damage"})
    assert denied.status_code == 200, denied.text
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    assert [r["state"] for r in case["resolution"]["remedies"]] == ["skipped", "skipped"]
    assert coupons_of(systems, case["id"]) == [] and refunds_of(systems, case["id"]) == []
    failure = [e for e in case["timeline"] if e["type"] == "resolution_failed"][-1]
    assert "denied" in failure["detail"]["reason"]
