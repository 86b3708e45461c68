"""Resolutions as sagas, end to end: the web app served over HTTP, a real Temporal dev
server and worker, and the order, inventory and courier simulators over HTTP, with the
courier's signed webhooks flowing back into the cases. Parcels move when the test
ticks the courier, so every path is deterministic."""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from db.accounts import create_token, create_user
from simulators import courier_system, inventory_system, order_system
from tests.conftest import BackgroundWorker, make_settings, record_history_sync
from web import create_app
from web.webhooks import signature

SECRET = "test-webhook-secret"


class Outage:
    """WSGI middleware: while `down`, the system answers 503 (its control API stays up)."""

    def __init__(self, app) -> None:
        self.app = app
        self.down = False

    def __call__(self, environ, start_response):
        if self.down and not environ["PATH_INFO"].startswith("/_control"):
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"detail": "down for the test"}']
        return self.app(environ, start_response)


class Served:
    """A WSGI app on a free loopback port, in a thread."""

    def __init__(self, app) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.server_close()


@pytest.fixture(scope="module")
def systems(temporal_address, tmp_path_factory):
    """Fresh simulators, the web app over HTTP and a worker, for this module."""
    with running_stack(temporal_address, tmp_path_factory) as running:
        yield running


@contextmanager
def running_stack(temporal_address, tmp_path_factory, **extra):
    """The stack of `systems`; `extra` settings go on top of the test settings (a policy
    file, say, for a module that needs other rules)."""
    order_state = order_system.OrderSystem(state_file=None)
    orders = Served(order_system.create_app(order_state))
    inventory = Served(inventory_system.create_app(inventory_system.InventorySystem(None)))
    web_port_holder: dict = {}
    courier_state = courier_system.CourierSystem(
        state_file=None, webhook_url=None, webhook_secret=SECRET, step=0, seed_orders=True)
    courier_outage = Outage(courier_system.create_app(courier_state))
    courier = Served(courier_outage)
    url = f"sqlite:///{tmp_path_factory.mktemp('resolutions') / 'db.sqlite'}"
    settings = make_settings(
        temporal_address, url, orders.url, inventory_system_url=inventory.url,
        courier_system_url=courier.url, courier_webhook_secret=SECRET, **extra)
    app = create_app(settings)
    web = Served(app)
    web_port_holder["url"] = web.url
    courier_state.webhook_url = f"{web.url}/webhooks/courier"
    courier_state.start()
    worker = BackgroundWorker(settings)
    worker.start()
    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "hank", "handler")
        create_user(session, "sue", "supervisor")
        tokens = {"hank": create_token(session, "hank"), "sue": create_token(session, "sue")}
    http = httpx.Client(base_url=web.url, timeout=60)
    try:
        yield {"http": http, "tokens": tokens, "orders": orders.url,
               "inventory": inventory.url, "courier": courier.url, "web": web.url,
               "temporal": temporal_address, "courier_outage": courier_outage,
               "settings": settings, "order_state": order_state}
    finally:
        http.close()
        worker.stop()
        courier_state.stop()
        for served in (web, courier, inventory, orders):
            served.stop()
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()


