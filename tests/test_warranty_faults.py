"""The fault matrix for repairs outside the warranty: the order, inventory and courier
systems fail a third of their calls, and the worker (a real process) is SIGKILLed while
the sagas run and again while the quotes' answers are taken up. Every refund and coupon
of the combined plans is paid exactly once under its own key, every waybill is made
once per step, each quote is offered and answered once, and each case ends where its
answer sends it: accepted → feedback with the quote owed, declined → closed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from tests.conftest import staff_token
from tests.test_crashes import wait_until
from tests.test_resolutions import FAULTY, faulty_stack

# Three sagas, each through a pickup, a quote and a return parcel, with a third of the
# calls failing and two worker restarts: longer than the suite's 120 s default.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]


def outside_warranty(orders: dict[str, dict]) -> list[tuple[str, dict]]:
    """Delivered demo orders with a line whose warranty ended (food has none to end)."""
    now, found = datetime.now(UTC), []
    for order in orders.values():
        if order["status"] != "delivered":
            continue
        delivered = datetime.fromisoformat(order["delivered_at"].replace("Z", "+00:00"))
        for line in order["lines"]:
            if line.get("warranty_days") and (delivered + timedelta(days=line["warranty_days"])
                                          < now - timedelta(hours=1)):
                found.append((order["id"], line))
                break
    return found


def test_quotes_pay_once_and_send_each_parcel_once_through_faults_and_kills(
        temporal_address, tmp_path):
    # (remedies besides the repair, the customer's answer, where the case ends)
    plans = [
        ([], "accept", "feedback"),
        ([{"type": "compensation", "coupon_code": "SORRY-Q"}], "accept", "feedback"),
        ([{"type": "refund", "amount": "10.00"}], "decline", "closed"),
    ]
    with (faulty_stack(temporal_address, tmp_path) as stack,
          ThreadPoolExecutor(max_workers=3) as pool):
        candidates = outside_warranty(stack.order_state.orders)
        assert len(candidates) >= 3, candidates
        http = stack.client(staff_token(stack.app))
        courier_state = stack.courier_state
        cases = []
        for n, (order_id, line) in enumerate(candidates[:len(plans)]):
            items = [{"sku": line["sku"], "quantity": 1}]
            response = http.post("/api/v1/cases", json={
                "kind": "repair", "channel": "app", "order_id": order_id,
                "customer": {"id": f"C-{n}", "name": "客户"}, "items": items,
                "description": "坏了"})
            assert response.status_code == 201, response.text
            cases.append((response.json(), items))

        get = partial(stack.fetch, http)
        stack.to_resolve(http, [case["id"] for case, _ in cases], FAULTY)

        def resolve(case: dict, remedies: list[dict]) -> int:
            return http.post(f"/api/v1/cases/{case['id']}/resolve",
                             json={"resolutions": remedies}).status_code

        sent = [pool.submit(resolve, case, [*plan[0], {"type": "repair", "items": items,
                                                       "quote_amount": "50.00"}])
                for (case, items), plan in zip(cases, plans, strict=True)]
        wait_until(get(cases[0][0]["id"]), lambda c: (c["resolution"] or {}).get("state")
                   in ("running", "done"), 120, "a saga under way")
        stack.kill_worker()
        assert [f.result(timeout=180) for f in sent] == [200] * len(plans)

        def repair_refs(case: dict) -> dict:
            """The repair's refs: the last remedy's, or the plan's when it is the only one."""
            plan = case["resolution"] or {}
            return (plan.get("remedies") or [plan])[-1].get("refs", {})

        def advance(number: str) -> None:
            for _ in range(3):
                courier_state.advance(number)

        for case, _ in cases:
            found = wait_until(get(case["id"]), lambda c: "repair_pickup" in repair_refs(
                c).get("waybills", {}), 180, "the pickup")
            advance(repair_refs(found)["waybills"]["repair_pickup"])
        for (case, _), plan in zip(cases, plans, strict=True):
            wait_until(get(case["id"]), lambda c: (c["resolution"] or {}).get(
                "awaiting") == "quote", 180, "the quote")
            token = case["customer_url"].rsplit("/", 1)[1]
            response = http.post(f"/api/v1/status/{token}/quote",
                                 json={"decision": plan[1]})
            assert response.status_code == 200, response.text
        stack.kill_worker()  # again, while the answers are taken up
        for (case, _), plan in zip(cases, plans, strict=True):
            if plan[1] == "accept":
                wait_until(get(case["id"]), lambda c: (c["resolution"] or {}).get(
                    "awaiting") == "inspection", 180, "the inspection")
                response = http.post(f"/api/v1/cases/{case['id']}/inspect",
                                     json={"passed": True, "note": "fixed"})
                assert response.status_code == 200, response.text
            step = "repair_return" if plan[1] == "accept" else "return_unrepaired"
            found = wait_until(get(case["id"]), lambda c, s=step: s in repair_refs(c).get(
                "waybills", {}), 180, step)
            advance(repair_refs(found)["waybills"][step])
        finals = [wait_until(get(case["id"]), lambda c, end=plan[2]: c["stage"] == end
                             and (c["resolution"] or {}).get("state") == "done",
                             240, f"{case['id']} in {plan[2]}")
                  for (case, _), plan in zip(cases, plans, strict=True)]

        ids = [c["id"] for c in finals]
        refunds = [(r["case_id"], r["amount"], r["idempotency_key"])
                   for r in stack.order_state.refunds.values()]
        assert refunds == [(ids[2], "10.00", f"{ids[2]}:1:r1:refund")]
        coupons = [(c["case_id"], c["coupon_code"], c["idempotency_key"])
                   for c in stack.order_state.compensations.values()]
        assert coupons == [(ids[1], "SORRY-Q", f"{ids[1]}:1:r1:compensation")]
        for final, plan in zip(finals, plans, strict=True):
            made = sorted((w["type"], w["idempotency_key"].rsplit(":", 1)[1])
                          for w in courier_state.waybill_list(final["id"]))
            back = "repair_return" if plan[1] == "accept" else "return_unrepaired"
            assert made == sorted([("repair_pickup", "repair_pickup"),
                                   ("repair_return", back)]), made
            types = [e["type"] for e in final["timeline"]]
            assert types.count("resolution_planned") == 1
            assert types.count("quote_offered") == 1 and types.count("quote_answered") == 1
            assert types.count("resolved") + types.count("closed_unrepaired") == 1
            refs = repair_refs(final)
            if plan[1] == "accept":
                assert refs["owed"] == "50.00" and refs["quote"]["answer"] == "accepted"
                steps = [e["detail"]["step"] for e in final["timeline"]
                         if e["type"] == "resolution_step"]
                assert steps.count("quote_accepted") == 1
            else:
                assert "owed" not in refs and final["close_reason"] == "quote_declined"
        stack.assert_faults_injected()
