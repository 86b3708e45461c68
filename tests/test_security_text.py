"""Issue 19, #4 and #14: text that cannot be stored is refused at the door, a projection
write that can never succeed is reported and can be repeated, and an action whose
update timed out is retried with its Idempotency-Key without running twice. Each test
here failed on the code before its fix."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time

import pytest
from click.testing import CliRunner

from db.accounts import create_user
from tests.conftest import BackgroundWorker, make_settings, staff_token
from tests.test_pages import put, signed_in
from web import create_app
from web.gateway import ActionRefused

BAD = {"nul": "\x00", "surrogate": "\ud800", "escape": "\x1b", "bell": "\x07"}


@pytest.fixture
def app(database_url):
    # Nothing here may reach Temporal or the order system: the door answers first.
    app = create_app(make_settings("127.0.0.1:9", database_url, "http://127.0.0.1:9"))
    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "hank", "handler", "hank-password")
    yield app
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()


def bearer(app, name: str = "sue", role: str = "supervisor") -> dict:
    return {"Authorization": f"Bearer {staff_token(app, name, role)}"}


def post(client, url: str, body: dict, headers: dict | None = None):
    """POST a JSON body as a client may write it: a lone surrogate as an escape."""
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       headers=headers)


def refused(response, *fields: str) -> None:
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    errors = response.get_json()["errors"]
    for field in fields:
        assert field in errors, errors
        assert "cannot be stored" in errors[field][0]


CASE = {"kind": "complaint", "channel": "web", "order_id": "SO-1",
        "customer": {"id": "C-1", "name": "张伟", "phone": "13900000003"},
        "description": "水壶漏水", "items": [{"sku": "K-1", "quantity": 1, "reason": "leaks"}]}


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize(("path", "body"), [
    ("description", {**CASE, "description": "水壶{}漏水"}),
    ("customer.name", {**CASE, "customer": {**CASE["customer"], "name": "张{}伟"}}),
    ("items.0.reason", {**CASE, "items": [{"sku": "K-1", "quantity": 1, "reason": "a{}"}]}),
    ("order_id", {**CASE, "order_id": "SO-{}"}),
])
def test_case_create_refuses_unstorable_text_naming_the_field(app, bad, path, body):
    body = json.loads(json.dumps(body).replace("{}", json.dumps(bad)[1:-1]))
    response = post(app.test_client(), "/api/v1/cases", body, bearer(app))
    refused(response, path)


ACTIONS = {
    "confirm": ("note", {"note": "ok{}"}),
    "reject": ("reason", {"reason": "not ours{}"}),
    "analyze": ("note", {"root_cause": "product_quality", "responsible_party": "supplier",
                         "note": "seal{}"}),
    "resolve": ("resolution.coupon_code", {"resolution": {"type": "compensation",
                                                          "coupon_code": "C{}"}}),
    "request-info": ("question", {"question": "photo{}"}),
    "note": ("text", {"text": "called{}"}),
    "reply": ("message", {"message": "on it{}"}),
    "tag": ("add.0", {"add": ["vip{}"]}),
    "assign": ("assignee", {"assignee": "hank{}"}),
}


@pytest.mark.parametrize("bad", [BAD["nul"], BAD["surrogate"]], ids=["nul", "surrogate"])
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_body_refuses_unstorable_text(app, action, bad):
    field, body = ACTIONS[action]
    body = json.loads(json.dumps(body).replace("{}", json.dumps(bad)[1:-1]))
    response = post(app.test_client(), f"/api/v1/cases/AS-X1/{action}", body, bearer(app))
    refused(response, field)


def test_status_link_bodies_and_the_public_request_refuse_unstorable_text(app):
    put(app, "AS-F", stage="feedback")
    client = app.test_client()
    refused(client.post("/api/v1/status/tok-AS-F/feedback",
                        json={"rating": 4, "comment": "ok\x00"}), "comment")
    refused(post(client, "/api/v1/status/tok-AS-F/messages", {"message": "hi\ud800"}),
            "message")
    refused(client.post("/api/v1/requests", json={
        "order_id": "SO-1", "contact": "13900000003", "kind": "return",
        "items": [{"sku": "K-1", "quantity": 1}], "description": "broken\x00"}),
        "description")
    refused(client.post("/api/v1/requests/code", json={"order_id": "SO-1\x00",
                                                       "contact": "139"}), "order_id")


def test_unstorable_text_in_the_url_is_refused_not_a_500(app):
    client = app.test_client()
    headers = bearer(app)
    refused(client.get("/api/v1/cases", query_string={"q": "\x00"}, headers=headers), "q")
    refused(client.get("/api/v1/cases?q=%00", headers=headers), "q")
    refused(client.get("/api/v1/cases/AS-%00", headers=headers), "case_id")
    refused(client.get("/api/v1/status/tok%00"), "token")


def test_an_idempotency_key_with_a_lone_surrogate_body_is_422_not_500(app):
    headers = {**bearer(app), "Idempotency-Key": "k-1"}
    client = app.test_client()
    body = '{"text": "called \\ud800"}'
    first = client.post("/api/v1/cases/AS-X1/note", data=body,
                        content_type="application/json", headers=headers)
    refused(first, "text")
    again = client.post("/api/v1/cases/AS-X1/note", data=body,
                        content_type="application/json", headers=headers)
    refused(again, "text")
    bad_key = client.post("/api/v1/cases/AS-X1/note", json={"text": "x"},
                          headers={**headers, "Idempotency-Key": "k\x01"})
    assert bad_key.status_code == 422 and "Idempotency-Key" in bad_key.get_json()["errors"]


def test_an_unknown_caller_is_refused_before_its_body_is_read(app):
    response = post(app.test_client(), "/api/v1/cases", {**CASE, "description": "\x00"})
    assert response.status_code == 401


def test_a_signed_courier_event_with_a_nul_is_refused(database_url):
    from web.webhooks import signature

    app = create_app(make_settings("127.0.0.1:9", database_url, "http://127.0.0.1:9",
                                   courier_webhook_secret="courier-secret"))
    body = json.dumps({"event_id": "E-1", "waybill_no": "W-1", "reference": "AS-X1",
                       "type": "scan", "status": "in_transit",
                       "at": "2026-12-01T10:00:00Z", "detail": "depot\x00"}).encode()
    stamp = str(int(time.time()))
    response = app.test_client().post(
        "/webhooks/courier", data=body, content_type="application/json",
        headers={"X-Courier-Signature": signature(body, "courier-secret", stamp),
                 "X-Courier-Timestamp": stamp})
    app.extensions["aftersales"].engine.dispose()
    refused(response, "detail")


def test_tab_newline_and_carriage_return_are_ordinary_text(app):
    response = app.test_client().post(
        "/api/v1/users", headers=bearer(app, "ada", "admin"),
        json={"name": "lee", "role": "handler", "display_name": "Ann\tLee"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["display_name"] == "Ann\tLee"
    searched = app.test_client().get("/api/v1/cases", query_string={"q": "a\r\nb"},
                                     headers=bearer(app))
    assert searched.status_code == 200 and searched.get_json()["items"] == []


def page_refusal(response, field: str) -> None:
    html = response.get_data(as_text=True)
    assert response.status_code == 422, html[:500]
    assert response.content_type.startswith("text/html")
    assert f"“{field}” contains a control character" in html


def test_pages_refuse_unstorable_text_with_a_page(app):
    put(app, "AS-X1", stage="confirm")
    put(app, "AS-Q", stage="analyze", pending_question="which one?",
        status="waiting_on_customer")
    desk = signed_in(app, "hank")
    page_refusal(desk.get("/desk?q=%00"), "q")
    page_refusal(desk.post("/desk/cases/AS-X1/note", data={"text": "called\x00"}), "text")
    page_refusal(desk.post("/desk/new", data={
        "kind": "complaint", "channel": "phone", "customer_name": "张\x00伟",
        "customer_phone": "13900000003", "description": "漏水"}), "customer_name")
    customer = app.test_client()
    page_refusal(customer.post("/s/tok-AS-Q/messages", data={"message": "this\x00one"}),
                 "message")
    page_refusal(customer.post("/request", data={"order_id": "SO-1\x00",
                                                 "contact": "139"}), "order_id")


# --- #4 (c): a projection write refused for good is listed, alerted and written again ---

OPEN = {"kind": "complaint", "channel": "web", "order_id": "SO-10003",
        "customer": {"id": "C-1003", "name": "张伟", "phone": "13900000003"},
        "description": "水壶漏水"}


@pytest.fixture
def stack(temporal_address, order_system_url, tmp_path):
    """A worker and the web app on one read model; `start()` once the test has set up
    what the worker should meet."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    settings = make_settings(temporal_address, url, order_system_url)
    app = create_app(settings)
    workers: list[BackgroundWorker] = []

    def start() -> BackgroundWorker:
        worker = BackgroundWorker(settings)
        worker.start()
        workers.append(worker)
        return worker

    yield settings, app, start
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()
    for worker in workers:
        if worker._stop is not None and not worker._loop.is_closed():
            worker.stop()