@dataclass
class FaultyStack:
    """The fault matrix's systems: the order, inventory and courier simulators failing a
    third of their calls (503s, hangs, answers lost after the work was done), and the
    web app over HTTP with the courier's webhooks. Used as a context manager: the worker
    is a real process the test kills (`kill_worker`), and leaving stops everything."""

    order_state: order_system.OrderSystem
    inventory_state: inventory_system.InventorySystem
    courier_state: courier_system.CourierSystem
    order_app: Any
    inventory_app: Any
    courier_app: Any
    orders: Served
    inventory: Served
    courier: Served
    settings: Any
    app: Any
    web: Served
    log_dir: Any
    workers: list = field(default_factory=list)
    clients: list = field(default_factory=list)

    def __enter__(self) -> FaultyStack:
        try:
            self._start_worker()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        # Each part stops even when one before it fails to.
        with ExitStack() as stop:
            stop.callback(self.app.extensions["aftersales"].engine.dispose)
            stop.callback(self.app.extensions["aftersales"].gateway.close)
            for served in (self.orders, self.inventory, self.courier, self.web):
                stop.callback(served.stop)
            stop.callback(self.courier_state.stop)
            for client in self.clients:
                stop.callback(client.close)
            if self.workers:
                stop.callback(self.workers[-1].stop)

    def _start_worker(self) -> None:
        from tests.test_crashes import WorkerProcess
        self.workers.append(WorkerProcess(
            self.settings, self.log_dir / f"worker-{len(self.workers) + 1}.log"))

    def kill_worker(self) -> None:
        """SIGKILL the worker in the middle of whatever it does, and start the next."""
        self.workers[-1].kill()
        self._start_worker()

    def client(self, token: str) -> httpx.Client:
        """An API client of the web app with `token`, closed when the stack stops."""
        http = httpx.Client(base_url=self.web.url, timeout=90,
                            headers={"Authorization": f"Bearer {token}"})
        self.clients.append(http)
        return http

    @staticmethod
    def fetch(http: httpx.Client, case_id: str):
        """What `wait_until` polls: the case as the API shows it."""
        return lambda: http.get(f"/api/v1/cases/{case_id}").json()

    def to_resolve(self, http: httpx.Client, case_ids, analysis: dict, send=None) -> None:
        """Each case, once its workflow has it at confirm, confirmed and analysed with
        `analysis` (root cause, responsible party, note). `send(path, body, key)` posts
        instead of `http.post` when the test's own look-ups meet the faults too."""
        from tests.test_crashes import wait_until
        for n, case_id in enumerate(case_ids):
            wait_until(self.fetch(http, case_id), lambda c: c["stage"] == "confirm", 120,
                       "confirm")
            for action, body in (("confirm", {"note": "ok"}), ("analyze", analysis)):
                path = f"/api/v1/cases/{case_id}/{action}"
                response = (send(path, body, f"{action}-{n}") if send
                            else http.post(path, json=body))
                assert response.status_code == 200, response.text

    def injected(self) -> dict[str, int]:
        """Faults each system injected so far. A test asserts the order system's (the
        money moves there, on many calls) and a few in all: a system called only a
        handful of times may, by chance, fail none at a third of its calls."""
        return {name: sum(app.extensions["faults"].values())
                for name, app in (("orders", self.order_app),
                                  ("inventory", self.inventory_app),
                                  ("courier", self.courier_app))}

    def movements(self) -> list[dict]:
        """The warehouse's movements, read from its state: its HTTP answers fail too."""
        return self.inventory_state.movement_list()

    def assert_faults_injected(self) -> None:
        injected = self.injected()
        assert injected["orders"] >= 1 and sum(injected.values()) >= 3, injected
        print("faults injected:", injected)


# The analyses the fault tests record: a faulty product, a customer who changed their mind.
FAULTY = {"root_cause": "product_quality", "responsible_party": "supplier",
          "note": "faulty"}


def faulty_stack(temporal_address, tmp_path, **extra) -> FaultyStack:
    """A `FaultyStack` over a SQLite file in `tmp_path`; `extra` settings go on top."""
    order_state = order_system.OrderSystem(state_file=None)
    order_app = order_system.create_app(order_state, fail_rate=0.33, hang_seconds=1.5)
    inventory_state = inventory_system.InventorySystem(None)
    inventory_app = inventory_system.create_app(inventory_state, fail_rate=0.33,
                                                hang_seconds=1.5)
    courier_state = courier_system.CourierSystem(None, None, SECRET, step=0)
    courier_app = courier_system.create_app(courier_state, fail_rate=0.33, hang_seconds=1.5)
    orders, inventory, courier = Served(order_app), Served(inventory_app), Served(courier_app)
    settings = make_settings(
        temporal_address, f"sqlite:///{tmp_path / 'db.sqlite'}", orders.url,
        inventory_system_url=inventory.url, courier_system_url=courier.url,
        courier_webhook_secret=SECRET, **extra)
    app = create_app(settings)
    web = Served(app)
    courier_state.webhook_url = f"{web.url}/webhooks/courier"
    courier_state.start()
    # Started: the caller's `with` stops all of it (FaultyStack.__exit__).
    return FaultyStack(order_state, inventory_state, courier_state, order_app, inventory_app,
                       courier_app, orders, inventory, courier, settings, app, web, tmp_path)


