"""Warranty: a repair inside the product's warranty is free; outside it the customer gets
a quote on the status page to accept or decline, and no answer counts as declined.
The rules of workflows/case/warranty.py and the policy key (fast), then end to end: the
web app over HTTP, a real Temporal dev server and worker, and the order, inventory and
courier simulators over HTTP (the stack of tests/test_resolutions.py, fresh for this
module, under a policy whose `quote_window` is short enough to wait for)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from aftersales.policy import PolicyError, parse_policy
from tests.conftest import record_history_sync
from tests.test_resolutions import (
    awaiting,
    call,
    move,
    open_case,
    refunds_of,
    running_stack,
    to_resolve,
    wait_for,
    waybill,
)
from workflows.case.contracts import CaseItem, OrderLine, OrderSnapshot, Resolution
from workflows.case.warranty import outside_warranty, quote_problem, warranty_ends

SHIPPED = (Path(__file__).parent.parent / "aftersales" / "sla_policy.toml").read_text(
    encoding="utf-8")
WINDOW_SECONDS = 12
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def snapshot(delivered: datetime | None, days: int | None, placed: datetime | None = None
             ) -> OrderSnapshot:
    return OrderSnapshot(
        id="SO-1", customer_id="C-1", status="delivered" if delivered else "shipped",
        currency="CNY", total="599.00", placed_at=placed or NOW - timedelta(days=90),
        delivered_at=delivered,
        lines=[OrderLine("SKU-SHOES-41", "Running shoes", 1, "599.00", "apparel", days)])


SHOES = [CaseItem("SKU-SHOES-41", 1)]
PRICES = {"SKU-SHOES-41": Decimal("599.00")}


def test_the_warranty_runs_from_delivery_or_else_from_purchase():
    delivered = NOW - timedelta(days=31)
    assert warranty_ends(snapshot(delivered, 30), "SKU-SHOES-41") == delivered + timedelta(30)
    assert outside_warranty(snapshot(delivered, 30), SHOES, NOW) == {
        "SKU-SHOES-41": delivered + timedelta(days=30)}
    assert outside_warranty(snapshot(delivered, 31), SHOES, NOW) == {}  # its last moment
    # Not delivered: from the purchase.
    placed = NOW - timedelta(days=40)
    assert warranty_ends(snapshot(None, 30, placed), "SKU-SHOES-41") == placed + timedelta(30)
    # The order system gives no warranty, or there is no order: free, as before.
    assert outside_warranty(snapshot(delivered, None), SHOES, NOW) == {}
    assert warranty_ends(None, "SKU-SHOES-41") is None


def test_a_quote_is_needed_outside_the_warranty_and_refused_inside_it():
    outside, inside = snapshot(NOW - timedelta(days=60), 30), snapshot(NOW, 30)
    repair = Resolution("repair", items=SHOES)
    assert "needs a quote_amount" in str(quote_problem(repair, outside, NOW, PRICES))
    assert "ended on 2026-11-01" in str(quote_problem(repair, outside, NOW, PRICES))
    assert quote_problem(repair, inside, NOW, PRICES) is None
    quoted = Resolution("repair", items=SHOES, quote_amount="120.00")
    assert quote_problem(quoted, outside, NOW, PRICES) is None
    assert "repair is free" in str(quote_problem(quoted, inside, NOW, PRICES))
    for bad in ("0.00", "-5.00", "1.234", "NaN", "Infinity", "1e3", "abc", "",
                "9" * 40 + ".00"):
        problem = quote_problem(Resolution("repair", items=SHOES, quote_amount=bad),
                                outside, NOW, PRICES)
        assert problem is not None, bad
        assert "above 0.00" in str(problem) or "more than" in str(problem), (bad, problem)
    dearer = Resolution("repair", items=SHOES, quote_amount="599.01")
    assert "more than the 599.00 the items cost" in str(
        quote_problem(dearer, outside, NOW, PRICES))
    assert quote_problem(Resolution("repair", items=SHOES, quote_amount="599.00"),
                         outside, NOW, PRICES) is None
    assert "only a repair" in str(quote_problem(
        Resolution("refund", amount="5.00", quote_amount="5.00"), outside, NOW, PRICES))


def test_the_policy_takes_a_quote_window_and_names_a_bad_one_by_line():
    assert parse_policy(SHIPPED).quote_window == 7 * 24 * 3600
    assert parse_policy(SHIPPED.replace('quote_window = "7d"', 'quote_window = "36h"')
                        ).quote_window == 36 * 3600
    for bad in ('"0s"', '"soon"', "3"):
        text = SHIPPED.replace('quote_window = "7d"', f"quote_window = {bad}")
        line = 1 + text.split("quote_window =")[0].count("\n")
        with pytest.raises(PolicyError, match="quote_window") as err:
            parse_policy(text, "policy.toml")
        assert err.value.line == line


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def systems(temporal_address, tmp_path_factory):
    policy = tmp_path_factory.mktemp("warranty") / "sla_policy.toml"
    policy.write_text(SHIPPED.replace('quote_window = "7d"',
                                      f'quote_window = "{WINDOW_SECONDS}s"'),
                      encoding="utf-8")
    with running_stack(temporal_address, tmp_path_factory, sla_file=str(policy)) as running:
        yield running


def demo_line(systems, inside: bool, taken: set[str] | None = None) -> tuple[str, dict]:
    """A delivered demo order and one of its lines whose warranty has ended (or not),
    counted from now; products without a warranty (food) are not repaired."""
    now = datetime.now(UTC)
    for order in httpx.get(f"{systems['orders']}/orders", timeout=10).json():
        if order["status"] != "delivered" or order["id"] in (taken or set()):
            continue
        delivered = datetime.fromisoformat(order["delivered_at"].replace("Z", "+00:00"))
        for line in order["lines"]:
            if not line.get("warranty_days"):
                continue
            ended = delivered + timedelta(days=line["warranty_days"]) < now - timedelta(hours=1)
            if ended != inside:
                return order["id"], line
    raise AssertionError(f"no demo order with a line {'inside' if inside else 'outside'} "
                         "its warranty")


def repair_case(systems, inside: bool = False, taken: set[str] | None = None
                ) -> tuple[dict, dict]:
    order_id, line = demo_line(systems, inside, taken)
    case = open_case(systems, order_id, "repair", [{"sku": line["sku"], "quantity": 1}])
    to_resolve(systems, case)
    return case, line


def resolve(systems, case: dict, resolution: dict | None = None, **body) -> httpx.Response:
    return call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve",
                json={"resolution": resolution, **body} if resolution else body)


def token_of(case: dict) -> str:
    return case["customer_url"].rsplit("/", 1)[1]


def answer(systems, case: dict, decision) -> httpx.Response:
    return systems["http"].post(f"/api/v1/status/{token_of(case)}/quote",
                                json={"decision": decision})


def view(systems, case: dict) -> dict:
    return systems["http"].get(f"/api/v1/status/{token_of(case)}").json()


def at_the_quote(systems, case: dict) -> dict:
    """Past the pickup: the item is at the repair centre and the quote waits."""
    case = wait_for(systems, case["id"], awaiting("parcel"))
    move(systems, waybill(case, "repair_pickup"), 3)
    return wait_for(systems, case["id"], awaiting("quote"))


def unchanged(systems, case: dict) -> None:
    now = call(systems, "GET", f"/api/v1/cases/{case['id']}").json()
    assert (now["stage"], now["resolution"], now["parcels"]) == ("resolve", None, {})
    assert "resolution_planned" not in [e["type"] for e in now["timeline"]]


def test_a_repair_inside_the_warranty_is_free_and_takes_no_quote(systems):
    case, line = repair_case(systems, inside=True)
    items = [{"sku": line["sku"], "quantity": 1}]
    refused = resolve(systems, case, {"type": "repair", "items": items,
                                      "quote_amount": "50.00"})
    assert refused.status_code == 422, refused.text
    assert "repair is free" in refused.json()["detail"]
    unchanged(systems, case)
    assert resolve(systems, case, {"type": "repair", "items": items}).status_code == 200
    case = wait_for(systems, case["id"], awaiting("parcel"))
    move(systems, waybill(case, "repair_pickup"), 3)
    case = wait_for(systems, case["id"], awaiting("inspection"))
    assert case["resolution"]["quote"] is None
    assert "quote_offered" not in [e["type"] for e in case["timeline"]]
    assert view(systems, case)["quote"] is None


def test_bad_quotes_and_answers_are_refused_and_change_nothing(systems):
    case, line = repair_case(systems)
    items = [{"sku": line["sku"], "quantity": 1}]
    missing = resolve(systems, case, {"type": "repair", "items": items})
    assert missing.status_code == 422, missing.text
    assert f"the warranty of {line['sku']} ended on" in missing.json()["detail"]
    # Not an amount above zero (the schema), or dearer than the item (the workflow).
    for bad in ("0.00", "-10.00", "12.345", "1e3", "NaN", " 10.00", "99999999999.00", 12,
                None, ""):
        response = resolve(systems, case, {"type": "repair", "items": items,
                                           "quote_amount": bad})
        assert response.status_code == 422, (bad, response.text)
    dearer = f"{Decimal(line['unit_price']) + Decimal('0.01'):.2f}"
    response = resolve(systems, case, {"type": "repair", "items": items,
                                       "quote_amount": dearer})
    assert response.status_code == 422, response.text
    assert f"more than the {line['unit_price']} the items cost" in response.json()["detail"]
    # Only a repair takes a quote, alone or in a list.
    for plan in ({"resolution": {"type": "refund", "amount": "5.00",
                                 "quote_amount": "5.00"}},
                 {"resolutions": [{"type": "apology"},
                                  {"type": "return_refund", "items": items,
                                   "quote_amount": "5.00"}]}):
        response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json=plan)
        assert response.status_code == 422, response.text
        assert "quote_amount" in response.text
    unchanged(systems, case)
    # No quote waits: the customer's answer is refused, whatever it says.
    for decision in ("accept", "decline"):
        response = answer(systems, case, decision)
        assert response.status_code == 409, response.text
        assert "no repair quote is waiting" in response.json()["detail"]
    for body in ({"decision": "maybe"}, {"decision": True}, {}, {"decision": "accept",
                                                                  "amount": "1.00"}):
        response = systems["http"].post(f"/api/v1/status/{token_of(case)}/quote", json=body)
        assert response.status_code == 422, (body, response.text)
    assert systems["http"].post("/api/v1/status/not-a-link/quote",
                                json={"decision": "accept"}).status_code == 404
    unchanged(systems, case)


def test_an_accepted_quote_is_recorded_as_owed_and_the_repair_goes_on(systems):
    case, line = repair_case(systems)
    items = [{"sku": line["sku"], "quantity": 1}]
    assert resolve(systems, case, {"type": "repair", "items": items,
                                   "quote_amount": "120.00"}).status_code == 200
    case = at_the_quote(systems, case)
    assert case["status"] == "waiting_on_customer"
    quote = case["resolution"]["quote"]
    assert (quote["amount"], quote["answer"]) == ("120.00", None)
    clock = [c for c in case["deadlines"]["clocks"] if c["name"] == "resolution"][-1]
    assert (clock["state"], clock["paused_reason"]) == ("paused", "waiting_on_customer")
    seen = view(systems, case)
    assert seen["can_answer_quote"] is True
    assert seen["quote"]["amount"] == "120.00" and seen["quote"]["answer"] is None
    # Staff cannot answer for the customer: there is no staff endpoint for it.
    assert call(systems, "POST", f"/api/v1/cases/{case['id']}/quote",
                json={"decision": "accept"}).status_code == 404
    accepted = answer(systems, case, "accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["quote"]["answer"] == "accepted"
    assert accepted.json()["can_answer_quote"] is False
    # Accepted twice, or declined after: refused.
    for decision in ("accept", "decline"):
        again = answer(systems, case, decision)
        assert again.status_code == 409, again.text
        assert "already answered (accepted)" in again.json()["detail"]
    case = wait_for(systems, case["id"], awaiting("inspection"))
    assert case["resolution"]["refs"]["owed"] == "120.00"
    assert case["resolution"]["refs"]["quote"]["answer"] == "accepted"
    call(systems, "POST", f"/api/v1/cases/{case['id']}/inspect",
         json={"passed": True, "note": "sole glued"})
    case = wait_for(systems, case["id"], lambda c: "repair_return" in (
        c["resolution"]["refs"].get("waybills", {})))
    move(systems, waybill(case, "repair_return"), 3)
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert refunds_of(systems, case["id"]) == []  # nothing paid either way
    types = [e["type"] for e in case["timeline"]]
    assert types.count("quote_offered") == 1 and types.count("quote_answered") == 1
    steps = [e["detail"]["step"] for e in case["timeline"] if e["type"] == "resolution_step"]
    assert steps == ["repair_pickup", "quote_accepted", "repair_return"]
    record_history_sync(systems["temporal"], case["id"], "warranty_accepted")


def test_a_declined_quote_sends_the_item_back_and_closes_the_case(systems):
    case, line = repair_case(systems)
    items = [{"sku": line["sku"], "quantity": 1}]
    assert resolve(systems, case, {"type": "repair", "items": items,
                                   "quote_amount": "80.00"}).status_code == 200
    case = at_the_quote(systems, case)
    assert answer(systems, case, "decline").status_code == 200
    assert answer(systems, case, "decline").status_code == 409
    case = wait_for(systems, case["id"], lambda c: "return_unrepaired" in (
        c["resolution"]["refs"].get("waybills", {})))
    assert case["stage"] == "resolve"  # until the item is back
    move(systems, waybill(case, "return_unrepaired"), 3)
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "closed")
    assert case["close_reason"] == "quote_declined" and case["status"] == "closed"
    assert case["resolution"]["state"] == "done"
    assert case["resolution"]["refs"]["quote"]["answer"] == "declined"
    assert "owed" not in case["resolution"]["refs"]
    assert all(c["state"] != "running" for c in case["deadlines"]["clocks"])
    assert [e["type"] for e in case["timeline"]][-1] == "closed_unrepaired"
    seen = view(systems, case)
    assert seen["stage"] == "closed" and seen["quote"]["answer"] == "declined"
    assert seen["can_rate"] is False
    record_history_sync(systems["temporal"], case["id"], "warranty_declined")


def test_an_unanswered_quote_counts_as_declined(systems):
    case, line = repair_case(systems)
    items = [{"sku": line["sku"], "quantity": 1}]
    # In a combined plan: the apology is said, the repair waits at the repair centre.
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolutions": [{"type": "apology"},
                        {"type": "repair", "items": items, "quote_amount": "60.00"}]})
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], awaiting("parcel"))
    move(systems, case["resolution"]["remedies"][1]["refs"]["waybills"]["repair_pickup"], 3)
    case = wait_for(systems, case["id"], awaiting("quote"))
    assert case["resolution"]["quote"]["remedy"] == 2
    case = wait_for(systems, case["id"], lambda c: "return_unrepaired" in (
        c["resolution"]["remedies"][1]["refs"].get("waybills", {})),
        timeout=WINDOW_SECONDS + 30)
    assert answer(systems, case, "accept").status_code == 409  # too late
    move(systems, case["resolution"]["remedies"][1]["refs"]["waybills"]["return_unrepaired"],
         3)
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "closed")
    assert case["close_reason"] == "quote_declined"
    assert [(r["type"], r["state"]) for r in case["resolution"]["remedies"]] == [
        ("apology", "done"), ("repair", "done")]
    assert case["resolution"]["remedies"][1]["refs"]["quote"]["answer"] == "expired"
    assert "quote_expired" in [e["type"] for e in case["timeline"]]
    record_history_sync(systems["temporal"], case["id"], "warranty_expired")


def test_the_case_page_form_sends_the_quote_with_the_repair():
    from werkzeug.datastructures import MultiDict

    from web.desk import form_body

    form = MultiDict({"type": "apology", "type-2": "repair", "quote_amount": " 120.00 ",
                      "qty:SKU-SHOES-41": "1", "note": ""})
    assert form_body("resolve", form) == {"resolutions": [
        {"type": "apology"},
        {"type": "repair", "items": [{"sku": "SKU-SHOES-41", "quantity": 1}],
         "quote_amount": "120.00"}]}
    alone = MultiDict({"type": "repair", "quote_amount": "", "qty:SKU-SHOES-41": "1"})
    assert form_body("resolve", alone) == {"resolution": {
        "type": "repair", "items": [{"sku": "SKU-SHOES-41", "quantity": 1}]}}