def test_a_projection_refused_for_good_is_listed_alerted_and_reprojected(
        stack, monkeypatch, caplog):
    from db import cases as case_store

    settings, app, start = stack
    real_apply = case_store.apply_projection
    cause = {"present": True}

    def apply(session, projection, *args, **kwargs):
        if cause["present"]:  # what psycopg2 says of a NUL: the same on every attempt
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        return real_apply(session, projection, *args, **kwargs)

    monkeypatch.setattr(case_store, "apply_projection", apply)
    start()
    client, headers = app.test_client(), bearer(app)
    began = time.monotonic()
    opened = post(client, "/api/v1/cases", OPEN, headers)
    # Not a 503 after the 60 s update timeout while the write is retried for ever.
    assert opened.status_code == 500, opened.get_json()
    assert time.monotonic() - began < 30
    detail = opened.get_json()["detail"]
    case_id = re.search(r"AS-[A-Z0-9]+", detail).group(0)
    assert "read model refused" in detail and "NUL" not in detail  # no internals
    alerts = [r for r in caplog.records if r.levelno == logging.ERROR
              and r.name == "aftersales.projection" and case_id in r.getMessage()]
    assert len(alerts) == 1  # classified at once, not tried again
    assert client.get(f"/api/v1/cases/{case_id}", headers=headers).status_code == 404

    from aftersales import cli
    from aftersales.reconcile import reconcile
    from aftersales.temporal import connect

    async def reconciled():
        return await reconcile(await connect(settings), app.extensions["aftersales"].sessions,
                               app.extensions["aftersales"].links)

    report = asyncio.run(reconciled())
    assert case_id in report.unwritten and "NUL" in report.unwritten[case_id]
    monkeypatch.setattr(cli, "_settings", lambda: settings)
    runner = CliRunner()
    listed = runner.invoke(cli.main, ["cases", "failed"])
    assert listed.exit_code == 0 and case_id in listed.output
    still = runner.invoke(cli.main, ["cases", "reproject", case_id])
    assert still.exit_code != 0 and "not written" in still.output

    cause["present"] = False  # the operator removed the cause
    done = runner.invoke(cli.main, ["cases", "reproject", "--all-failed"])
    assert done.exit_code == 0, done.output
    assert f"{case_id}: written at version" in done.output
    shown = client.get(f"/api/v1/cases/{case_id}", headers=headers)
    assert shown.status_code == 200
    assert [e["type"] for e in shown.get_json()["timeline"]][:2] == ["created", "recorded"]
    assert "no case is waiting" in runner.invoke(cli.main, ["cases", "failed"]).output
    assert asyncio.run(reconciled()).unwritten == {}
    # The case goes on as if nothing had happened.
    confirmed = post(client, f"/api/v1/cases/{case_id}/confirm", {"note": "ok"}, headers)
    assert confirmed.status_code == 200 and confirmed.get_json()["stage"] == "analyze"


