"""Erasure goes through the case's workflow: a closed case within its reopen window is
erased in the workflow's own state and ends, so neither a reopen nor a late courier
scan can write the customer's data back (security review, second round, #3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import tests.test_resolutions as resolutions
from db import cases as case_store
from tests.test_resolutions import SECRET, call, move, to_resolve, wait_for, waybill
from web.webhooks import signature

NAME, PHONE = "周敏", "13700000009"
# The resolutions module's stack (simulators over HTTP, the web app, a worker), its own
# instance for this module.
systems = resolutions.systems


def closed_exchange(systems) -> tuple[dict, str]:
    """An exchange walked to closed, for a customer of its own; its collect_old waybill."""
    response = call(systems, "POST", "/api/v1/cases", json={
        "kind": "exchange", "channel": "app", "order_id": "SO-10014",
        "customer": {"id": f"C-{uuid.uuid4().hex[:8]}", "name": NAME, "phone": PHONE},
        "items": [{"sku": "SKU-SHIRT-77", "quantity": 1}], "description": "需要售后处理"})
    assert response.status_code == 201, response.text
    case = response.json()
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "exchange", "items": [{"sku": "SKU-SHIRT-77", "quantity": 1}]}})
    case = wait_for(systems, case["id"], lambda c: "collect_old" in (
        (c["resolution"] or {}).get("refs", {}).get("waybills", {})))
    number = waybill(case, "collect_old")
    move(systems, waybill(case, "ship_replacement"), 3)
    move(systems, number, 3)
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    token = case["customer_url"].rsplit("/", 1)[1]
    rated = systems["http"].post(f"/api/v1/status/{token}/feedback",
                                 json={"rating": 5, "comment": f"{NAME} 很满意"})
    assert rated.status_code == 200, rated.text
    revisited = call(systems, "POST", f"/api/v1/cases/{case['id']}/revisit",
                     json={"outcome": "satisfied", "note": "ok"})
    assert revisited.status_code == 200 and revisited.json()["stage"] == "closed"
    return revisited.json(), number


def erase(systems, customer_id: str) -> subprocess.CompletedProcess:
    settings = systems["settings"]
    return subprocess.run(
        [sys.executable, "-m", "aftersales.cli", "privacy", "erase", customer_id],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, **settings.to_env()})


def stored(systems, case_id: str) -> str:
    """Everything the read model holds of the case, as text."""
    from db.engine import make_engine, make_sessionmaker

    engine = make_engine(systems["settings"].database_url)
    try:
        with make_sessionmaker(engine)() as session:
            row = case_store.get_case(session, case_id)
            assert row is not None
            events = case_store.timeline(session, case_id)
            return json.dumps([row.customer_name, row.customer_phone, row.data,
                               [e.detail for e in events]], ensure_ascii=False)
    finally:
        engine.dispose()


def no_personal_data(text: str) -> bool:
    return NAME not in text and PHONE not in text


def test_a_reopen_after_erasure_brings_nothing_back(systems):
    case, _ = closed_exchange(systems)
    customer_id = case["customer"]["id"]
    token = case["customer_url"].rsplit("/", 1)[1]
    erased = erase(systems, customer_id)
    assert erased.returncode == 0, erased.stderr
    assert no_personal_data(stored(systems, case["id"]))
    reopened = call(systems, "POST", f"/api/v1/cases/{case['id']}/reopen",
                    json={"reason": "the customer called again"})
    assert reopened.status_code in (404, 409), reopened.text
    time.sleep(1)  # a write the reopen might have caused would have landed by now
    after = stored(systems, case["id"])
    assert no_personal_data(after), after[:500]
    assert systems["http"].get(f"/api/v1/status/{token}").status_code == 404
    assert '"erased"' in after or "erased" in after


def test_a_courier_scan_after_erasure_brings_nothing_back(systems):
    case, number = closed_exchange(systems)
    erased = erase(systems, case["customer"]["id"])
    assert erased.returncode == 0, erased.stderr
    body = json.dumps({"event_id": str(uuid.uuid4()), "waybill_no": number,
                       "reference": case["id"], "type": "collect_old", "status": "damaged",
                       "detail": "scanned late", "at": datetime.now(UTC).isoformat()}).encode()
    stamp = str(int(time.time()))
    scanned = systems["http"].post("/webhooks/courier", content=body, headers={
        "Content-Type": "application/json", "X-Courier-Timestamp": stamp,
        "X-Courier-Signature": signature(body, SECRET, stamp)})
    assert scanned.status_code == 202
    time.sleep(1)
    after = stored(systems, case["id"])
    assert no_personal_data(after), after[:500]
    assert "scanned late" not in after  # the workflow has ended: the scan is not recorded


def test_erasure_refuses_while_temporal_is_unreachable_and_erases_nothing(systems):
    case, _ = closed_exchange(systems)
    settings = systems["settings"].with_(temporal_address="127.0.0.1:9")
    out = subprocess.run(
        [sys.executable, "-m", "aftersales.cli", "privacy", "erase", case["customer"]["id"]],
        capture_output=True, text=True, timeout=60, env={**os.environ, **settings.to_env()})
    assert out.returncode != 0
    assert not no_personal_data(stored(systems, case["id"]))  # nothing half-erased