def call(systems, method: str, path: str, who: str = "hank", **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {systems['tokens'][who]}"}
    return systems["http"].request(method, path, headers=headers, **kwargs)


def open_case(systems, order_id: str, kind: str, items: list[dict]) -> dict:
    response = call(systems, "POST", "/api/v1/cases", json={
        "kind": kind, "channel": "app", "order_id": order_id,
        "customer": {"id": "C-9", "name": "周敏", "phone": "13700000009"},
        "items": items, "description": "需要售后处理"})
    assert response.status_code == 201, response.text
    return response.json()


def to_resolve(systems, case: dict) -> None:
    for action, body in (("confirm", {"note": "ok"}),
                         ("analyze", {"root_cause": "product_quality",
                                      "responsible_party": "supplier", "note": "faulty"})):
        response = call(systems, "POST", f"/api/v1/cases/{case['id']}/{action}", json=body)
        assert response.status_code == 200, response.text


def wait_for(systems, case_id: str, predicate, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    case: dict = {}
    while time.monotonic() < deadline:
        case = call(systems, "GET", f"/api/v1/cases/{case_id}").json()
        if predicate(case):
            return case
        time.sleep(0.1)
    summary = {"stage": case.get("stage"), "status": case.get("status"),
               "resolution": case.get("resolution"), "parcels": case.get("parcels"),
               "timeline": [(e["type"], e["detail"]) for e in case.get("timeline", [])][-6:]}
    raise AssertionError(f"condition not met; case is {json.dumps(summary)[:3000]}")


def awaiting(what: str):
    return lambda c: (c["resolution"] or {}).get("awaiting") == what


def waybill(case: dict, step: str) -> str:
    return case["resolution"]["refs"]["waybills"][step]


def move(systems, number: str, steps: int = 1) -> None:
    for _ in range(steps):
        response = httpx.post(f"{systems['courier']}/_control/waybills/{number}/advance",
                              timeout=10)
        assert response.status_code == 200, response.text


def refunds_of(systems, case_id: str) -> list[dict]:
    refunds = httpx.get(f"{systems['orders']}/refunds", timeout=10).json()
    return [r for r in refunds if r["case_id"] == case_id]


def movements_of(systems, case_id: str) -> list[dict]:
    movements = httpx.get(f"{systems['inventory']}/movements", timeout=10).json()
    return [m for m in movements if m.get("reference") == case_id]


def test_refund_below_the_limit_is_paid_once(systems):
    case = open_case(systems, "SO-10002", "refund", [])
    to_resolve(systems, case)
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "refund", "amount": "50.00"}, "note": "partial"})
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    refunds = refunds_of(systems, case["id"])
    assert [r["amount"] for r in refunds] == ["50.00"]
    assert case["resolution"]["refs"]["refund_id"] == refunds[0]["id"]
    too_much = open_case(systems, "SO-10002", "refund", [])
    to_resolve(systems, too_much)
    response = call(systems, "POST", f"/api/v1/cases/{too_much['id']}/resolve", json={
        "resolution": {"type": "refund", "amount": "150.00"}})
    assert response.status_code == 422  # 168.00 paid, 50.00 refunded already
    assert "118.00" in response.json()["detail"]


def test_refund_above_the_limit_waits_for_a_supervisor(systems):
    case = open_case(systems, "SO-10014", "refund", [])
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "refund", "amount": "600.00"}})
    case = wait_for(systems, case["id"], awaiting("approval"))
    assert case["status"] == "waiting_on_approval"
    assert refunds_of(systems, case["id"]) == []
    denied = call(systems, "POST", f"/api/v1/cases/{case['id']}/approve", json={"note": "ok"})
    assert denied.status_code == 403
    approved = call(systems, "POST", f"/api/v1/cases/{case['id']}/approve", who="sue",
                    json={"note": "checked the photos"})
    assert approved.status_code == 200, approved.text
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["600.00"]
    record_history_sync(systems["temporal"], case["id"], "refund")
    assert "approved" in [e["type"] for e in case["timeline"]]


def test_return_is_picked_up_inspected_restocked_and_refunded(systems):
    case = open_case(systems, "SO-10008", "return", [{"sku": "SKU-KETTLE-4", "quantity": 1}])
    assert case["eligibility"]["eligible"], case["eligibility"]
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "return_refund", "items": [{"sku": "SKU-KETTLE-4",
                                                           "quantity": 1}]}})
    case = wait_for(systems, case["id"], awaiting("parcel"))
    number = waybill(case, "return_pickup")
    early = call(systems, "POST", f"/api/v1/cases/{case['id']}/inspect", json={"passed": True})
    assert early.status_code == 409  # nothing has arrived yet
    move(systems, number)  # picked up: the customer's clock pauses while in transit
    case = wait_for(systems, case["id"], lambda c: c["parcels"][number]["status"] == "picked_up")
    resolution_clock = [c for c in case["deadlines"]["clocks"] if c["name"] == "resolution"][-1]
    assert resolution_clock["state"] == "paused"
    assert resolution_clock["paused_reason"] == "parcel_in_transit"
    move(systems, number, 2)  # in transit, delivered to the warehouse
    case = wait_for(systems, case["id"], awaiting("inspection"))
    legal = [c for c in case["deadlines"]["clocks"] if c["name"] == "legal_refund"]
    assert legal and legal[0]["state"] == "running" and legal[0]["target"] == 7 * 86400
    token = case["customer_url"].rsplit("/", 1)[1]
    view = systems["http"].get(f"/api/v1/status/{token}").json()
    assert view["tracking"][0]["waybill"] == number
    assert view["tracking"][0]["status"] == "delivered"
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/inspect",
                    json={"passed": True, "note": "sealed, unused"})
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["149.00"]
    assert [m["kind"] for m in movements_of(systems, case["id"])] == ["restock"]
    legal = [c for c in case["deadlines"]["clocks"] if c["name"] == "legal_refund"]
    assert legal[0]["state"] == "met"
    record_history_sync(systems["temporal"], case["id"], "return")


