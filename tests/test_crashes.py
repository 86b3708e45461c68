"""Crashes against the real stack: the worker SIGKILLed in the middle of a saga, and the
Temporal dev server SIGKILLed and restarted on its SQLite file while a deadline is
pending. Nothing is lost, nothing is paid twice, the deadline still fires."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aftersales.devstack import free_port
from simulators import courier_system, inventory_system, order_system
from tests.conftest import make_settings, staff_token, start_temporal_on_file
from tests.test_resolutions import Served
from web import create_app

pytestmark = pytest.mark.slow
SECRET = "crash-test-secret"


class WorkerProcess:
    """`aftersales worker` as a real child process."""

    def __init__(self, settings, log: Path) -> None:
        env = {**os.environ, **settings.to_env()}
        self._log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "aftersales.cli", "worker"],
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        self._log.close()


def wait_until(fetch, predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        try:
            value = fetch()
            if predicate(value):
                return value
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached; last value: {str(value)[:1500]}")


def test_worker_killed_mid_saga_loses_nothing_and_pays_once(
        temporal_address, tmp_path):
    orders = Served(order_system.create_app(order_system.OrderSystem(None)))
    inventory = Served(inventory_system.create_app(inventory_system.InventorySystem(None)))
    courier_state = courier_system.CourierSystem(None, None, SECRET, step=0)
    courier = Served(courier_system.create_app(courier_state))
    settings = make_settings(
        temporal_address, f"sqlite:///{tmp_path / 'db.sqlite'}", orders.url,
        inventory_system_url=inventory.url, courier_system_url=courier.url,
        courier_webhook_secret=SECRET)
    app = create_app(settings)
    web = Served(app)
    courier_state.webhook_url = f"{web.url}/webhooks/courier"
    courier_state.start()
    token = staff_token(app)
    http = httpx.Client(base_url=web.url, timeout=60,
                        headers={"Authorization": f"Bearer {token}"})
    worker = WorkerProcess(settings, tmp_path / "worker-1.log")
    try:
        items = [{"sku": "SKU-KETTLE-4", "quantity": 1}]
        case = http.post("/api/v1/cases", json={
            "kind": "return", "channel": "app", "order_id": "SO-10008",
            "customer": {"id": "C-1008", "name": "杨磊"}, "items": items,
            "description": "七天无理由"}).json()
        for action, body in (("confirm", {"note": "ok"}),
                             ("analyze", {"root_cause": "customer_changed_mind",
                                          "responsible_party": "customer", "note": "-"}),
                             ("resolve", {"resolution": {"type": "return_refund",
                                                         "items": items}})):
            assert http.post(f"/api/v1/cases/{case['id']}/{action}",
                             json=body).status_code == 200
        get = lambda: http.get(f"/api/v1/cases/{case['id']}").json()  # noqa: E731
        case = wait_until(get, lambda c: (c["resolution"] or {}).get("awaiting") == "parcel",
                          what="waiting for the parcel")
        number = case["resolution"]["refs"]["waybills"]["return_pickup"]

        worker.kill()  # SIGKILL in the middle of the saga
        for _ in range(3):  # the parcel arrives while no worker runs: signals wait
            httpx.post(f"{courier.url}/_control/waybills/{number}/advance", timeout=10)
        wait_until(courier_state.pending_events, lambda p: p == [],
                   what="webhooks delivered")
        worker = WorkerProcess(settings, tmp_path / "worker-2.log")
        wait_until(get, lambda c: (c["resolution"] or {}).get("awaiting") == "inspection",
                   what="awaiting inspection after the restart")
        assert http.post(f"/api/v1/cases/{case['id']}/inspect",
                         json={"passed": True}).status_code == 200
        worker.kill()  # and once more, between the inspection and the refund's answer
        worker = WorkerProcess(settings, tmp_path / "worker-3.log")
        case = wait_until(get, lambda c: c["stage"] == "feedback", what="feedback")
        refunds = [r for r in httpx.get(f"{orders.url}/refunds", timeout=10).json()
                   if r["case_id"] == case["id"]]
        assert [r["amount"] for r in refunds] == ["149.00"]
        types = [e["type"] for e in case["timeline"]]
        assert types.count("resolved") == 1 and types.count("inspected") == 1
        assert [e["detail"]["status"] for e in case["timeline"]
                if e["type"] == "parcel"] == ["picked_up", "in_transit", "delivered"]
    finally:
        worker.stop()
        http.close()
        courier_state.stop()
        for served in (web, courier, inventory, orders):
            served.stop()
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()


def test_temporal_killed_and_restarted_keeps_cases_and_their_deadlines(
        tmp_path, order_system_url):
    policy = tmp_path / "sla.toml"
    policy.write_text('[targets.default]\nP3 = { confirm = "20s" }\n')
    port = free_port()
    db_file = tmp_path / "temporal.db"
    temporal = start_temporal_on_file(port, db_file)
    settings = make_settings(f"127.0.0.1:{port}", f"sqlite:///{tmp_path / 'db.sqlite'}",
                             order_system_url, sla_file=str(policy))
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    app = create_app(settings)
    try:
        token = staff_token(app)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        case = client.post("/api/v1/cases", headers=headers, json={
            "kind": "complaint", "channel": "phone", "order_id": "SO-10005",
            "customer": {"id": "C-1005", "name": "刘洋"}, "description": "坏了"}).get_json()
        assert case["stage"] == "confirm" and not case["deadlines"]["overdue"]

        temporal.send_signal(signal.SIGKILL)
        temporal.wait(timeout=30)
        time.sleep(1)
        temporal = start_temporal_on_file(port, db_file)

        get = lambda: client.get(f"/api/v1/cases/{case['id']}",  # noqa: E731
                                 headers=headers).get_json()
        # The 20 s confirm deadline fires although the server died in between.
        overdue = wait_until(get, lambda c: c["deadlines"]["overdue"], timeout=90,
                             what="overdue after the restart")
        assert [b["clock"] for b in overdue["deadlines"]["breaches"]] == ["confirm"]
        response = client.post(f"/api/v1/cases/{case['id']}/confirm", headers=headers,
                               json={"note": "sorry for the wait"})
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["stage"] == "analyze"
    finally:
        worker.stop()
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()
        temporal.terminate()
        temporal.wait(timeout=30)


def test_database_outage_gives_503_and_projections_catch_up(
        temporal_address, order_system_url, postgres_url, tmp_path):
    import psycopg2

    from tests.conftest import PG_ADMIN_URL

    policy = tmp_path / "sla.toml"
    policy.write_text('[targets.default]\nP3 = { confirm = "4s" }\n')
    settings = make_settings(temporal_address, postgres_url, order_system_url,
                             sla_file=str(policy))
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    app = create_app(settings)
    name = postgres_url.rsplit("/", 1)[1]
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True

    def database(allow: bool) -> None:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
            if not allow:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))

    try:
        token = staff_token(app)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        case = client.post("/api/v1/cases", headers=headers, json={
            "kind": "complaint", "channel": "phone", "order_id": "SO-10006",
            "customer": {"id": "C-1006", "name": "陈静"}, "description": "漏发"}).get_json()
        assert not case["deadlines"]["overdue"]

        database(allow=False)
        down = client.get(f"/api/v1/cases/{case['id']}", headers=headers)
        assert down.status_code == 503 and down.headers["Retry-After"]
        assert down.content_type == "application/problem+json"
        assert client.get("/healthz").status_code == 503
        time.sleep(8)  # the confirm deadline fires while the read model is unreachable
        database(allow=True)

        get = lambda: client.get(f"/api/v1/cases/{case['id']}",  # noqa: E731
                                 headers=headers).get_json()
        caught_up = wait_until(get, lambda c: c.get("deadlines", {}).get("overdue"),
                               timeout=60, what="the projection catching up")
        assert "overdue" in [e["type"] for e in caught_up["timeline"]]
        assert client.get("/healthz").status_code == 200
    finally:
        database(allow=True)
        admin.close()
        worker.stop()
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()


def test_two_workers_one_killed_under_load(temporal_address, order_system_url, tmp_path):
    settings = make_settings(temporal_address, f"sqlite:///{tmp_path / 'db.sqlite'}",
                             order_system_url)
    workers = [WorkerProcess(settings, tmp_path / f"worker-{n}.log") for n in range(2)]
    app = create_app(settings)
    try:
        token = staff_token(app)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        ids = []
        for n in range(8):
            case = client.post("/api/v1/cases", headers=headers, json={
                "kind": "complaint", "channel": "web", "order_id": f"SO-{10021 + n}",
                "customer": {"id": f"C-W{n}", "name": "客户"}, "description": "x"}).get_json()
            ids.append(case["id"])
        steps = [("confirm", {"note": "ok"}),
                 ("analyze", {"root_cause": "other", "responsible_party": "merchant",
                              "note": "-"}),
                 ("resolve", {"resolution": {"type": "apology"}})]
        for number, (action, body) in enumerate(steps):
            for case_id in ids:
                response = client.post(f"/api/v1/cases/{case_id}/{action}", headers=headers,
                                       json=body)
                assert response.status_code == 200, response.get_json()
            if number == 0:
                workers[0].kill()  # one worker dies under load; the other carries on
        for case_id in ids:
            case = wait_until(lambda case_id=case_id: client.get(
                f"/api/v1/cases/{case_id}", headers=headers).get_json(),
                lambda c: c["stage"] == "feedback", what=f"{case_id} resolved")
            types = [e["type"] for e in case["timeline"]]
            assert types.count("confirmed") == types.count("analyzed") == 1
            assert types.count("resolved") == 1
    finally:
        for worker in workers:
            worker.stop()
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()
