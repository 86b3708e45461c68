"""The fault matrix for graded inspections and instant refunds: the order, inventory and
courier systems fail a third of their calls (503s, hangs, answers lost after the work
was done), and the worker (a real process) is SIGKILLed twice in the middle of the
sagas. Every refund is paid exactly once under its key, no stock is reserved, every
restock lands once where its grade sends it, and every recovery task is recorded once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from tests.conftest import staff_token
from tests.test_crashes import wait_until
from tests.test_resolutions import faulty_stack

pytestmark = pytest.mark.slow

KETTLE = [{"sku": "SKU-KETTLE-4", "quantity": 1}]
TEA = [{"sku": "SKU-TEA-001", "quantity": 1}]


# Two worker kills, a third of all calls failing and four parcels to move: longer than
# the suite's default per test.
@pytest.mark.timeout(900)
def test_graded_and_instant_refunds_pay_once_and_record_recovery_once_through_faults(
        temporal_address, tmp_path):
    # (order, items, body of resolve, grade, stage it ends in). SO-10009, SO-10033 and
    # SO-10001 are a VIP's (instant at pickup); SO-10008 a regular customer's.
    plans = [
        ("SO-10009", KETTLE, {"resolution": {"type": "return_refund", "items": KETTLE}},
         "A", "feedback"),
        ("SO-10033", KETTLE, {"resolution": {"type": "return_refund", "items": KETTLE}},
         "C", "analyze"),
        ("SO-10008", KETTLE, {"resolution": {"type": "return_refund", "items": KETTLE}},
         "B", "feedback"),
        ("SO-10001", TEA, {"resolutions": [{"type": "apology"},
                                           {"type": "return_refund", "items": TEA}]},
         "D", "analyze"),
    ]
    with (faulty_stack(temporal_address, tmp_path) as stack,
          ThreadPoolExecutor(max_workers=4) as pool):
        # A supervisor: the VIP orders were delivered before the return window.
        http = stack.client(staff_token(stack.app, "sue", "supervisor"))
        cases = []
        for n, (order_id, items, _, _, _) in enumerate(plans):
            response = http.post("/api/v1/cases", json={
                "kind": "return", "channel": "app", "order_id": order_id,
                "customer": {"id": f"C-F{n}", "name": "客户"}, "items": items,
                "description": "退货"})
            assert response.status_code == 201, response.text
            cases.append(response.json())
        ids = [c["id"] for c in cases]

        get = partial(stack.fetch, http)
        stack.to_resolve(http, ids, {"root_cause": "customer_changed_mind",
                                     "responsible_party": "customer",
                                     "note": "no reason return"})
        sent = [pool.submit(lambda c, b: http.post(f"/api/v1/cases/{c}/resolve",
                                                   json=b).status_code, case_id, plan[2])
                for case_id, plan in zip(ids, plans, strict=True)]
        assert [f.result(timeout=180) for f in sent] == [200] * len(plans)

        def pickup_of(case: dict) -> str | None:
            plan = case["resolution"] or {}
            for remedy in [plan, *(plan.get("remedies") or [])]:
                number = remedy.get("refs", {}).get("waybills", {}).get("return_pickup")
                if number:
                    return number
            return None

        pickups = [pickup_of(wait_until(get(case_id), pickup_of, 240, "pickup waybill"))
                   for case_id in ids]
        for number in pickups:  # the courier scans every pickup ...
            stack.courier_state.advance(number)
        # ... and the worker dies while the instant refunds are being paid.
        stack.kill_worker()
        for case_id in (ids[0], ids[1], ids[3]):
            wait_until(get(case_id), lambda c: c["instant_refund_at"] is not None, 240,
                       f"{case_id} refunded at pickup")
        for number in pickups:
            for _ in range(2):
                stack.courier_state.advance(number)
        for case_id, plan in zip(ids, plans, strict=True):
            wait_until(get(case_id), lambda c: (c["resolution"] or {}).get("awaiting")
                       == "inspection", 240, f"{case_id} awaiting inspection")
            response = http.post(f"/api/v1/cases/{case_id}/inspect",
                                 json={"grade": plan[3], "note": f"graded {plan[3]}"})
            assert response.status_code == 200, response.text
            if case_id == ids[1]:  # and again while the failed goods go back
                stack.kill_worker()
        finals = [wait_until(get(case_id), lambda c, end=plan[4]: c["stage"] == end
                             and (c["resolution"] or {}).get("state") in ("done", "failed"),
                             240, f"{case_id} in {plan[4]}")
                  for case_id, plan in zip(ids, plans, strict=True)]

        refunds = sorted((r["case_id"], r["amount"], r["idempotency_key"])
                         for r in stack.order_state.refunds.values())
        assert refunds == sorted([
            (ids[0], "149.00", f"{ids[0]}:1:refund"),
            (ids[1], "149.00", f"{ids[1]}:1:refund"),
            (ids[2], "134.10", f"{ids[2]}:1:refund"),
            (ids[3], "168.00", f"{ids[3]}:1:r2:refund")])
        movements = stack.movements()
        assert [m for m in movements if m["kind"] == "reservation"] == []
        restocks = sorted((m["reference"], m.get("location", "stock")) for m in movements
                          if m["kind"] == "restock")
        assert restocks == sorted([(ids[0], "stock"), (ids[2], "open_box")])
        tasks = [[(t["amount"], t["state"]) for t in f["recovery_tasks"]] for f in finals]
        assert tasks == [[], [("149.00", "open")], [], [("168.00", "open")]]
        assert [f["fraud_review"] for f in finals] == [False, False, False, True]
        assert "return_to_customer" in finals[1]["resolution"]["refs"]["waybills"]
        for final in finals:
            types = [e["type"] for e in final["timeline"]]
            assert types.count("resolution_planned") == 1
            assert types.count("resolved") + types.count("resolution_failed") == 1
            assert types.count("recovery_task") == len(final["recovery_tasks"])
            assert types.count("inspected") == 1
        stack.assert_faults_injected()