def test_failed_inspection_sends_the_goods_back_and_reopens_analysis(systems):
    case = open_case(systems, "SO-10008", "return", [{"sku": "SKU-KETTLE-4", "quantity": 1}])
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "return_refund", "items": [{"sku": "SKU-KETTLE-4",
                                                           "quantity": 1}]}})
    case = wait_for(systems, case["id"], awaiting("parcel"))
    move(systems, waybill(case, "return_pickup"), 3)
    wait_for(systems, case["id"], awaiting("inspection"))
    call(systems, "POST", f"/api/v1/cases/{case['id']}/inspect",
         json={"passed": False, "note": "used and scratched"})
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    failure = [e for e in case["timeline"] if e["type"] == "resolution_failed"][-1]
    assert "used and scratched" in failure["detail"]["reason"]
    back = waybill(case, "return_to_customer")
    parcel = httpx.get(f"{systems['courier']}/waybills/{back}", timeout=10).json()
    assert parcel["status"] == "created"  # on its way back, not cancelled by the failure
    assert parcel["recipient"]["name"] == "周敏"
    assert "return_to_customer" in case["resolution"]["refs"]["waybills"]
    assert refunds_of(systems, case["id"]) == []


def test_exchange_ships_the_replacement_and_collects_the_old_item(systems):
    case = open_case(systems, "SO-10014", "exchange", [{"sku": "SKU-SHIRT-77", "quantity": 1}])
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "exchange", "items": [{"sku": "SKU-SHIRT-77", "quantity": 1}]}})
    case = wait_for(systems, case["id"], lambda c: "collect_old" in (
        (c["resolution"] or {}).get("refs", {}).get("waybills", {})))
    move(systems, waybill(case, "ship_replacement"), 3)
    move(systems, waybill(case, "collect_old"), 3)
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    kinds = [m["kind"] for m in movements_of(systems, case["id"])]
    assert kinds.count("reservation") == 1 and kinds.count("restock") == 1
    reservation = next(m for m in movements_of(systems, case["id"])
                       if m["kind"] == "reservation")
    assert reservation["state"] == "shipped"
    record_history_sync(systems["temporal"], case["id"], "exchange")


def test_exchange_out_of_stock_goes_back_to_analyze_with_nothing_left_behind(systems):
    case = open_case(systems, "SO-10012", "exchange", [{"sku": "SKU-SHOES-41", "quantity": 1}])
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "exchange", "items": [{"sku": "SKU-SHOES-41", "quantity": 1}]}})
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    failure = [e for e in case["timeline"] if e["type"] == "resolution_failed"][-1]
    assert "out of stock" in failure["detail"]["reason"]
    assert not (case["resolution"]["refs"].get("waybills"))


def test_exchange_compensates_when_a_later_step_fails(systems):
    # Two lines: the first reserves, the second is out of stock -> the first is released.
    response = httpx.put(f"{systems['inventory']}/_control/stock/SKU-RICE-10",
                         json={"on_hand": 0}, timeout=10)
    assert response.status_code == 200
    items = [{"sku": "SKU-KETTLE-4", "quantity": 1}, {"sku": "SKU-RICE-10", "quantity": 1}]
    case = open_case(systems, "SO-10014", "exchange", items)
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve",
         json={"resolution": {"type": "exchange", "items": items}})
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    reservations = [m for m in movements_of(systems, case["id"]) if m["kind"] == "reservation"]
    assert [(r["sku"], r["state"]) for r in reservations] == [("SKU-KETTLE-4", "released")]
    steps = case["resolution"]["steps"]
    assert {"step": "reserve:SKU-KETTLE-4", "state": "compensated"} in steps


def test_repair_goes_to_the_centre_and_comes_back(systems):
    case = open_case(systems, "SO-10008", "repair", [{"sku": "SKU-KETTLE-4", "quantity": 1}])
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "repair", "items": [{"sku": "SKU-KETTLE-4", "quantity": 1}]}})
    case = wait_for(systems, case["id"], awaiting("parcel"))
    move(systems, waybill(case, "repair_pickup"), 3)
    case = wait_for(systems, case["id"], awaiting("inspection"))
    clock = [c for c in case["deadlines"]["clocks"] if c["name"] == "resolution"][-1]
    assert (clock["state"], clock["paused_reason"]) == ("paused", "waiting_on_supplier")
    call(systems, "POST", f"/api/v1/cases/{case['id']}/inspect",
         json={"passed": True, "note": "heating element replaced"})
    case = wait_for(systems, case["id"], lambda c: "repair_return" in (
        c["resolution"]["refs"].get("waybills", {})))
    move(systems, waybill(case, "repair_return"), 3)
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert refunds_of(systems, case["id"]) == []
    record_history_sync(systems["temporal"], case["id"], "repair")


