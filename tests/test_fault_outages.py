"""Outages against the real stack: the read model's PostgreSQL database unreachable for
30 s while deadlines fire, actions are sent, a refund is paid and a parcel moves; its
host gone (connections unanswered) for 20 s; and the Temporal server killed and started
again in the middle of resolution sagas. Cases wait and catch up; nothing is lost,
nothing is recorded or paid twice."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest

from aftersales.devstack import free_port
from simulators import courier_system, inventory_system, order_system
from tests.conftest import make_settings, staff_token, start_temporal_on_file
from tests.test_crashes import WorkerProcess, wait_until
from tests.test_resolutions import Served
from web import create_app
from web.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

pytestmark = [pytest.mark.slow, pytest.mark.temporal]
SECRET = "outage-test-secret"
OUTAGE_SECONDS = 30
KETTLE = [{"sku": "SKU-KETTLE-4", "quantity": 1}]
SHIRT = [{"sku": "SKU-SHIRT-77", "quantity": 1}]


class DatabaseLink:
    """A TCP proxy on 127.0.0.1 in front of the PostgreSQL server that the test can cut.
    `cut()`: the open connections are closed and new ones reset at once, as when the
    database server is down. `cut(unreachable=True)`: the open connections are closed
    and new ones get no answer until `restore()`, as when the database host is gone and
    a connection attempt only times out (its packets dropped; they get through once it is
    back). The server itself, shared, is never touched."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._waiting: list[socket.socket] = []
        self._cut = self._unreachable = False
        self.refused = 0
        threading.Thread(target=self._accept, name="db-link", daemon=True).start()

    def cut(self, unreachable: bool = False) -> None:
        with self._lock:
            self._cut, self._unreachable = True, unreachable
            held, self._open = self._open, set()
        for sock in held:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut = False
            waiting, self._waiting = self._waiting, []
        for client in waiting:
            self._connect(client)

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                cut, unreachable = self._cut, self._unreachable
                if cut:
                    self.refused += 1
                    if unreachable:
                        self._waiting.append(client)
            if cut:
                if not unreachable:
                    _reset(client)
                continue
            self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self._upstream, timeout=5)
        except OSError:
            _reset(client)
            return
        server.settimeout(None)
        with self._lock:
            self._open |= {client, server}
        for source, sink in ((client, server), (server, client)):
            threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with self._lock:
                self._open.discard(sock)
            _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes the pipe thread blocked in recv
    except OSError:
        pass
    sock.close()


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


class Gate:
    """WSGI middleware in front of a simulator: a request whose method and path match
    waits at the gate until the test opens it; `arrived` says one is waiting. So a saga
    stands still at a known step, its call in flight, while the test breaks something."""

    def __init__(self, app, method: str, path: str) -> None:
        self.app = app
        self.method = method
        self.path = re.compile(path)
        self.arrived = threading.Event()
        self.opened = threading.Event()

    def __call__(self, environ, start_response):
        if (environ["REQUEST_METHOD"] == self.method
                and self.path.fullmatch(environ["PATH_INFO"])):
            self.arrived.set()
            self.opened.wait(30)
        return self.app(environ, start_response)


def refunds_of(orders_url: str, case_id: str) -> list[dict]:
    return [r for r in httpx.get(f"{orders_url}/refunds", timeout=10).json()
            if r["case_id"] == case_id]


def movements_of(inventory_url: str, case_id: str) -> list[dict]:
    return httpx.get(f"{inventory_url}/movements", params={"reference": case_id},
                     timeout=10).json()


