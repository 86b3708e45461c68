"""The doors a case enters by, and the evidence on it, through Flask's test client
against a real Temporal dev server, a real worker, the order-system simulator over HTTP
and the read model: the customer's `POST /api/v1/requests` (with and without one-time
codes), orderless complaints, and attachments from staff and the customer."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from aftersales.blobs import make_store
from db.accounts import create_token, create_user
from db.engine import make_engine, make_sessionmaker
from db.models import OutboxMessage, RequestCode
from tests.conftest import BackgroundWorker, make_settings, record_history_sync
from tests.test_attachment_files import png_header
from tests.test_blob_store import s3_endpoint  # noqa: F401 (a fixture: moto's S3 server)
from web import create_app
from workflows.case.eligibility import line_options
from workflows.sla import SlaPolicy


@pytest.fixture
def stack(temporal_address, order_system_url, sqlite_url, tmp_path, request):
    extra = dict(getattr(request, "param", {}))
    if extra.get("blob_store") == "s3":
        extra["s3_endpoint"] = request.getfixturevalue("s3_endpoint")
    settings = make_settings(temporal_address, sqlite_url, order_system_url,
                             data_dir=str(tmp_path), **extra)
    worker = BackgroundWorker(settings)
    worker.start()
    app = create_app(settings)
    sessions = make_sessionmaker(make_engine(sqlite_url))
    tokens = {}
    with sessions.begin() as session:
        for name, role in (("alice", "handler"), ("sam", "supervisor")):
            create_user(session, name, role, f"{name}-password")
            tokens[name] = create_token(session, name)
    yield app, app.test_client(), tokens, sessions
    state = app.extensions["aftersales"]
    state.gateway.close()
    state.orders.close()
    state.engine.dispose()
    worker.stop()


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def orders(order_system_url: str) -> list[dict]:
    return httpx.get(f"{order_system_url}/orders", timeout=10).json()


def pick_line(order_system_url: str, allowed: str, refused: str | None = None):
    """(order, line option) of a demo order whose line allows `allowed` now (and, with
    `refused`, is refused that kind for that reason)."""
    from activities.order_system import order_from_json

    policy = SlaPolicy()
    for data in orders(order_system_url):
        order = order_from_json(data)
        for line in line_options(order, datetime.now(UTC), policy):
            if refused is None and allowed in line.kinds:
                return data, line
            if refused is not None and line.refused.get(allowed) == refused:
                return data, line
    # The demo orders are the same for every run (a fixed seed, dates relative to now):
    # each of these lines exists, so missing one means the demo data changed.
    pytest.fail(f"no demo order has a line for {allowed}/{refused}")


def request_body(order: dict, line, kind: str = "complaint", **changes) -> dict:
    body = {"order_id": order["id"], "contact": order["customer"]["phone"], "kind": kind,
            "items": [{"sku": line.sku, "quantity": 1, "reason": "盒子压坏"}],
            "description": "收到的时候盒子压坏了"}
    body.update(changes)
    return body


# ---------------------------------------------------------------- requests


def test_a_customer_request_opens_a_case_once(stack, order_system_url):
    _app, client, tokens, _ = stack
    order, line = pick_line(order_system_url, "return")
    body = request_body(order, line, kind="return",
                        contact=" " + order["customer"]["phone"].replace("1380", "1380 "))
    first = client.post("/api/v1/requests", json=body)
    assert first.status_code == 201, first.get_json()
    created = first.get_json()
    assert created["customer_url"].startswith("http://testserver/s/")
    case = client.get(f"/api/v1/cases/{created['case_id']}", headers=auth(tokens["alice"]))
    case = case.get_json()
    assert case["channel"] == "web" and case["kind"] == "return"
    assert case["stage"] == "confirm"
    assert case["items"] == [{"sku": line.sku, "quantity": 1, "reason": "盒子压坏"}]
    assert case["timeline"][0]["actor"] == "customer"
    again = client.post("/api/v1/requests", json=body)
    assert again.status_code == 200
    assert again.get_json() == created
    # The status link works and the usual notification carries it.
    token = created["customer_url"].rsplit("/", 1)[1]
    assert client.get(f"/api/v1/status/{token}").status_code == 200
    with stack[3]() as session:
        opened = session.scalars(select(OutboxMessage).where(
            OutboxMessage.case_id == created["case_id"],
            OutboxMessage.template == "case_opened")).all()
    assert len(opened) == 1


def test_the_email_on_the_order_proves_it_too(stack, order_system_url):
    _, client, _, _ = stack
    order, line = pick_line(order_system_url, "complaint")
    body = request_body(order, line, contact=order["customer"]["email"].upper())
    assert client.post("/api/v1/requests", json=body).status_code == 201


def test_a_wrong_order_and_a_wrong_contact_look_the_same(stack, order_system_url):
    _, client, _, _ = stack
    order, line = pick_line(order_system_url, "complaint")
    wrong_contact = client.post("/api/v1/requests", json=request_body(
        order, line, contact="13999999999"))
    wrong_order = client.post("/api/v1/requests", json=request_body(
        {**order, "id": "SO-99999"}, line))
    traversal = client.post("/api/v1/requests", json=request_body(
        {**order, "id": "../orders"}, line))
    for response in (wrong_contact, wrong_order, traversal):
        assert response.status_code == 404
        assert response.content_type == "application/problem+json"
    assert wrong_contact.get_json() == wrong_order.get_json() == traversal.get_json()


def test_too_many_misses_are_refused_with_retry_after(stack, order_system_url):
    _, client, _, _ = stack
    order, line = pick_line(order_system_url, "complaint")
    for _ in range(10):
        client.post("/api/v1/requests", json=request_body(order, line, contact="13900000000"))
    # Now even the right contact waits: the order has had its tries.
    response = client.post("/api/v1/requests", json=request_body(order, line))
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert response.content_type == "application/problem+json"


def test_lines_the_order_does_not_allow_are_refused_by_name(stack, order_system_url):
    _, client, tokens, _sessions = stack
    order, line = pick_line(order_system_url, "return")
    cases = client.get("/api/v1/cases", headers=auth(tokens["sam"])).get_json()["total"]
    too_many = client.post("/api/v1/requests", json=request_body(
        order, line, kind="return", items=[{"sku": line.sku, "quantity": line.bought + 1}]))
    assert too_many.status_code == 422
    assert "items.0.quantity" in too_many.get_json()["errors"]
    not_on_order = client.post("/api/v1/requests", json=request_body(
        order, line, items=[{"sku": "SKU-NOPE", "quantity": 1}]))
    assert not_on_order.status_code == 422
    assert "items.0.sku" in not_on_order.get_json()["errors"]
    ineligible_order, ineligible = pick_line(order_system_url, "return", "window_passed")
    late = client.post("/api/v1/requests", json=request_body(
        ineligible_order, ineligible, kind="return"))
    assert late.status_code == 422
    assert ineligible.sku in late.get_json()["errors"]["items.0"][0]
    excluded_order, excluded = pick_line(order_system_url, "return", "excluded")
    fresh = client.post("/api/v1/requests", json=request_body(
        excluded_order, excluded, kind="return"))
    assert fresh.status_code == 422
    assert "without a reason" in fresh.get_json()["errors"]["items.0"][0]
    assert client.get("/api/v1/cases", headers=auth(tokens["sam"])).get_json()["total"] \
        == cases


def test_one_address_opens_a_bounded_number_of_cases(stack, order_system_url):
    app, client, _, _ = stack
    app.extensions["aftersales"].submit_limiter.limit = 2
    order, line = pick_line(order_system_url, "complaint")
    for kind in ("complaint", "repair"):
        body = request_body(order, line, kind=kind)
        assert client.post("/api/v1/requests", json=body).status_code == 201
    third = client.post("/api/v1/requests", json=request_body(order, line, kind="refund"))
    assert third.status_code == 429 and "Retry-After" in third.headers
    # The same request again still answers with its case.
    assert client.post("/api/v1/requests", json=request_body(order, line)).status_code == 200


def test_a_line_already_returned_in_full_is_refused(stack, order_system_url):
    """An earlier case on the order took every unit of the line back."""
    from db import cases as case_store
    from tests.test_read_model import snapshot
    from workflows.case.contracts import CaseItem, Projection, Resolution

    _app, client, _, sessions = stack
    order, line = pick_line(order_system_url, "return")
    done = Resolution(type="return_refund", items=[CaseItem(line.sku, line.bought)],
                      state="done")
    case_store.write_projection(sessions, Projection(snapshot(
        "AS-EARLIER", 1, stage="closed", kind="return", order_id=order["id"],
        status_token="earlier", resolution=done)))
    response = client.post("/api/v1/requests", json=request_body(order, line, kind="return"))
    assert response.status_code == 422
    assert "0 not yet returned" in response.get_json()["errors"]["items.0.quantity"][0]
    # A complaint about it is still heard.
    assert client.post("/api/v1/requests", json=request_body(order, line)).status_code == 201


def test_the_customers_request_runs_through_its_stages_with_its_evidence(stack,
                                                                         order_system_url):
    import time

    _, client, tokens, _ = stack
    headers = auth(tokens["alice"])
    order, line = pick_line(order_system_url, "complaint")
    created = client.post("/api/v1/requests", json=request_body(order, line)).get_json()
    token = created["customer_url"].rsplit("/", 1)[1]
    photo = upload(client, f"/api/v1/status/{token}/attachments", jpeg_with_gps(), "盒子.jpg")
    assert photo.status_code == 201
    case_id = created["case_id"]
    steps = [("assign", {"assignee": "alice"}), ("confirm", {"note": "看到照片了"}),
             ("analyze", {"root_cause": "damaged_in_transit", "responsible_party": "courier",
                          "note": "运输压坏"}),
             ("resolve", {"resolution": {"type": "apology"}})]
    for action, body in steps:
        response = client.post(f"/api/v1/cases/{case_id}/{action}", json=body,
                               headers=headers)
        assert response.status_code == 200, (action, response.get_json())
    deadline = time.monotonic() + 20
    while client.get(f"/api/v1/status/{token}").get_json()["stage"] != "feedback":
        assert time.monotonic() < deadline, "never reached feedback"
        time.sleep(0.2)
    rated = client.post(f"/api/v1/status/{token}/feedback", json={"rating": 5})
    assert rated.status_code == 200
    assert client.post(f"/api/v1/cases/{case_id}/revisit", json={"outcome": "satisfied"},
                       headers=headers).status_code == 200
    case = client.get(f"/api/v1/cases/{case_id}", headers=headers).get_json()
    assert case["stage"] == "closed"
    assert [a["filename"] for a in case["attachments"]] == ["盒子.jpg"]
    assert client.get(case["attachments"][0]["url"], headers=headers).status_code == 200
    # The closed case's link still shows the photo; no new one is taken.
    view = client.get(f"/api/v1/status/{token}").get_json()
    assert view["can_attach"] is False and len(view["attachments"]) == 1
    late = upload(client, f"/api/v1/status/{token}/attachments", jpeg(), "more.jpg")
    assert late.status_code == 409


@pytest.mark.parametrize("body,field", [
    ({"kind": "return", "items": []}, "items"),
    ({"kind": "gift"}, "kind"),
    ({"description": ""}, "description"),
    ({"contact": ""}, "contact"),
    ({"code": "12ab56"}, "code"),
])
def test_malformed_requests_name_the_field(stack, order_system_url, body, field):
    _, client, _, _ = stack
    order, line = pick_line(order_system_url, "complaint")
    response = client.post("/api/v1/requests", json=request_body(order, line, **body))
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


class CapturingSender:
    """An SMS provider that keeps what it was given (AFTERSALES_MESSAGE_SENDER)."""

    sent: ClassVar[list] = []

    def __init__(self, settings=None) -> None:
        pass

    def send(self, message) -> None:
        CapturingSender.sent.append(message)


def last_code(phone: str) -> str:
    message = next(m for m in reversed(CapturingSender.sent) if m.to == phone)
    found = re.search(r"\b(\d{6})\b", message.body)
    assert found, message.body
    return found.group(1)


CODES = {"request_codes": True, "message_sender": "tests.test_intake:CapturingSender"}


@pytest.mark.parametrize("stack", [CODES], indirect=True)
def test_one_time_codes_guard_the_order(stack, order_system_url):
    _, client, _, sessions = stack
    order, line = pick_line(order_system_url, "complaint")
    phone = order["customer"]["phone"]
    body = request_body(order, line)
    without = client.post("/api/v1/requests", json=body)
    assert without.status_code == 422 and "code" in without.get_json()["errors"]
    wrong_contact = client.post("/api/v1/requests/code",
                                json={"order_id": order["id"], "contact": "13911112222"})
    assert wrong_contact.status_code == 404
    sent = client.post("/api/v1/requests/code", json={"order_id": order["id"],
                                                     "contact": phone})
    assert sent.status_code == 202, sent.get_json()
    assert sent.get_json()["sent_to"].endswith(phone[-4:])
    assert "****" in sent.get_json()["sent_to"]
    code = last_code(phone)
    # Another spelling of the same number is the same address: no second code, no fresh
    # tries.
    again = client.post("/api/v1/requests/code",
                        json={"order_id": order["id"], "contact": f"+86 {phone[:3]} {phone[3:]}"})
    assert again.status_code == 429 and "Retry-After" in again.headers
    with sessions() as session:
        message = session.scalars(select(OutboxMessage).where(
            OutboxMessage.template == "request_code")).one()
        assert message.recipient == f"message:{phone}"
        assert message.sent_at is not None  # sent at once, not at the next sweep
        assert "code" not in message.payload  # once sent, only its hash is kept
        assert code not in str(message.payload)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    spellings = [phone, f"+86{phone}", f"{phone[:3]}-{phone[3:7]}-{phone[7:]}", phone]
    for left, contact in zip((4, 3, 2, 1), spellings, strict=True):
        response = client.post("/api/v1/requests", json={**body, "contact": contact,
                                                          "code": wrong})
        assert response.status_code == 422
        assert f"{left} tries left" in response.get_json()["detail"]
    # The fifth wrong try uses the code up: even the right one is refused now.
    assert client.post("/api/v1/requests", json={**body, "code": wrong}).status_code == 429
    assert client.post("/api/v1/requests", json={**body, "code": code}).status_code == 429
    with sessions.begin() as session:  # a new code, a minute later
        row = session.scalars(select(RequestCode)).one()
        row.sent_at -= timedelta(minutes=2)
    resent = client.post("/api/v1/requests/code",
                         json={"order_id": order["id"], "contact": body["contact"]})
    assert resent.status_code == 202, resent.get_json()
    code = last_code(phone)
    with sessions.begin() as session:
        row = session.scalars(select(RequestCode)).one()
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    expired = client.post("/api/v1/requests", json={**body, "code": code})
    assert expired.status_code == 422 and "expired" in expired.get_json()["detail"]
    with sessions.begin() as session:
        session.scalars(select(RequestCode)).one().expires_at = \
            datetime.now(UTC) + timedelta(minutes=5)
    accepted = client.post("/api/v1/requests", json={**body, "code": code})
    assert accepted.status_code == 201, accepted.get_json()
    with sessions() as session:  # used up
        assert session.scalars(select(RequestCode)).first() is None
    replay = client.post("/api/v1/requests", json={**body, "code": code})
    assert replay.status_code == 422  # the same request again needs a new code


@pytest.mark.parametrize("stack", [CODES], indirect=True)
def test_an_order_gets_a_bounded_number_of_codes(stack, order_system_url):
    _, client, _, sessions = stack
    order, _line = pick_line(order_system_url, "complaint")
    lookup = {"order_id": order["id"], "contact": order["customer"]["phone"]}
    for _ in range(5):
        assert client.post("/api/v1/requests/code", json=lookup).status_code == 202
        with sessions.begin() as session:  # as if a minute had passed
            session.scalars(select(RequestCode)).one().sent_at -= timedelta(minutes=2)
    sixth = client.post("/api/v1/requests/code", json=lookup)
    assert sixth.status_code == 429 and "Retry-After" in sixth.headers


@pytest.mark.parametrize("stack", [CODES], indirect=True)
def test_wrong_codes_count_against_the_order(stack, order_system_url):
    app, client, _, _ = stack
    order, line = pick_line(order_system_url, "complaint")
    lookup = {"order_id": order["id"], "contact": order["customer"]["phone"]}
    assert client.post("/api/v1/requests/code", json=lookup).status_code == 202
    code = last_code(order["customer"]["phone"])
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    app.extensions["aftersales"].order_limiter.limit = 3
    for _ in range(3):
        client.post("/api/v1/requests", json={**request_body(order, line), "code": wrong})
    blocked = client.post("/api/v1/requests", json={**request_body(order, line), "code": code})
    assert blocked.status_code == 429


def test_codes_are_not_offered_when_they_are_off(stack, order_system_url):
    _, client, _, _ = stack
    order, _line = pick_line(order_system_url, "complaint")
    response = client.post("/api/v1/requests/code", json={
        "order_id": order["id"], "contact": order["customer"]["phone"]})
    assert response.status_code == 404


# ---------------------------------------------------------------- orderless


WALK_IN = {"kind": "complaint", "channel": "store",
           "customer": {"id": "W-1", "name": "周先生", "phone": "13700000007"},
           "description": "门店店员态度很差"}


def test_a_complaint_without_an_order_is_settled_without_money(stack, temporal_address):
    _, client, tokens, _ = stack
    headers = auth(tokens["alice"])
    created = client.post("/api/v1/cases", json=WALK_IN, headers=headers)
    assert created.status_code == 201, created.get_json()
    case = created.get_json()
    assert case["order_id"] == "" and case["stage"] == "confirm" and case["order"] is None
    case_id = case["id"]
    client.post(f"/api/v1/cases/{case_id}/assign", json={"assignee": "alice"},
                headers=headers)
    assert client.post(f"/api/v1/cases/{case_id}/confirm", json={"note": "核实"},
                       headers=headers).status_code == 200
    assert client.post(f"/api/v1/cases/{case_id}/analyze", json={
        "root_cause": "service_attitude", "responsible_party": "merchant",
        "note": "店员培训"}, headers=headers).status_code == 200
    refund = client.post(f"/api/v1/cases/{case_id}/resolve", json={
        "resolution": {"type": "refund", "amount": "10.00"}}, headers=headers)
    assert refund.status_code == 422
    assert "without an order" in refund.get_json()["detail"]
    partial = client.post(f"/api/v1/cases/{case_id}/resolve", json={
        "resolution": {"type": "compensation", "amount": "10.00"}}, headers=headers)
    assert partial.status_code == 422
    coupon = client.post(f"/api/v1/cases/{case_id}/resolve", json={
        "resolution": {"type": "compensation", "coupon_code": "SORRY20"}}, headers=headers)
    assert coupon.status_code == 200, coupon.get_json()
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        case = client.get(f"/api/v1/cases/{case_id}", headers=headers).get_json()
        if case["stage"] == "feedback":
            break
        time.sleep(0.2)
    assert case["stage"] == "feedback", case["resolution"]
    assert case["resolution"]["refs"]["compensation_id"]
    record_history_sync(temporal_address, case_id, "orderless_coupon")


@pytest.mark.parametrize("changes,field", [
    ({"kind": "return"}, "order_id"),
    ({"customer": {"id": "W-1", "name": "周先生"}}, "customer"),
    ({"items": [{"sku": "SKU-TEA-001", "quantity": 1}]}, "items"),
])
def test_orderless_cases_need_a_complaint_and_a_contact(stack, changes, field):
    _, client, tokens, _ = stack
    response = client.post("/api/v1/cases", json={**WALK_IN, **changes},
                           headers=auth(tokens["alice"]))
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


# ---------------------------------------------------------------- attachments


def jpeg_with_gps(size=(640, 480)) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0xA431] = "SERIAL-123456"  # BodySerialNumber
    exif.get_ifd(0x8825)[2] = (31.0, 14.0, 0.0)  # GPSLatitude
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def raw_upload(client, url: str, data: bytes, name: str, headers=None):
    """A multipart body encoded here, in memory: for large files the test client would
    spool to a temporary file it never closes when the server refuses the body."""
    body = (f'--B\r\nContent-Disposition: form-data; name="file"; filename="{name}"'
            "\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + data + \
        b"\r\n--B--\r\n"
    return client.post(url, data=body, content_type="multipart/form-data; boundary=B",
                       headers=headers or {})


def upload(client, url: str, data: bytes, name: str, headers=None, **form):
    return client.post(url, data={"file": (io.BytesIO(data), name), **form},
                       headers=headers or {}, content_type="multipart/form-data")


@pytest.fixture
def walk_in_case(stack):
    _, client, tokens, _ = stack
    case = client.post("/api/v1/cases", json=WALK_IN, headers=auth(tokens["alice"]))
    return case.get_json()


def test_staff_and_customer_files_keep_their_metadata_only(stack, walk_in_case):
    _app, client, tokens, _ = stack
    headers = auth(tokens["alice"])
    case_id = walk_in_case["id"]
    token = walk_in_case["customer_url"].rsplit("/", 1)[1]
    base = f"/api/v1/cases/{case_id}/attachments"
    staff = upload(client, base, jpeg_with_gps(), "门店.jpg", headers)
    assert staff.status_code == 201, staff.get_json()
    item = staff.get_json()
    assert item["content_type"] == "image/jpeg" and item["filename"] == "门店.jpg"
    assert item["shared"] is False and item["by"] == "alice"
    picture = client.get(item["url"], headers=headers)
    assert picture.status_code == 200
    assert picture.headers["X-Content-Type-Options"] == "nosniff"
    assert "filename*=UTF-8''" in picture.headers["Content-Disposition"]
    stored = Image.open(io.BytesIO(picture.data))
    assert not stored.getexif()
    assert b"SERIAL-123456" not in picture.data and b"Canon" not in picture.data
    thumb = client.get(item["thumbnail_url"], headers=headers)
    assert max(Image.open(io.BytesIO(thumb.data)).size) <= 320
    shared = upload(client, base, _png(), "invoice.png", headers,
                    shared="true")
    assert shared.status_code == 201 and shared.get_json()["shared"] is True
    mine = upload(client, f"/api/v1/status/{token}/attachments", jpeg_with_gps(),
                  "box.jpg")
    assert mine.status_code == 201, mine.get_json()
    assert mine.get_json()["url"].startswith(f"/api/v1/status/{token}/attachments/")
    # The customer sees their own file and the shared one, never staff's others.
    view = client.get(f"/api/v1/status/{token}").get_json()
    assert [a["filename"] for a in view["attachments"]] == ["invoice.png", "box.jpg"]
    assert {a["by"] for a in view["attachments"]} == {"staff", "customer"}
    hidden = client.get(f"/api/v1/status/{token}/attachments/{item['id']}")
    assert hidden.status_code == 404
    assert client.get(mine.get_json()["url"]).status_code == 200
    case = client.get(f"/api/v1/cases/{case_id}", headers=headers).get_json()
    assert [a["id"] for a in case["attachments"]] == [
        item["id"], shared.get_json()["id"], mine.get_json()["id"]]
    assert sum(e["type"] == "attachment_added" for e in case["timeline"]) == 3
    listed = client.get(base, headers=headers).get_json()["items"]
    assert len(listed) == 3
    # Another case's link does not reach this case's files.
    other = client.post("/api/v1/cases", json=WALK_IN, headers=headers).get_json()
    other_token = other["customer_url"].rsplit("/", 1)[1]
    assert client.get(f"/api/v1/status/{other_token}/attachments/"
                      f"{mine.get_json()['id']}").status_code == 404
    # Staff downloads need a token.
    assert client.get(item["url"]).status_code == 401


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 200), (0, 90, 200)).save(out, "PNG")
    return out.getvalue()


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (800, 600), (10, 120, 10)).save(out, "JPEG", quality=95)
    return out.getvalue()


BAD_FILES = [
    (b"MZ\x90\x00" + b"\x00" * 2000, "photo.jpg", 415),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
     "x.png", 415),
    (b"<!doctype html><html><script>alert(1)</script></html>", "page.pdf", 415),
    (png_header(20_000, 20_000), "huge.png", 413),
    (jpeg()[:3000], "half.jpg", 422),
    (jpeg(), "../../etc/passwd.jpg", 422),
    (jpeg(), "tab\t.jpg", 422),
    (jpeg(), "bell\x07.jpg", 422),
    (jpeg(), "evil\u202egpj.exe", 422),
]


@pytest.mark.parametrize("data,name,status", BAD_FILES)
def test_refused_files_change_nothing(stack, walk_in_case, data, name, status):
    app, client, tokens, _ = stack
    headers = auth(tokens["alice"])
    case_id = walk_in_case["id"]
    token = walk_in_case["customer_url"].rsplit("/", 1)[1]
    store = app.extensions["aftersales"].blobs
    for url, h in ((f"/api/v1/cases/{case_id}/attachments", headers),
                   (f"/api/v1/status/{token}/attachments", {})):
        response = upload(client, url, data, name, h)
        assert response.status_code == status, response.get_json()
        assert response.content_type == "application/problem+json"
        assert "file" in response.get_json()["errors"]
    case = client.get(f"/api/v1/cases/{case_id}", headers=headers).get_json()
    assert case["attachments"] == []
    assert not [e for e in case["timeline"] if e["type"] == "attachment_added"]
    assert list(store.list()) == []


def test_the_same_file_sent_twice_is_one_file(stack, walk_in_case):
    _, client, tokens, _ = stack
    headers = auth(tokens["alice"])
    url = f"/api/v1/cases/{walk_in_case['id']}/attachments"
    photo = jpeg_with_gps()
    first = upload(client, url, photo, "a.jpg", headers).get_json()
    second = upload(client, url, photo, "a (1).jpg", headers).get_json()
    assert second["id"] == first["id"]
    case = client.get(f"/api/v1/cases/{walk_in_case['id']}", headers=headers).get_json()
    assert len(case["attachments"]) == 1


def test_a_60_mb_video_is_refused_before_it_is_stored(stack, walk_in_case):
    app, client, tokens, _ = stack
    video = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * (60 * 2**20)
    response = raw_upload(client, f"/api/v1/cases/{walk_in_case['id']}/attachments", video,
                          "unboxing.mp4", auth(tokens["alice"]))
    assert response.status_code == 413
    assert response.content_type == "application/problem+json"
    assert list(app.extensions["aftersales"].blobs.list()) == []


def test_the_21st_file_is_refused(stack, walk_in_case):
    _app, client, tokens, _ = stack
    headers = auth(tokens["alice"])
    url = f"/api/v1/cases/{walk_in_case['id']}/attachments"
    for n in range(20):
        image = io.BytesIO()
        Image.new("RGB", (16, 16), (n * 10, 0, 0)).save(image, "PNG")
        assert upload(client, url, image.getvalue(), f"{n}.png", headers).status_code == 201
    response = upload(client, url, jpeg(), "21.jpg", headers)
    assert response.status_code == 409
    assert response.content_type == "application/problem+json"
    case = client.get(f"/api/v1/cases/{walk_in_case['id']}", headers=headers).get_json()
    assert len(case["attachments"]) == 20


def test_no_files_on_a_cancelled_case_and_erasure_deletes_them(stack, walk_in_case,
                                                                temporal_address):
    app, client, tokens, sessions = stack
    from aftersales.scheduler import forget_blobs
    from db.privacy import erase_customer

    headers = auth(tokens["alice"])
    case_id = walk_in_case["id"]
    token = walk_in_case["customer_url"].rsplit("/", 1)[1]
    sent = upload(client, f"/api/v1/status/{token}/attachments", jpeg_with_gps(), "a.jpg")
    assert sent.status_code == 201
    assert client.post(f"/api/v1/cases/{case_id}/cancel", json={"reason": "重复"},
                       headers=headers).status_code == 200
    late = upload(client, f"/api/v1/status/{token}/attachments", jpeg(), "b.jpg")
    assert late.status_code == 409
    record_history_sync(temporal_address, case_id, "attachments_cancel")
    store = app.extensions["aftersales"].blobs
    sha = sent.get_json()["sha256"]
    assert store.exists(sha)
    freed: set[str] = set()
    with sessions.begin() as session:
        erase_customer(session, "W-1", datetime.now(UTC), freed)
    settings = app.extensions["aftersales"].settings
    assert forget_blobs(settings, sessions, freed) == 2  # the photo and its thumbnail
    assert not store.exists(sha)
    case = client.get(f"/api/v1/cases/{case_id}", headers=headers).get_json()
    assert case["attachments"] == []
    added = [e for e in case["timeline"] if e["type"] == "attachment_added"]
    assert added and all(e["detail"]["filename"] == "(erased)" for e in added)


def test_nobody_unknown_can_make_the_server_read_a_large_body(stack, walk_in_case):
    _, client, _, _ = stack
    big = b"\xff\xd8\xff" + b"\x00" * (200 * 1024)  # over 64 KB, under any spooling
    for url in ("/request/lines", "/s/not-a-token/files",
                f"/desk/cases/{walk_in_case['id']}/files"):
        response = raw_upload(client, url, big, "a.jpg")
        assert response.status_code == 413, url
        assert response.content_type == "application/problem+json"


def test_no_user_may_be_called_customer(stack):
    _, client, _, sessions = stack
    with sessions.begin() as session:
        create_user(session, "root", "admin", "root-pw")
        token = create_token(session, "root")
    for name in ("customer", "System"):
        response = client.post("/api/v1/users", headers=auth(token), json={
            "name": name, "role": "handler", "password": "password1"})
        assert response.status_code == 422, response.get_json()
        assert "name" in response.get_json()["errors"]


def test_the_sweep_keeps_what_cases_reference(stack, walk_in_case):
    app, client, tokens, _ = stack
    from aftersales.scheduler import Housekeeping

    sent = upload(client, f"/api/v1/cases/{walk_in_case['id']}/attachments", jpeg(),
                  "kept.jpg", auth(tokens["alice"]))
    store = app.extensions["aftersales"].blobs
    orphan = store.put(b"%PDF-1.4 orphan upload\n%%EOF", "application/pdf")
    settings = app.extensions["aftersales"].settings
    jobs = Housekeeping(settings, clock=lambda: datetime.now(UTC) + timedelta(days=2))
    try:
        assert jobs.sweep_blobs() == 1
    finally:
        jobs.close()
    assert not store.exists(orphan)
    assert store.exists(sent.get_json()["sha256"])
    assert make_store(settings).exists(sent.get_json()["sha256"])


@pytest.mark.parametrize("stack", [{"blob_store": "s3", "s3_bucket": "evidence"}],
                         indirect=True)
def test_files_live_in_object_storage(stack, walk_in_case):
    """The same journey on a real S3 API (moto's server on 127.0.0.1), not a mock."""
    import boto3

    app, client, tokens, _ = stack
    headers = auth(tokens["alice"])
    sent = upload(client, f"/api/v1/cases/{walk_in_case['id']}/attachments",
                  jpeg_with_gps(), "箱子.jpg", headers)
    assert sent.status_code == 201, sent.get_json()
    item = sent.get_json()
    settings = app.extensions["aftersales"].settings
    s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint, region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="evidence")["Contents"]}
    assert f"blobs/{item['sha256']}" in keys and len(keys) == 2  # the photo, its thumbnail
    picture = client.get(item["url"], headers=headers)
    assert picture.status_code == 200
    assert hashlib.sha256(picture.data).hexdigest() == item["sha256"]
    assert b"SERIAL-123456" not in picture.data