def test_not_repairable_goes_back_to_analyze(systems):
    case = open_case(systems, "SO-10008", "repair", [{"sku": "SKU-KETTLE-4", "quantity": 1}])
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "repair", "items": [{"sku": "SKU-KETTLE-4", "quantity": 1}]}})
    case = wait_for(systems, case["id"], awaiting("parcel"))
    move(systems, waybill(case, "repair_pickup"), 3)
    wait_for(systems, case["id"], awaiting("inspection"))
    call(systems, "POST", f"/api/v1/cases/{case['id']}/inspect",
         json={"passed": False, "note": "board burnt out"})
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    assert "not repairable" in [e for e in case["timeline"]
                                if e["type"] == "resolution_failed"][-1]["detail"]["reason"]


def test_ineligible_return_is_a_case_but_needs_a_supervisor(systems):
    case = open_case(systems, "SO-10017", "return", [{"sku": "SKU-FRUIT-09", "quantity": 1}])
    assert case["stage"] == "confirm"
    assert not case["eligibility"]["eligible"]
    assert any("fresh" in r for r in case["eligibility"]["reasons"])
    to_resolve(systems, case)
    body = {"resolution": {"type": "return_refund",
                           "items": [{"sku": "SKU-FRUIT-09", "quantity": 1}]}}
    refused = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json=body)
    assert refused.status_code == 422 and "supervisor" in refused.json()["detail"]
    overridden = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", who="sue",
                      json=body)
    assert overridden.status_code == 200, overridden.text
    planned = [e for e in overridden.json()["timeline"] if e["type"] == "resolution_planned"]
    assert planned[-1]["detail"]["eligibility_overridden_by"] == "sue"


def test_duplicate_and_out_of_order_webhooks_count_once(systems):
    case = open_case(systems, "SO-10008", "return", [{"sku": "SKU-KETTLE-4", "quantity": 1}])
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "return_refund", "items": [{"sku": "SKU-KETTLE-4",
                                                           "quantity": 1}]}})
    case = wait_for(systems, case["id"], awaiting("parcel"))
    number = waybill(case, "return_pickup")

    def post(event_id: str, status: str, secret: str = SECRET,
             age: int = 0) -> httpx.Response:
        body = json.dumps({"event_id": event_id, "waybill_no": number,
                           "reference": case["id"], "type": "return_pickup",
                           "status": status, "detail": "",
                           "at": datetime.now(UTC).isoformat()}).encode()
        stamp = str(int(time.time()) - age)
        return systems["http"].post("/webhooks/courier", content=body, headers={
            "Content-Type": "application/json", "X-Courier-Timestamp": stamp,
            "X-Courier-Signature": signature(body, secret, stamp)})

    assert post("e-forged", "delivered", secret="wrong").status_code == 401
    assert post("e-old", "delivered", age=600).status_code == 401  # a replay, too late
    delivered = str(uuid.uuid4())
    assert post(delivered, "delivered").status_code == 202
    assert post(delivered, "delivered").status_code == 202       # duplicate
    assert post(str(uuid.uuid4()), "in_transit").status_code == 202  # late, older status
    case = wait_for(systems, case["id"], awaiting("inspection"))
    parcel_events = [e["detail"]["status"] for e in case["timeline"] if e["type"] == "parcel"]
    assert parcel_events == ["delivered"]
    stamp = str(int(time.time()))
    unknown = systems["http"].post("/webhooks/courier", content=b"{}", headers={
        "X-Courier-Timestamp": stamp, "X-Courier-Signature": signature(b"{}", SECRET, stamp),
        "Content-Type": "application/json"})
    assert unknown.status_code == 422


def test_a_lost_delivery_opens_a_case_and_proposes_a_refund(systems):
    # SO-10010 is still on its way; the courier reports the parcel lost.
    response = httpx.post(f"{systems['courier']}/_control/waybills/SF8000010010/exception",
                          json={"status": "lost", "detail": "not found at the depot"},
                          timeout=10)
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 30
    found: list = []
    while not found:
        assert time.monotonic() < deadline, "no case was opened"
        found = call(systems, "GET", "/api/v1/cases?q=SO-10010").json()["items"]
        time.sleep(0.2)
    case = wait_for(systems, found[0]["id"], lambda c: c["proposal"] is not None)
    assert case["channel"] == "system" and case["kind"] == "complaint"
    assert case["customer"]["id"] == "C-1002" and case["customer"]["name"] == "李娜"
    assert case["proposal"]["type"] == "refund"
    assert [e["detail"]["status"] for e in case["timeline"]
            if e["type"] == "logistics_exception"] == ["lost"]

    # A later exception on an order that already has an open case updates that case.
    order = open_case(systems, "SO-10020", "complaint", [])
    response = httpx.post(f"{systems['courier']}/_control/waybills/SF8000010020/exception",
                          json={"status": "delayed", "detail": "typhoon"}, timeout=10)
    assert response.status_code == 200
    case = wait_for(systems, order["id"], lambda c: c["proposal"] is not None)
    assert case["proposal"]["type"] == "compensation"
    listing = call(systems, "GET", "/api/v1/cases?q=SO-10020").json()
    assert listing["total"] == 1