def assert_problem_503(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["Retry-After"]
    assert response.json()["title"] == "Service unavailable"


def assert_timeline_whole(case: dict, version: int) -> list[str]:
    """The case's timeline holds every event the workflow recorded, each once, and the
    row is at the workflow's version: nothing lost, nothing doubled. Its types."""
    seqs = [e["seq"] for e in case["timeline"]]
    assert sorted(seqs) == list(range(1, len(seqs) + 1)), seqs
    assert case["version"] == version, (case["id"], case["version"], version)
    return [e["type"] for e in case["timeline"]]


def test_read_model_database_unreachable_for_30_s(
        temporal_address, postgres_url, tmp_path):
    link = DatabaseLink(("127.0.0.1", 5432))
    proxied = postgres_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{link.port}/")
    assert proxied != postgres_url
    policy = tmp_path / "sla.toml"
    policy.write_text('[targets.default]\nP3 = { confirm = "20s" }\n')
    refund_gate = Gate(order_system.create_app(order_system.OrderSystem(None)), "POST",
                       r"/orders/[^/]+/refunds")
    orders = Served(refund_gate)
    inventory = Served(inventory_system.create_app(inventory_system.InventorySystem(None)))
    courier_state = courier_system.CourierSystem(None, None, SECRET, step=0)
    courier = Served(courier_system.create_app(courier_state))
    settings = make_settings(
        temporal_address, proxied, orders.url, inventory_system_url=inventory.url,
        courier_system_url=courier.url, courier_webhook_secret=SECRET,
        sla_file=str(policy))
    app = create_app(settings)
    web = Served(app)
    courier_state.webhook_url = f"{web.url}/webhooks/courier"
    courier_state.start()
    gateway = app.extensions["aftersales"].gateway
    headers = {"Authorization": f"Bearer {staff_token(app)}"}
    http = httpx.Client(base_url=web.url, timeout=60, headers=headers)
    worker = WorkerProcess(settings, tmp_path / "worker.log")

    def open_case(kind: str, order_id: str, items: list, **extra) -> dict:
        response = http.post("/api/v1/cases", json={
            "kind": kind, "channel": "app", "order_id": order_id, "items": items,
            "customer": {"id": f"C-{order_id}", "name": "周敏"}, "description": "售后",
            **extra})
        assert response.status_code == 201, response.text
        return response.json()

    def act(case: dict, action: str, body: dict, **kwargs) -> httpx.Response:
        return http.post(f"/api/v1/cases/{case['id']}/{action}", json=body, **kwargs)

    def to_return(case: dict, items: list) -> None:
        for action, body in (("confirm", {"note": "ok"}),
                             ("analyze", {"root_cause": "customer_changed_mind",
                                          "responsible_party": "customer", "note": "-"}),
                             ("resolve", {"resolution": {"type": "return_refund",
                                                         "items": items}})):
            response = act(case, action, body)
            assert response.status_code == 200, response.text

    def read(case: dict) -> dict:
        response = http.get(f"/api/v1/cases/{case['id']}")
        assert response.status_code == 200, response.text
        return response.json()

    def awaiting(what: str):
        return lambda c: (c["resolution"] or {}).get("awaiting") == what

    def move(number: str, steps: int) -> None:
        for _ in range(steps):
            response = httpx.post(f"{courier.url}/_control/waybills/{number}/advance",
                                  timeout=10)
            assert response.status_code == 200, response.text

    try:
        # refunded: a return whose refund is being paid when the database goes away.
        refunded = open_case("return", "SO-10008", KETTLE)
        to_return(refunded, KETTLE)
        number = wait_until(lambda: read(refunded), awaiting("parcel"))[
            "resolution"]["refs"]["waybills"]["return_pickup"]
        move(number, 3)
        wait_until(lambda: read(refunded), awaiting("inspection"), what="inspection")
        # parcel: a return whose parcel moves while the database is away.
        parcel = open_case("return", "SO-10014", SHIRT)
        to_return(parcel, SHIRT)
        parcel_no = wait_until(lambda: read(parcel), awaiting("parcel"))[
            "resolution"]["refs"]["waybills"]["return_pickup"]
        # acted: a case a handler confirms while the database is away.
        acted = open_case("complaint", "SO-10005", [], priority="P2")
        # overdue: its 20 s confirm deadline (warnings at 10, 15 and 18 s, level 2 at
        # 30 s) falls due while the database is away.
        overdue = open_case("complaint", "SO-10006", [])
        assert overdue["priority"] == "P3" and not overdue["deadlines"]["overdue"]

        assert act(refunded, "inspect", {"passed": True}).status_code == 200
        assert refund_gate.arrived.wait(20), "the refund was never asked for"
        link.cut()  # while the order system is paying the refund
        cut_at, cut_wall = time.monotonic(), datetime.now(UTC)
        refund_gate.opened.set()

        # What users and systems see while the read model is unreachable.
        health = http.get("/healthz")
        assert health.status_code == 503 and health.headers["Retry-After"]
        assert health.json()["checks"]["database"].startswith("unavailable")
        assert_problem_503(http.get(f"/api/v1/cases/{acted['id']}"))
        key = {"Idempotency-Key": "confirm-during-outage"}
        assert_problem_503(act(acted, "confirm", {"note": "called back"}, headers=key))
        assert_problem_503(http.post("/api/v1/cases", json={
            "kind": "complaint", "channel": "app", "order_id": "SO-10007",
            "customer": {"id": "C-X", "name": "客户"}, "description": "x"}))
        move(parcel_no, 3)  # picked up, in transit, delivered: the webhooks wait
        pending = wait_until(courier_state.pending_events, lambda p: len(p) == 3,
                             what="three webhooks queued")
        body = json.dumps(pending[0], ensure_ascii=False, separators=(",", ":")).encode()
        stamp = str(int(time.time()))
        assert_problem_503(http.post("/webhooks/courier", content=body, headers={
            "Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: signature(body, SECRET, stamp)}))
        # The saga goes on without the read model: the refund is paid, once.
        paid = wait_until(lambda: refunds_of(orders.url, refunded["id"]), bool,
                          timeout=15, what="the refund paid during the outage")
        assert [r["amount"] for r in paid] == ["149.00"]
        assert time.monotonic() - cut_at < OUTAGE_SECONDS - 5
        assert courier_state.pending_events(), "a webhook got through the outage"
        time.sleep(max(0.0, cut_at + OUTAGE_SECONDS - time.monotonic()))  # the outage
        assert link.refused > 0
        link.restore()
        restored_at, restored_wall = time.monotonic(), datetime.now(UTC)

        wait_until(lambda: http.get("/healthz").status_code, lambda s: s == 200,
                   what="healthz 200")
        # Everything that happened meanwhile reaches the read model, once.
        refunded = wait_until(lambda: read(refunded), lambda c: c["stage"] == "feedback",
                              what="the refunded return in feedback")
        parcel = wait_until(lambda: read(parcel), awaiting("inspection"),
                            what="the parcel's events recorded")
        overdue = wait_until(lambda: read(overdue), lambda c: [
            e["detail"].get("level") for e in c["timeline"] if e["type"] == "escalated"
        ] == [1, 2], what="the overdue case escalated twice")
        caught_up_s = time.monotonic() - restored_at
        assert courier_state.pending_events() == []

        def version(case: dict) -> int:
            return gateway.snapshot(case["id"]).version

        def settled(case: dict) -> tuple[dict, int]:
            """The case once its row is at the workflow's version: the workflow may still
            write after what the test waited for (a later mark, a message's outcome)."""
            return wait_until(lambda: (read(case), version(case)),
                              lambda seen: seen[0]["version"] == seen[1],
                              what=f"{case['id']} written at its workflow's version")

        refunded, at = settled(refunded)
        types = assert_timeline_whole(refunded, at)
        assert types.count("inspected") == types.count("resolved") == 1
        assert [r["amount"] for r in refunds_of(orders.url, refunded["id"])] == ["149.00"]
        assert [m["kind"] for m in movements_of(inventory.url, refunded["id"])] == [
            "restock"]
        assert refunded["resolution"]["refs"]["refund_id"] == paid[0]["id"]

        parcel, at = settled(parcel)
        types = assert_timeline_whole(parcel, at)
        assert [e["detail"]["status"] for e in parcel["timeline"] if e["type"] == "parcel"
                ] == ["picked_up", "in_transit", "delivered"]

        overdue, at = settled(overdue)
        types = assert_timeline_whole(overdue, at)
        assert [b["clock"] for b in overdue["deadlines"]["breaches"]] == ["confirm"]
        assert types.count("overdue") == 1
        assert [e["detail"]["share"] for e in overdue["timeline"]
                if e["type"] == "sla_warning"] == [0.5, 0.75, 0.9]
        assert overdue["deadlines"]["overdue"] and overdue["stage"] == "confirm"
        # The first mark fired on time, in the outage; its write waited for the database
        # and the case's later marks were handled once it was back.
        first = datetime.fromisoformat(next(e["at"] for e in overdue["timeline"]
                                            if e["type"] == "sla_warning"))
        assert cut_wall < first < restored_wall, (cut_wall, first, restored_wall)

        # The confirm sent during the outage changed nothing; sent again with the same
        # key, it goes through once.
        acted, at = settled(acted)
        types = assert_timeline_whole(acted, at)
        assert acted["stage"] == "confirm" and "confirmed" not in types
        again = act(acted, "confirm", {"note": "called back"}, headers=key)
        assert again.status_code == 200, again.text
        assert again.json()["stage"] == "analyze"
        assert [e["type"] for e in again.json()["timeline"]].count("confirmed") == 1

        # The parcel's return finishes: its refund is paid once too.
        assert act(parcel, "inspect", {"passed": True}).status_code == 200
        parcel = wait_until(lambda: read(parcel), lambda c: c["stage"] == "feedback",
                            what="the second return in feedback")
        assert [r["amount"] for r in refunds_of(orders.url, parcel["id"])] == ["259.00"]
        # Nothing was opened by the refused POST.
        assert http.get("/api/v1/cases").json()["total"] == 4
        print(f"caught up {caught_up_s:.1f} s after the database came back")
    finally:
        refund_gate.opened.set()
        link.restore()
        worker.stop()
        http.close()
        courier_state.stop()
        for served in (web, courier, inventory, orders):
            served.stop()
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()
        link.close()


def test_temporal_restarted_in_the_middle_of_resolution_sagas(tmp_path):
    port = free_port()
    db_file = tmp_path / "temporal.db"
    temporal = start_temporal_on_file(port, db_file)
    refund_gate = Gate(order_system.create_app(order_system.OrderSystem(None)), "POST",
                       r"/orders/[^/]+/refunds")
    ship_gate = Gate(inventory_system.create_app(inventory_system.InventorySystem(None)),
                     "POST", r"/reservations/[^/]+/ship")
    orders, inventory = Served(refund_gate), Served(ship_gate)
    courier_state = courier_system.CourierSystem(None, None, SECRET, step=0)
    courier = Served(courier_system.create_app(courier_state))
    settings = make_settings(
        f"127.0.0.1:{port}", f"sqlite:///{tmp_path / 'db.sqlite'}", orders.url,
        inventory_system_url=inventory.url, courier_system_url=courier.url,
        courier_webhook_secret=SECRET)
    app = create_app(settings)
    web = Served(app)
    courier_state.webhook_url = f"{web.url}/webhooks/courier"
    courier_state.start()
    headers = {"Authorization": f"Bearer {staff_token(app)}"}
    http = httpx.Client(base_url=web.url, timeout=90, headers=headers)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    answers: dict[str, httpx.Response] = {}

    def open_case(kind: str, order_id: str, items: list) -> dict:
        response = http.post("/api/v1/cases", json={
            "kind": kind, "channel": "app", "order_id": order_id, "items": items,
            "customer": {"id": f"C-{order_id}", "name": "周敏"}, "description": "售后"})
        assert response.status_code == 201, response.text
        return response.json()

    def act(case: dict, action: str, body: dict, **kwargs) -> httpx.Response:
        return http.post(f"/api/v1/cases/{case['id']}/{action}", json=body, **kwargs)

    def to_resolve(case: dict) -> None:
        for action, body in (("confirm", {"note": "ok"}),
                             ("analyze", {"root_cause": "product_quality",
                                          "responsible_party": "supplier", "note": "-"})):
            response = act(case, action, body)
            assert response.status_code == 200, response.text

    def read(case: dict) -> dict:
        response = http.get(f"/api/v1/cases/{case['id']}")
        assert response.status_code == 200, response.text
        return response.json()

    def waybills(case: dict) -> dict:
        return ((case["resolution"] or {}).get("refs") or {}).get("waybills") or {}

    def move(number: str, steps: int) -> None:
        for _ in range(steps):
            response = httpx.post(f"{courier.url}/_control/waybills/{number}/advance",
                                  timeout=10)
            assert response.status_code == 200, response.text

    def in_background(name: str, send) -> threading.Thread:
        thread = threading.Thread(target=lambda: answers.__setitem__(name, send()),
                                  daemon=True)
        thread.start()
        return thread

    try:
        returned = open_case("return", "SO-10008", KETTLE)
        to_resolve(returned)
        assert act(returned, "resolve", {"resolution": {"type": "return_refund",
                                                        "items": KETTLE}}).status_code == 200
        booked = wait_until(lambda: read(returned), lambda c: "return_pickup" in waybills(c),
                            what="the return's pickup")
        move(waybills(booked)["return_pickup"], 3)
        wait_until(lambda: read(returned),
                   lambda c: (c["resolution"] or {}).get("awaiting") == "inspection",
                   what="awaiting inspection")
        exchanged = open_case("exchange", "SO-10014", SHIRT)
        to_resolve(exchanged)
        # The exchange reserves the shirt and books the replacement's waybill, then
        # stands at the gate shipping the reservation; `resolve` is still waiting on it.
        exchange = {"resolution": {"type": "exchange", "items": SHIRT}}
        key = {"Idempotency-Key": "exchange-SO-10014"}
        resolving = in_background("resolve", lambda: act(exchanged, "resolve", exchange,
                                                         headers=key))
        assert ship_gate.arrived.wait(30), "the exchange never shipped its reservation"
        # The return is inspected; its refund stands at the gate.
        assert act(returned, "inspect", {"passed": True}).status_code == 200
        assert refund_gate.arrived.wait(30), "the refund was never asked for"

        temporal.send_signal(signal.SIGKILL)  # both sagas in the middle of a step
        temporal.wait(timeout=30)
        down_at = time.monotonic()
        # While Temporal is away the other systems finish the calls in flight.
        ship_gate.opened.set()
        refund_gate.opened.set()
        paid = wait_until(lambda: refunds_of(orders.url, returned["id"]), bool,
                          what="the refund paid while Temporal is down")
        wait_until(lambda: movements_of(inventory.url, exchanged["id"]),
                   lambda m: [r["state"] for r in m] == ["shipped"],
                   what="the reservation shipped while Temporal is down")
        # What users see meanwhile: the read model answers, actions and /healthz 503.
        assert read(returned)["stage"] == "resolve"
        assert http.get("/healthz").status_code == 503
        noted = act(returned, "note", {"text": "called the customer"})
        assert_problem_503(noted)
        resolving.join(90)
        assert not resolving.is_alive(), "the resolve in flight never answered"
        time.sleep(max(0.0, down_at + 3 - time.monotonic()))  # down for a few seconds
        temporal = start_temporal_on_file(port, db_file)
        restarted_at = time.monotonic()

        # The same worker and web app reconnect by themselves and the sagas go on.
        returned = wait_until(lambda: read(returned), lambda c: c["stage"] == "feedback",
                              timeout=60, what="the return refunded after the restart")
        exchanged = wait_until(lambda: read(exchanged),
                               lambda c: "collect_old" in waybills(c), timeout=60,
                               what="the exchange's pickup booked after the restart")
        move(waybills(exchanged)["ship_replacement"], 3)
        move(waybills(exchanged)["collect_old"], 3)
        exchanged = wait_until(lambda: read(exchanged), lambda c: c["stage"] == "feedback",
                               what="the exchange done after the restart")
        recovered_s = time.monotonic() - restarted_at
        assert worker.proc.poll() is None, "the worker had to be restarted"

        assert [r["amount"] for r in refunds_of(orders.url, returned["id"])] == ["149.00"]
        assert returned["resolution"]["refs"]["refund_id"] == paid[0]["id"]
        assert [m["kind"] for m in movements_of(inventory.url, returned["id"])] == [
            "restock"]
        types = [e["type"] for e in returned["timeline"]]
        assert types.count("inspected") == types.count("resolved") == 1
        assert "note" not in types  # the note refused with a 503 was not taken
        movements = movements_of(inventory.url, exchanged["id"])
        assert [(m["kind"], m.get("state")) for m in movements] == [
            ("reservation", "shipped"), ("restock", None)]
        booked = httpx.get(f"{courier.url}/waybills",
                           params={"reference": exchanged["id"]}, timeout=10).json()
        assert len(booked) == 2, booked  # the replacement's and the pickup's, once each
        types = [e["type"] for e in exchanged["timeline"]]
        assert types.count("resolution_planned") == types.count("resolved") == 1
        stock = httpx.get(f"{inventory.url}/stock/SKU-SHIRT-77", timeout=10).json()
        assert stock["reserved"] == 0, stock
        # The resolve in flight when Temporal died had been taken, but its caller got a
        # 503 (answered while the server was away). Sent again with its key, it gets the
        # answer of the resolve already taken; without the key it is a new request, and
        # refused. The resolution ran once.
        in_flight = answers["resolve"]
        assert_problem_503(in_flight)
        again = act(exchanged, "resolve", exchange, headers=key)
        assert again.status_code == 200, again.text
        assert again.json()["stage"] == "feedback"
        assert act(exchanged, "resolve", exchange).status_code == 409
        assert [e["type"] for e in read(exchanged)["timeline"]].count(
            "resolution_planned") == 1
        print(f"resolve in flight answered {in_flight.status_code} "
              f"({in_flight.json()['detail']}); both sagas done {recovered_s:.1f} s after "
              "the restart")
    finally:
        ship_gate.opened.set()
        refund_gate.opened.set()
        worker.stop()
        http.close()
        courier_state.stop()
        for served in (web, courier, inventory, orders):
            served.stop()
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()
        temporal.terminate()
        temporal.wait(timeout=30)


def test_read_model_database_host_gone_answers_503_without_hanging(
        temporal_address, order_system_url, postgres_url, tmp_path):
    """The database host gone, not refusing: a connection attempt gets no answer at all.
    Requests must still answer 503 in seconds (not hang until the host is back) and the
    cases catch up afterwards."""
    link = DatabaseLink(("127.0.0.1", 5432))
    proxied = postgres_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{link.port}/")
    policy = tmp_path / "sla.toml"
    policy.write_text('[targets.default]\nP3 = { confirm = "8s" }\n')
    settings = make_settings(temporal_address, proxied, order_system_url,
                             sla_file=str(policy))
    app = create_app(settings)
    web = Served(app)
    http = httpx.Client(base_url=web.url, timeout=60,
                        headers={"Authorization": f"Bearer {staff_token(app)}"})
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        case = http.post("/api/v1/cases", json={
            "kind": "complaint", "channel": "phone", "order_id": "SO-10006",
            "customer": {"id": "C-1006", "name": "陈静"}, "description": "漏发"}).json()
        assert case["stage"] == "confirm" and not case["deadlines"]["overdue"]

        link.cut(unreachable=True)
        cut_at = time.monotonic()
        quick = httpx.Timeout(10.0)  # the answer comes in seconds, not when it is back
        try:
            assert_problem_503(http.get(f"/api/v1/cases/{case['id']}", timeout=quick))
            assert_problem_503(http.post(f"/api/v1/cases/{case['id']}/confirm",
                                         json={"note": "called back"}, timeout=quick))
            assert http.get("/healthz", timeout=quick).status_code == 503
        except httpx.TimeoutException:
            raise AssertionError("the web app waited on the unreachable database") from None
        time.sleep(max(0.0, cut_at + 20 - time.monotonic()))  # the confirm deadline fires
        assert link.refused > 0
        link.restore()

        caught_up = wait_until(lambda: http.get(f"/api/v1/cases/{case['id']}").json(),
                               lambda c: c.get("deadlines", {}).get("overdue"),
                               what="the projection catching up")
        types = [e["type"] for e in caught_up["timeline"]]
        assert types.count("overdue") == 1 and "confirmed" not in types
        assert http.get("/healthz").status_code == 200
    finally:
        link.restore()
        worker.stop()
        http.close()
        web.stop()
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()
        link.close()