@pytest.mark.postgres
def test_a_nul_past_the_door_is_refused_by_postgres_once_not_for_ever(
        temporal_address, order_system_url, postgres_url, caplog):
    settings = make_settings(temporal_address, postgres_url, order_system_url)
    app = create_app(settings)
    worker = BackgroundWorker(settings)
    worker.start()
    try:
        with app.test_request_context():
            from web.intake import case_input
            from workflows.case.contracts import Customer

            inp = case_input(kind="complaint", channel="web", order_id="SO-10003",
                             customer=Customer(id="C-1003", name="张\x00伟", phone="139"),
                             items=[], description="漏水", opened_by="sue")
        began = time.monotonic()
        with pytest.raises(ActionRefused) as refused_write:
            app.extensions["aftersales"].gateway.open_case(inp)
        assert time.monotonic() - began < 30
        assert refused_write.value.kind == "ProjectionRefused"
        from db.projection_failures import failed_cases

        with app.extensions["aftersales"].sessions() as session:
            [row] = failed_cases(session)
        assert row.case_id == inp.case_id and "NUL" in row.error
    finally:
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()
        worker.stop()


# --- #14: an update that timed out is retried with its key and runs once ---------------


def test_a_timed_out_action_retried_with_its_key_runs_once(stack):
    settings, opener, start = stack
    worker = start()
    headers = bearer(opener)
    opened = post(opener.test_client(), "/api/v1/cases", OPEN, headers)
    assert opened.status_code == 201, opened.get_json()
    case_id = opened.get_json()["id"]
    worker.stop()  # the case cannot answer now; the server still takes the update
    app = create_app(settings.with_(update_timeout=3.0))
    client = app.test_client()

    keyed = {**headers, "Idempotency-Key": f"note-{case_id}"}
    note = {"text": "called the customer back"}
    first = post(client, f"/api/v1/cases/{case_id}/note", note, keyed)
    assert first.status_code == 503
    detail = first.get_json()["detail"]
    assert "may still be applied" in detail and "same Idempotency-Key" in detail
    assert "nothing" not in detail

    start()  # the worker is back: the update sent before applies now
    deadline = time.monotonic() + 60
    while True:  # until the worker has taken the case up again
        again = post(client, f"/api/v1/cases/{case_id}/note", note, keyed)
        if again.status_code != 503 or time.monotonic() > deadline:
            break
    assert again.status_code == 200, again.get_json()
    notes = [e for e in again.get_json()["timeline"] if e["type"] == "note"]
    assert len(notes) == 1
    replayed = post(client, f"/api/v1/cases/{case_id}/note", note, keyed)
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.get_json() == again.get_json()
    shown = client.get(f"/api/v1/cases/{case_id}", headers=headers).get_json()
    assert [e["type"] for e in shown["timeline"]].count("note") == 1
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()