def test_a_return_parcel_lost_on_the_way_goes_back_to_analyze_unpaid(systems):
    case = open_case(systems, "SO-10014", "return", [{"sku": "SKU-SHIRT-77", "quantity": 1}])
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", json={
        "resolution": {"type": "return_refund", "items": [{"sku": "SKU-SHIRT-77",
                                                           "quantity": 1}]}})
    case = wait_for(systems, case["id"], awaiting("parcel"))
    number = waybill(case, "return_pickup")
    move(systems, number)
    response = httpx.post(f"{systems['courier']}/_control/waybills/{number}/exception",
                          json={"status": "lost", "detail": "van accident"}, timeout=10)
    assert response.status_code == 200
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    failure = [e for e in case["timeline"] if e["type"] == "resolution_failed"][-1]
    assert f"parcel {number} lost" in failure["detail"]["reason"]
    assert refunds_of(systems, case["id"]) == []
    clock = [c for c in case["deadlines"]["clocks"] if c["name"] == "resolution"][-1]
    assert clock["state"] != "paused"  # the clock runs again once the parcel is gone


def test_what_was_returned_cannot_be_returned_again(systems):
    items = [{"sku": "SKU-KETTLE-4", "quantity": 2}]  # SO-10008 has 3 kettles
    first = open_case(systems, "SO-10008", "return", items)
    to_resolve(systems, first)
    call(systems, "POST", f"/api/v1/cases/{first['id']}/resolve", who="sue",
         json={"resolution": {"type": "return_refund", "items": items}})
    first = wait_for(systems, first["id"], awaiting("parcel"))
    move(systems, waybill(first, "return_pickup"), 3)
    wait_for(systems, first["id"], awaiting("inspection"))
    call(systems, "POST", f"/api/v1/cases/{first['id']}/inspect", json={"passed": True})
    wait_for(systems, first["id"], lambda c: c["stage"] == "feedback")
    again = open_case(systems, "SO-10008", "return", items)
    assert not again["eligibility"]["eligible"]
    assert any("not yet returned" in r for r in again["eligibility"]["reasons"])


def test_exchange_failing_after_the_replacement_shipped_ends_in_analyze(systems):
    items = [{"sku": "SKU-KETTLE-4", "quantity": 1}]
    case = open_case(systems, "SO-10014", "exchange", items)
    to_resolve(systems, case)
    call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", who="sue",
         json={"resolution": {"type": "exchange", "items": items}})
    case = wait_for(systems, case["id"], lambda c: "collect_old" in (
        (c["resolution"] or {}).get("refs", {}).get("waybills", {})))
    response = httpx.post(
        f"{systems['courier']}/_control/waybills/{waybill(case, 'ship_replacement')}"
        "/exception", json={"status": "lost", "detail": "fell off the truck"}, timeout=10)
    assert response.status_code == 200
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "analyze")
    failure = [e for e in case["timeline"] if e["type"] == "resolution_failed"][-1]
    assert "lost" in failure["detail"]["reason"]
    reservation = [m for m in movements_of(systems, case["id"]) if m["kind"] == "reservation"]
    assert [r["state"] for r in reservation] == ["shipped"]  # not "released": it was sent
    collect = httpx.get(f"{systems['courier']}/waybills/{waybill(case, 'collect_old')}",
                        timeout=10).json()
    assert collect["status"] == "cancelled"  # nothing to collect for a lost replacement


def test_a_courier_system_that_is_down_shows_on_the_case_and_nothing_is_lost(systems):
    items = [{"sku": "SKU-KETTLE-4", "quantity": 1}]
    case = open_case(systems, "SO-10008", "repair", items)
    to_resolve(systems, case)
    systems["courier_outage"].down = True
    try:
        call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", who="sue",
             json={"resolution": {"type": "repair", "items": items}})
        case = wait_for(systems, case["id"], lambda c: c["waiting_on"] == "courier system",
                        timeout=60)
        assert case["status"] == "waiting_on_system"
        token = case["customer_url"].rsplit("/", 1)[1]
        view = systems["http"].get(f"/api/v1/status/{token}").json()
        assert "courier system" in view["next_step"]
    finally:
        systems["courier_outage"].down = False
    case = wait_for(systems, case["id"], awaiting("parcel"), timeout=90)
    assert case["waiting_on"] is None and case["status"] == "resolving"
    types = [e["type"] for e in case["timeline"]]
    assert types.count("waiting") == 1 and "system_answered" in types
    assert list(case["resolution"]["refs"]["waybills"]) == ["repair_pickup"]


