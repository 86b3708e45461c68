"""The inventory and courier simulators over real HTTP, webhooks to a real receiver."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from flask import Flask, request
from werkzeug.serving import make_server

from simulators.courier_system import CourierSystem, sign
from simulators.courier_system import create_app as create_courier_app
from simulators.inventory_system import InventorySystem
from simulators.inventory_system import create_app as create_inventory_app

SECRET = "test-webhook-secret"


@contextmanager
def serving(app: Flask, port: int = 0) -> Iterator[str]:
    """Serve `app` in a thread, on a free port unless told; yields its base URL."""
    server = make_server("127.0.0.1", port, app, threaded=True)
    # A short poll interval makes shutdown() quick; the default adds half a second a test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        pause.wait(0.02)


def problem_type(response: httpx.Response) -> str:
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == response.status_code
    return body["type"]


@pytest.fixture
def inventory() -> Iterator[httpx.Client]:
    app = create_inventory_app(InventorySystem(state_file=None))
    with serving(app) as url, httpx.Client(base_url=url, timeout=5) as client:
        yield client


def reserve(client: httpx.Client, key: str, sku: str = "SKU-TEA-001", quantity: int = 2,
            reference: str = "AS-TEST1") -> httpx.Response:
    return client.post("/reservations", headers={"Idempotency-Key": key},
                       json={"sku": sku, "quantity": quantity, "reference": reference})


# Inventory

def test_stock_is_seeded_from_the_catalogue_with_one_sku_sold_out(inventory):
    stock = {item["sku"]: item for item in inventory.get("/stock").json()}
    # The demo orders' ten SKUs and the sizes sold only as replacements.
    assert len(stock) == 14 and "SKU-SHOES-42-LITE" in stock
    assert stock["SKU-SHOES-41"] == {"sku": "SKU-SHOES-41", "on_hand": 0, "reserved": 0,
                                     "available": 0}
    others = [item for sku, item in stock.items() if sku != "SKU-SHOES-41"]
    assert all(5 <= item["on_hand"] <= 50 and item["available"] == item["on_hand"]
               for item in others)
    assert inventory.get("/stock/SKU-TEA-001").json() == stock["SKU-TEA-001"]
    missing = inventory.get("/stock/SKU-NOPE")
    assert missing.status_code == 404
    assert problem_type(missing) == "unknown_sku"


def test_reservation_holds_stock_once_per_idempotency_key(inventory):
    before = inventory.get("/stock/SKU-TEA-001").json()
    created = reserve(inventory, "AS-TEST1:reserve:0")
    assert created.status_code == 201
    record = created.json()
    assert record["id"].startswith("RSV-")
    assert {k: record[k] for k in ("sku", "quantity", "reference", "state")} == {
        "sku": "SKU-TEA-001", "quantity": 2, "reference": "AS-TEST1", "state": "reserved"}
    assert record["created_at"].endswith("Z")

    replay = reserve(inventory, "AS-TEST1:reserve:0")
    assert replay.status_code == 200
    assert replay.json() == record
    after = inventory.get("/stock/SKU-TEA-001").json()
    assert after["reserved"] == before["reserved"] + 2
    assert after["available"] == before["available"] - 2
    assert after["on_hand"] == before["on_hand"]

    conflict = reserve(inventory, "AS-TEST1:reserve:0", quantity=3)
    assert conflict.status_code == 409
    assert problem_type(conflict) == "idempotency_conflict"


def test_reservation_refuses_bad_requests_and_changes_nothing(inventory):
    before = inventory.get("/stock").json()
    no_key = inventory.post("/reservations", json={"sku": "SKU-TEA-001", "quantity": 1,
                                                   "reference": "AS-TEST1"})
    assert no_key.status_code == 400
    for body in ({"sku": "SKU-TEA-001", "quantity": 0, "reference": "AS-TEST1"},
                 {"sku": "SKU-TEA-001", "quantity": "2", "reference": "AS-TEST1"},
                 {"sku": "SKU-TEA-001", "quantity": True, "reference": "AS-TEST1"},
                 {"sku": "SKU-TEA-001", "quantity": 1},
                 ["not", "an", "object"]):
        bad = inventory.post("/reservations", headers={"Idempotency-Key": "k-bad"}, json=body)
        assert bad.status_code == 422, body
        assert problem_type(bad) == "about:blank"
    unknown = reserve(inventory, "k-unknown", sku="SKU-NOPE")
    assert unknown.status_code == 404
    sold_out = reserve(inventory, "k-shoes", sku="SKU-SHOES-41", quantity=1)
    assert sold_out.status_code == 409
    assert problem_type(sold_out) == "insufficient_stock"
    assert inventory.get("/stock").json() == before
    assert inventory.get("/movements").json() == []


def test_insufficient_stock_until_restocked_by_control(inventory):
    stock = inventory.put("/_control/stock/SKU-KETTLE-4", json={"on_hand": 3})
    assert stock.status_code == 200
    assert stock.json()["available"] == 3
    assert reserve(inventory, "k1", sku="SKU-KETTLE-4", quantity=2).status_code == 201
    too_many = reserve(inventory, "k2", sku="SKU-KETTLE-4", quantity=2)
    assert too_many.status_code == 409
    assert problem_type(too_many) == "insufficient_stock"
    below = inventory.put("/_control/stock/SKU-KETTLE-4", json={"on_hand": 1})
    assert below.status_code == 409
    assert problem_type(below) == "below_reserved"
    assert inventory.put("/_control/stock/SKU-KETTLE-4", json={"on_hand": 4}).status_code == 200
    # The refused request was not recorded, so the same key now succeeds.
    assert reserve(inventory, "k2", sku="SKU-KETTLE-4", quantity=2).status_code == 201
    assert inventory.get("/stock/SKU-KETTLE-4").json()["available"] == 0

    new = inventory.put("/_control/stock/SKU-NEW-1", json={"on_hand": 7})
    assert new.status_code == 201
    assert inventory.get("/stock/SKU-NEW-1").json() == {
        "sku": "SKU-NEW-1", "on_hand": 7, "reserved": 0, "available": 7}
    assert inventory.put("/_control/stock/SKU-NEW-1", json={"on_hand": -1}).status_code == 422


def test_release_returns_stock_and_cannot_follow_shipping(inventory):
    before = inventory.get("/stock/SKU-RICE-10").json()
    reservation = reserve(inventory, "k-rel", sku="SKU-RICE-10", quantity=3).json()
    released = inventory.post(f"/reservations/{reservation['id']}/release")
    assert released.status_code == 200
    assert released.json()["state"] == "released"
    again = inventory.post(f"/reservations/{reservation['id']}/release")
    assert again.status_code == 200
    assert again.json()["state"] == "released"
    assert inventory.get("/stock/SKU-RICE-10").json() == before
    ship_released = inventory.post(f"/reservations/{reservation['id']}/ship")
    assert ship_released.status_code == 409
    assert problem_type(ship_released) == "released"

    assert inventory.post("/reservations/RSV-99999/release").status_code == 404
    assert inventory.post("/reservations/RSV-99999/ship").status_code == 404


def test_ship_takes_goods_out_of_the_warehouse_once(inventory):
    before = inventory.get("/stock/SKU-EARB-031").json()
    reservation = reserve(inventory, "k-ship", sku="SKU-EARB-031", quantity=2).json()
    shipped = inventory.post(f"/reservations/{reservation['id']}/ship")
    assert shipped.status_code == 200
    assert shipped.json()["state"] == "shipped"
    assert inventory.post(f"/reservations/{reservation['id']}/ship").status_code == 200
    after = inventory.get("/stock/SKU-EARB-031").json()
    assert after == {"sku": "SKU-EARB-031", "on_hand": before["on_hand"] - 2, "reserved": 0,
                     "available": before["available"] - 2}
    release_shipped = inventory.post(f"/reservations/{reservation['id']}/release")
    assert release_shipped.status_code == 409
    assert problem_type(release_shipped) == "already_shipped"


def test_restock_and_write_off_are_recorded_as_movements(inventory):
    before = inventory.get("/stock/SKU-SHOES-41").json()
    body = {"sku": "SKU-SHOES-41", "quantity": 2, "reference": "AS-TEST2"}
    restock = inventory.post("/restocks", headers={"Idempotency-Key": "AS-TEST2:restock"},
                             json=body)
    assert restock.status_code == 201
    replay = inventory.post("/restocks", headers={"Idempotency-Key": "AS-TEST2:restock"},
                            json=body)
    assert replay.status_code == 200
    assert replay.json() == restock.json()
    assert inventory.get("/stock/SKU-SHOES-41").json()["on_hand"] == before["on_hand"] + 2
    assert inventory.post("/restocks", json=body).status_code == 400

    write_off = {"sku": "SKU-SHOES-41", "quantity": 1, "reference": "AS-TEST3",
                 "reason": "sole torn, failed inspection"}
    created = inventory.post("/write-offs", headers={"Idempotency-Key": "AS-TEST3:wo"},
                             json=write_off)
    assert created.status_code == 201
    assert created.json()["reason"] == "sole torn, failed inspection"
    missing_reason = inventory.post("/write-offs", headers={"Idempotency-Key": "wo-2"},
                                    json={k: v for k, v in write_off.items() if k != "reason"})
    assert missing_reason.status_code == 422
    assert inventory.get("/stock/SKU-SHOES-41").json()["on_hand"] == before["on_hand"] + 2

    reserve(inventory, "k-mv", sku="SKU-SHOES-41", quantity=1)
    movements = inventory.get("/movements").json()
    assert [(m["kind"], m["reference"]) for m in movements] == [
        ("restock", "AS-TEST2"), ("write_off", "AS-TEST3"), ("reservation", "AS-TEST1")]
    one_case = inventory.get("/movements", params={"reference": "AS-TEST3"}).json()
    assert [m["kind"] for m in one_case] == ["write_off"]


def test_inventory_state_survives_a_restart(tmp_path: Path):
    state_file = tmp_path / "inventory_system.json"
    first = InventorySystem(state_file)
    record, _ = first.reserve("k-persist", {"sku": "SKU-TEA-001", "quantity": 1,
                                            "reference": "AS-P"})
    second = InventorySystem(state_file)
    assert second.movement_list() == [record]
    assert second.stock_view("SKU-TEA-001") == first.stock_view("SKU-TEA-001")
    replay, created = second.reserve("k-persist", {"sku": "SKU-TEA-001", "quantity": 1,
                                                   "reference": "AS-P"})
    assert (replay, created) == (record, False)


def test_fault_injection_spares_health_and_control():
    app = create_inventory_app(InventorySystem(state_file=None), fail_rate=1.0,
                               hang_seconds=0.0)
    with serving(app) as url, httpx.Client(base_url=url, timeout=5) as client:
        outage = client.get("/stock")
        assert outage.status_code == 503
        assert problem_type(outage) == "about:blank"
        assert client.get("/health").json() == {"status": "ok"}
        assert client.put("/_control/stock/SKU-TEA-001", json={"on_hand": 9}).status_code == 200


# Courier

def waybill_body(reference: str = "AS-C1", kind: str = "return_pickup") -> dict:
    return {"type": kind, "reference": reference,
            "sender": {"name": "王芳", "address": "杭州市西湖区文三路 1 号"},
            "recipient": {"name": "Returns desk", "address": "Warehouse 3, Jiaxing"},
            "items": [{"sku": "SKU-TEA-001", "quantity": 1}]}


class Receiver:
    """A webhook endpoint that checks signatures, records events and can fail on purpose."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts: list[str] = []
        self.events: list[dict] = []
        self.bad_signatures = 0
        self._changed = threading.Condition()
        self.app = Flask("webhook_receiver")
        self.app.post("/webhooks/courier")(self._receive)

    def _receive(self):
        raw = request.get_data()
        with self._changed:
            stamp = request.headers.get("X-Courier-Timestamp", "")
            if not hmac.compare_digest(request.headers.get("X-Courier-Signature", ""),
                                       sign(raw, SECRET, stamp)):
                self.bad_signatures += 1
                return {"error": "bad signature"}, 401
            event = request.get_json()
            self.attempts.append(event["event_id"])
            if len(self.attempts) <= self.fail_first:
                return {"error": "try later"}, 500
            self.events.append(event)
            self._changed.notify_all()
            return {"ok": True}

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict]:
        """Wait until `count` events were accepted; returns them."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.events) >= count, timeout):
                pytest.fail(f"{len(self.events)} of {count} webhook events within {timeout} s")
            return list(self.events)


@contextmanager
def courier(webhook_url: str | None = None, step: float = 0.0, state_file: Path | None = None,
            secret: str = SECRET) -> Iterator[tuple[CourierSystem, httpx.Client]]:
    """A started courier simulator over HTTP; stopped, with its threads joined, after."""
    system = CourierSystem(state_file, webhook_url, secret, step)
    system.start()
    try:
        with (serving(create_courier_app(system)) as url,
              httpx.Client(base_url=url, timeout=5) as client):
            yield system, client
    finally:
        system.stop()
        assert not [t for t in threading.enumerate() if t.name.startswith("courier-")]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hook = Receiver()
    with serving(hook.app) as url:
        yield hook, f"{url}/webhooks/courier"


def create_waybill(client: httpx.Client, key: str, body: dict | None = None) -> httpx.Response:
    return client.post("/waybills", headers={"Idempotency-Key": key},
                       json=body or waybill_body())


def test_sign_is_hmac_sha256_of_the_raw_body():
    # A published HMAC-SHA256 test vector.
    assert sign(b"The quick brown fox jumps over the lazy dog", "key") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")


def test_waybill_is_created_once_per_idempotency_key():
    with courier() as (_system, client):
        created = create_waybill(client, "AS-C1:pickup:0")
        assert created.status_code == 201
        waybill = created.json()
        assert waybill["waybill_no"].startswith("SF") and len(waybill["waybill_no"]) == 12
        assert waybill["waybill_no"][2:].isdigit()
        assert {k: waybill[k] for k in ("type", "reference", "status", "events")} == {
            "type": "return_pickup", "reference": "AS-C1", "status": "created", "events": []}
        assert waybill["created_at"].endswith("Z")

        replay = create_waybill(client, "AS-C1:pickup:0")
        assert replay.status_code == 200
        assert replay.json() == waybill
        conflict = create_waybill(client, "AS-C1:pickup:0", waybill_body(kind="outbound"))
        assert conflict.status_code == 409
        assert problem_type(conflict) == "idempotency_conflict"

        other = create_waybill(client, "AS-C2:outbound:0", waybill_body("AS-C2", "outbound"))
        assert other.json()["waybill_no"] != waybill["waybill_no"]
        assert [w["reference"] for w in client.get("/waybills").json()] == ["AS-C1", "AS-C2"]
        assert client.get("/waybills", params={"reference": "AS-C2"}).json() == [other.json()]
        assert client.get(f"/waybills/{waybill['waybill_no']}").json() == waybill
        assert client.get("/waybills/SF0000000000").status_code == 404


def test_waybill_refuses_bad_requests():
    with courier() as (_system, client):
        assert client.post("/waybills", json=waybill_body()).status_code == 400
        bad_bodies = [
            {**waybill_body(), "type": "teleport"},
            {**waybill_body(), "reference": ""},
            {**waybill_body(), "sender": {"name": "王芳"}},
            {**waybill_body(), "recipient": "warehouse"},
            {**waybill_body(), "items": []},
            {**waybill_body(), "items": [{"sku": "SKU-TEA-001", "quantity": 0}]},
        ]
        for n, body in enumerate(bad_bodies):
            bad = create_waybill(client, f"bad-{n}", body)
            assert bad.status_code == 422, body
            assert problem_type(bad) == "about:blank"
        assert client.get("/waybills").json() == []


def test_tick_moves_parcels_through_the_statuses_until_delivered():
    with courier() as (_system, client):
        number = create_waybill(client, "k-tick").json()["waybill_no"]
        seen = []
        for _ in range(3):
            assert client.post("/_control/tick").json() == {"moved": 1}
            seen.append(client.get(f"/waybills/{number}").json()["status"])
        assert seen == ["picked_up", "in_transit", "delivered"]
        assert client.post("/_control/tick").json() == {"moved": 0}
        waybill = client.get(f"/waybills/{number}").json()
        assert [e["status"] for e in waybill["events"]] == seen
        event = waybill["events"][0]
        assert set(event) == {"event_id", "waybill_no", "reference", "type", "status", "at",
                              "detail"}
        assert (event["waybill_no"], event["reference"], event["type"]) == (
            number, "AS-C1", "return_pickup")
        assert event["at"].endswith("Z")
        finished = client.post(f"/_control/waybills/{number}/advance")
        assert finished.status_code == 409
        assert problem_type(finished) == "not_active"


def test_cancel_only_before_pickup():
    with courier() as (_system, client):
        first = create_waybill(client, "k-c1").json()["waybill_no"]
        cancelled = client.post(f"/waybills/{first}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["events"][-1]["status"] == "cancelled"
        again = client.post(f"/waybills/{first}/cancel")
        assert again.status_code == 200
        assert len(again.json()["events"]) == 1

        second = create_waybill(client, "k-c2").json()["waybill_no"]
        assert client.post("/_control/tick").json() == {"moved": 1}
        assert client.get(f"/waybills/{first}").json()["status"] == "cancelled"
        picked = client.post(f"/waybills/{second}/cancel")
        assert picked.status_code == 409
        assert problem_type(picked) == "already_picked_up"
        assert client.post("/waybills/SF0000000000/cancel").status_code == 404


def test_delay_keeps_a_parcel_moving_but_loss_and_damage_end_it():
    with courier() as (_system, client):
        delayed = create_waybill(client, "k-d").json()["waybill_no"]
        lost = create_waybill(client, "k-l", waybill_body("AS-C3")).json()["waybill_no"]
        client.post("/_control/tick")
        report = client.post(f"/_control/waybills/{delayed}/exception",
                             json={"status": "delayed", "detail": "typhoon at the hub"})
        assert report.status_code == 200
        assert report.json()["status"] == "delayed"
        assert report.json()["events"][-1]["detail"] == "typhoon at the hub"
        assert client.post(f"/_control/waybills/{lost}/exception",
                           json={"status": "lost", "detail": "not found at hub"}
                           ).json()["status"] == "lost"

        assert client.post("/_control/tick").json() == {"moved": 1}
        assert client.post(f"/_control/waybills/{delayed}/advance").json()["status"] == (
            "delivered")
        statuses = [e["status"] for e in client.get(f"/waybills/{delayed}").json()["events"]]
        assert statuses == ["picked_up", "delayed", "in_transit", "delivered"]
        assert [e["status"] for e in client.get(f"/waybills/{lost}").json()["events"]] == [
            "picked_up", "lost"]

        ended = client.post(f"/_control/waybills/{lost}/exception",
                            json={"status": "damaged", "detail": "again"})
        assert ended.status_code == 409
        assert problem_type(ended) == "not_active"
        invalid = client.post(f"/_control/waybills/{lost}/exception",
                              json={"status": "stolen", "detail": "x"})
        assert invalid.status_code == 422


def test_background_mover_delivers_on_its_own():
    with courier(step=0.05) as (_system, client):
        number = create_waybill(client, "k-bg").json()["waybill_no"]
        wait_until(lambda: client.get(f"/waybills/{number}").json()["status"] == "delivered")
        statuses = [e["status"] for e in client.get(f"/waybills/{number}").json()["events"]]
        assert statuses == ["picked_up", "in_transit", "delivered"]


def test_webhooks_are_signed_and_delivered_in_order(receiver):
    hook, url = receiver
    with courier(webhook_url=url) as (system, client):
        number = create_waybill(client, "k-wh").json()["waybill_no"]
        client.post("/_control/tick")
        client.post(f"/_control/waybills/{number}/exception",
                    json={"status": "delayed", "detail": "weather"})
        client.post("/_control/tick")
        client.post("/_control/tick")
        events = hook.wait_for(4)
        wait_until(lambda: system.pending_events() == [])
    assert hook.bad_signatures == 0
    assert events == system.get(number)["events"]
    assert [e["status"] for e in events] == ["picked_up", "delayed", "in_transit", "delivered"]


def test_failed_webhooks_are_retried_in_order():
    hook = Receiver(fail_first=2)
    with (serving(hook.app) as base,
          courier(webhook_url=f"{base}/webhooks/courier") as (system, client)):
        number = create_waybill(client, "k-retry").json()["waybill_no"]
        for _ in range(3):
            client.post("/_control/tick")
        events = hook.wait_for(3)
        wait_until(lambda: system.pending_events() == [])
        recorded = system.get(number)["events"]
    assert events == recorded
    first = recorded[0]["event_id"]
    # The first event was refused twice and the later ones waited behind it.
    assert hook.attempts == [first, first, first] + [e["event_id"] for e in recorded[1:]]


def test_webhook_events_wait_for_a_receiver_that_is_down(tmp_path: Path):
    hook = Receiver()
    probe = make_server("127.0.0.1", 0, hook.app, threaded=True)
    port = probe.server_port
    probe.server_close()  # the port is known but nothing answers yet
    url = f"http://127.0.0.1:{port}/webhooks/courier"
    state_file = tmp_path / "courier_system.json"
    with courier(webhook_url=url, state_file=state_file) as (system, client):
        create_waybill(client, "k-down")
        client.post("/_control/tick")
        assert [e["status"] for e in system.pending_events()] == ["picked_up"]

    # A restarted courier still owes the event and delivers it once a receiver listens.
    restarted = CourierSystem(state_file, url, SECRET, 0)
    assert [e["status"] for e in restarted.pending_events()] == ["picked_up"]
    with serving(hook.app, port):
        restarted.start()
        try:
            assert [e["status"] for e in hook.wait_for(1)] == ["picked_up"]
        finally:
            restarted.stop()


def test_a_wrong_signature_is_refused_and_the_event_stays_queued(receiver):
    hook, url = receiver
    with courier(webhook_url=url, secret="not-the-shared-secret") as (system, client):
        create_waybill(client, "k-sig")
        client.post("/_control/tick")
        wait_until(lambda: hook.bad_signatures >= 2)
        assert [e["status"] for e in system.pending_events()] == ["picked_up"]
    assert hook.events == []


def test_courier_fault_injection_spares_health_and_control():
    system = CourierSystem(None, None, SECRET, 0)
    app = create_courier_app(system, fail_rate=1.0, hang_seconds=0.0)
    with serving(app) as url, httpx.Client(base_url=url, timeout=5) as client:
        assert client.get("/waybills").status_code == 503
        assert client.get("/health").status_code == 200
        assert client.post("/_control/tick").status_code == 200