# ---------------------------------------------------------------- a colleague's case


@pytest.mark.parametrize("stack", [{}, {"blob_store": "s3", "s3_bucket": "colleague"}],
                         indirect=True, ids=["file", "s3"])
def test_a_colleagues_case_takes_nothing_from_a_handler(stack, walk_in_case,
                                                        temporal_address):
    """Every write a handler reaches on a colleague's case is refused before anything is
    written: no blob stored (a directory, or S3 on moto's server), no event, no step in
    the case's history (docs/roles.md, "Whose case")."""
    from tests.test_access_lifecycle import csrf_token, sign_in
    from tests.test_api_contract import history_length

    app, client, tokens, sessions = stack
    with sessions.begin() as session:
        create_user(session, "bob", "handler", "bob-password")
    case_id = walk_in_case["id"]
    given = client.post(f"/api/v1/cases/{case_id}/assign", json={"assignee": "bob"},
                        headers=auth(tokens["sam"]))
    assert given.status_code == 200, given.get_json()
    store = app.extensions["aftersales"].blobs
    before = client.get(f"/api/v1/cases/{case_id}", headers=auth(tokens["sam"])).get_json()
    events = history_length(temporal_address, case_id)
    stored = list(store.list())

    # The API: an upload (with and without the customer's share), a note, a reply.
    for form in ({}, {"shared": "true"}):
        refused = upload(client, f"/api/v1/cases/{case_id}/attachments", jpeg_with_gps(),
                         "box.jpg", auth(tokens["alice"]), **form)
        assert refused.status_code == 403, refused.get_json()
        assert refused.content_type == "application/problem+json"
        assert refused.get_json()["title"] == "Not your case"
        assert "assigned to bob" in refused.get_json()["detail"]
    for action, body in (("note", {"text": "mine"}), ("reply", {"message": "hello"}),
                         ("tag", {"add": ["mine"]})):
        answer = client.post(f"/api/v1/cases/{case_id}/{action}", json=body,
                             headers=auth(tokens["alice"]))
        assert answer.status_code == 403 and answer.get_json()["title"] == "Not your case"

    # The desk: the same upload, a note, a reply written from a reply template.
    desk = app.test_client()
    sign_in(desk, "alice")
    page = desk.get(f"/desk/cases/{case_id}?reply=confirm-apology").get_data(as_text=True)
    assert 'id="upload"' not in page and 'id="act-note"' not in page
    token = csrf_token(desk.get("/desk").get_data(as_text=True))
    sent = desk.post(f"/desk/cases/{case_id}/files", content_type="multipart/form-data",
                     data={"csrf_token": token, "file": (io.BytesIO(jpeg()), "desk.jpg"),
                           "shared": "on"})
    assert sent.status_code == 302
    for action, form in (("note", {"text": "mine"}),
                         ("reply", {"message": "很抱歉给您带来不便"})):
        answer = desk.post(f"/desk/cases/{case_id}/{action}",
                           data={"csrf_token": token, **form})
        # The page again with the refusal and what was typed (nothing lost, nothing done).
        assert answer.status_code == 403
        refused_page = answer.get_data(as_text=True)
        assert "not yours or your team" in refused_page
        assert next(iter(form.values())) in refused_page

    assert list(store.list()) == stored == []
    after = client.get(f"/api/v1/cases/{case_id}", headers=auth(tokens["sam"])).get_json()
    assert after == before
    assert history_length(temporal_address, case_id) == events
    # The owner's upload goes through: the refusals were the ownership's, not the file's.
    mine = upload(client, f"/api/v1/cases/{case_id}/attachments", jpeg_with_gps(),
                  "box.jpg", auth(bob_token(sessions)))
    assert mine.status_code == 201, mine.get_json()
    assert len(list(store.list())) == 2  # the photo and its thumbnail


def bob_token(sessions) -> str:
    with sessions.begin() as session:
        return create_token(session, "bob")