# --- approvals that can say no: deny, and cancel while a refund waits ---------------------


def outbox_to(systems, case_id: str, template: str) -> list[tuple[str, dict]]:
    """(recipient, payload) of the case's outbox rows of `template`, as written."""
    from sqlalchemy import select

    from db.engine import make_engine, make_sessionmaker
    from db.models import OutboxMessage

    engine = make_engine(systems["settings"].database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return [(m.recipient, m.payload) for m in session.scalars(select(OutboxMessage).where(
                OutboxMessage.case_id == case_id, OutboxMessage.template == template))]
    finally:
        engine.dispose()


def refund_awaiting_approval(systems, order_id: str, amount: str, who: str = "hank") -> dict:
    case = open_case(systems, order_id, "refund", [])
    to_resolve(systems, case)
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", who=who,
                    json={"resolution": {"type": "refund", "amount": amount}})
    assert response.status_code == 200, response.text
    return wait_for(systems, case["id"], awaiting("approval"))


def test_a_supervisor_denies_a_refund_and_the_case_goes_back_to_analyze(systems):
    case = refund_awaiting_approval(systems, "SO-10036", "600.00")
    path = f"/api/v1/cases/{case['id']}/deny"
    # A handler may not deny; a deny needs a reason, one of a sane length, and nothing else.
    forbidden = call(systems, "POST", path, json={"reason": "too much"})
    assert forbidden.status_code == 403, forbidden.text
    assert forbidden.headers["Content-Type"] == "application/problem+json"
    for body, status in (({}, 422), ({"reason": ""}, 422), ({"reason": " \n\t "}, 422),
                         ({"reason": "x" * 4001}, 422), ({"reason": 5}, 422),
                         ({"reason": None}, 422), ({"reason": "no", "amount": "0.00"}, 422),
                         ({"reason": "no\x00"}, 422), (["no"], 400)):
        refused = call(systems, "POST", path, who="sue", json=body)
        assert refused.status_code == status, (body, refused.text)
        assert refused.headers["Content-Type"] == "application/problem+json"
    unchanged = call(systems, "GET", f"/api/v1/cases/{case['id']}").json()
    assert unchanged["version"] == case["version"] and awaiting("approval")(unchanged)

    denied = call(systems, "POST", path, who="sue",
                  json={"reason": "the photos show no defect"})
    assert denied.status_code == 200, denied.text
    case = denied.json()
    assert case["stage"] == "analyze" and case["status"] == "open"
    assert case["resolution"]["state"] == "failed"
    assert case["resolution"]["denied_by"] == "sue"
    assert case["resolution"]["awaiting"] is None
    types = [e["type"] for e in case["timeline"]]
    assert types[-2:] == ["denied", "resolution_failed"]
    deny_event = next(e for e in case["timeline"] if e["type"] == "denied")
    assert deny_event["actor"] == "sue"
    assert deny_event["detail"]["reason"] == "the photos show no defect"
    failure = case["timeline"][-1]["detail"]["reason"]
    assert failure == "the refund of 600.00 was denied by sue: the photos show no defect"
    # The handler is told why, on the staff notification path.
    assert outbox_to(systems, case["id"], "resolution_failed") == [
        ("hank", {"case_id": case["id"], "reason": failure})]
    assert refunds_of(systems, case["id"]) == []
    # Nothing waits any more: a second deny or an approve is 409, and nothing is paid.
    for action, body in (("deny", {"reason": "again"}), ("approve", {"note": "late"})):
        late = call(systems, "POST", f"/api/v1/cases/{case['id']}/{action}", who="sue",
                    json=body)
        assert late.status_code == 409, late.text
    # The handler analyses again and settles for less, which is paid at once.
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/analyze", json={
        "root_cause": "product_quality", "responsible_party": "supplier", "note": "again"})
    assert response.status_code == 200, response.text
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve",
                    json={"resolution": {"type": "refund", "amount": "100.00"}})
    assert response.status_code == 200, response.text
    wait_for(systems, case["id"], lambda c: c["stage"] == "feedback")
    assert [r["amount"] for r in refunds_of(systems, case["id"])] == ["100.00"]
    assert [r["idempotency_key"] for r in refunds_of(systems, case["id"])] == [
        f"{case['id']}:2:refund"]


def test_deny_with_nothing_waiting_is_409_and_the_planner_may_deny(systems):
    case = open_case(systems, "SO-10027", "refund", [])
    path = f"/api/v1/cases/{case['id']}/deny"
    early = call(systems, "POST", path, who="sue", json={"reason": "nothing to deny"})
    assert early.status_code == 409, early.text
    assert "not allowed while the case is in stage 'confirm'" in early.json()["detail"]
    to_resolve(systems, case)
    unplanned = call(systems, "POST", path, who="sue", json={"reason": "nothing to deny"})
    assert unplanned.status_code == 409, unplanned.text
    assert "nothing on this case awaits" in unplanned.json()["detail"]
    # Four eyes keeps the planner from approving, not from withdrawing her own refund.
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", who="sue",
                    json={"resolution": {"type": "refund", "amount": "700.00"}})
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], awaiting("approval"))
    own = call(systems, "POST", f"/api/v1/cases/{case['id']}/approve", who="sue",
               json={"note": "mine"})
    assert own.status_code == 403
    denied = call(systems, "POST", f"/api/v1/cases/{case['id']}/deny", who="sue",
                  json={"reason": "I chose the wrong amount"})
    assert denied.status_code == 200, denied.text
    assert denied.json()["stage"] == "analyze"
    assert refunds_of(systems, case["id"]) == []


def test_a_denied_return_releases_the_saga_newest_first_and_pays_nothing(systems):
    items = [{"sku": "SKU-EARB-031", "quantity": 3}]  # 3 x 399.00: above the limit
    case = open_case(systems, "SO-10033", "return", items)
    to_resolve(systems, case)
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", who="sue",
                    json={"resolution": {"type": "return_refund", "items": items}})
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], awaiting("parcel"))
    number = waybill(case, "return_pickup")
    move(systems, number, 3)
    wait_for(systems, case["id"], awaiting("inspection"))
    call(systems, "POST", f"/api/v1/cases/{case['id']}/inspect",
         json={"passed": True, "note": "fine"})
    case = wait_for(systems, case["id"], awaiting("approval"))
    denied = call(systems, "POST", f"/api/v1/cases/{case['id']}/deny", who="sue",
                  json={"reason": "a partial refund fits better"})
    assert denied.status_code == 200, denied.text
    case = denied.json()
    assert case["stage"] == "analyze"
    # The pickup is the saga's one undoable step: compensated (once), after everything
    # it did. The parcel had arrived, so there was no waybill left to cancel.
    steps = case["resolution"]["steps"]
    assert steps[-1] == {"step": "return_pickup", "state": "compensated"}
    assert [s for s in steps if s["state"] == "compensated"] == [steps[-1]]
    parcel = httpx.get(f"{systems['courier']}/waybills/{number}", timeout=10).json()
    assert parcel["status"] == "delivered"
    assert refunds_of(systems, case["id"]) == []


def test_cancel_while_a_refund_awaits_approval_withdraws_it(systems):
    case = refund_awaiting_approval(systems, "SO-10038", "800.00")
    cancelled = call(systems, "POST", f"/api/v1/cases/{case['id']}/cancel",
                     json={"reason": "the customer withdrew the complaint"})
    assert cancelled.status_code == 200, cancelled.text
    case = cancelled.json()
    assert case["stage"] == "cancelled" and case["status"] == "cancelled"
    assert case["resolution"]["state"] == "failed"
    withdrawn = [e for e in case["timeline"] if e["type"] == "resolution_withdrawn"]
    assert [e["detail"]["reason"] for e in withdrawn] == [
        "the case was cancelled while the refund awaited approval; nothing was paid"]
    for who, action in (("sue", "approve"), ("sue", "deny")):
        late = call(systems, "POST", f"/api/v1/cases/{case['id']}/{action}", who=who,
                    json={"note": "late"} if action == "approve" else {"reason": "late"})
        assert late.status_code == 409, late.text
    time.sleep(1)  # a refund would be paid right after an approve: none comes
    assert refunds_of(systems, case["id"]) == []
    assert outbox_to(systems, case["id"], "resolution_failed") == []


def test_cancel_while_the_saga_runs_a_step_stays_refused(systems):
    items = [{"sku": "SKU-KETTLE-4", "quantity": 1}]
    case = open_case(systems, "SO-10008", "repair", items)
    to_resolve(systems, case)
    # A supervisor's resolve: the module's earlier returns have taken the kettles back.
    response = call(systems, "POST", f"/api/v1/cases/{case['id']}/resolve", who="sue",
                    json={"resolution": {"type": "repair", "items": items}})
    assert response.status_code == 200, response.text
    case = wait_for(systems, case["id"], awaiting("parcel"))
    refused = call(systems, "POST", f"/api/v1/cases/{case['id']}/cancel",
                   json={"reason": "changed my mind"})
    assert refused.status_code == 409, refused.text
    assert "while its refund awaits approval" in refused.json()["detail"]
    for action in ("deny", "approve"):
        body = {"reason": "no"} if action == "deny" else {"note": "yes"}
        nothing = call(systems, "POST", f"/api/v1/cases/{case['id']}/{action}", who="sue",
                       json=body)
        assert nothing.status_code == 409, nothing.text
    assert call(systems, "GET", f"/api/v1/cases/{case['id']}").json()["stage"] == "resolve"
