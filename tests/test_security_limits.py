"""Issue 19, #5 and #6: request bodies have a size limit checked before they are read,
and the rate limits count per client behind a proxy, in the database every web process
shares. Each test of a defect here failed on the code before its fix."""

from __future__ import annotations

import io
import json
import time

import pytest
from sqlalchemy import func, select

from activities.signing import webhook_signature
from db.models import Case
from tests.conftest import make_settings, staff_token
from web import create_app

MIB = 2**20


@pytest.fixture
def app(sqlite_url):
    app = create_app(make_settings("127.0.0.1:9", sqlite_url, "http://127.0.0.1:9",
                                   courier_webhook_secret="courier-secret"))
    yield app
    app.extensions["aftersales"].engine.dispose()


class Body(io.BytesIO):
    """A request body that remembers how much of it the app read."""

    taken = 0

    def close(self) -> None:
        if not self.closed:
            self.taken = self.tell()
        super().close()


def send(client, url: str, size: int, chunked: bool = False, headers=None,
         content_type: str = "application/json") -> tuple:
    """POST `size` bytes to `url` with their Content-Length, or chunked (no length: the
    server ends the stream, as gunicorn does); the answer and how much was read."""
    body = Body(b"{" + b" " * (size - 2) + b"}")
    extra = {"headers": {**(headers or {}), "Transfer-Encoding": "chunked"},
             "environ_overrides": {"wsgi.input_terminated": True}} if chunked else {
        "headers": headers or {}}
    response = client.post(url, input_stream=body, content_type=content_type, **extra)
    body.close()
    return response, body.taken


def assert_too_large(response) -> None:
    assert response.status_code == 413, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    assert response.get_json()["status"] == 413


def case_count(app) -> int:
    with app.extensions["aftersales"].sessions() as db:
        return db.scalar(select(func.count()).select_from(Case)) or 0


# --- 5. no request size limit ------------------------------------------------------------


def test_an_oversized_api_body_is_refused_before_it_is_read(app):
    token = staff_token(app)
    client = app.test_client()
    limit = app.extensions["aftersales"].settings.max_body
    assert limit == MIB  # the default
    response, taken = send(client, "/api/v1/cases", limit + 1,
                           headers={"Authorization": f"Bearer {token}"})
    assert_too_large(response)
    assert taken == 0
    assert case_count(app) == 0


def test_a_chunked_api_body_is_cut_off_at_the_limit(app):
    token = staff_token(app)
    limit = app.extensions["aftersales"].settings.max_body
    response, taken = send(app.test_client(), "/api/v1/cases", 8 * MIB, chunked=True,
                           headers={"Authorization": f"Bearer {token}"})
    assert_too_large(response)
    assert taken <= limit + 64 * 1024  # never much more than the limit is read
    assert case_count(app) == 0


def test_a_smaller_limit_is_a_setting(sqlite_url):
    settings = make_settings("127.0.0.1:9", sqlite_url, "http://127.0.0.1:9")
    app = create_app(settings.with_(max_body=1000))
    token = staff_token(app)
    client = app.test_client()
    response, _taken = send(client, "/api/v1/cases", 1001,
                            headers={"Authorization": f"Bearer {token}"})
    assert_too_large(response)
    # At the limit the body is read and judged on what it says.
    response, taken = send(client, "/api/v1/cases", 1000,
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422 and taken == 1000
    app.extensions["aftersales"].engine.dispose()


def signed(body: bytes, stamp: str | None = None) -> dict:
    stamp = stamp or str(int(time.time()))
    return {"X-Courier-Signature": webhook_signature(body, "courier-secret", stamp),
            "X-Courier-Timestamp": stamp}


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversized_webhook_is_refused_without_reading_more_than_the_limit(app, chunked):
    limit = app.extensions["aftersales"].settings.max_body
    size = 4 * MIB
    headers = signed(b"{" + b" " * (size - 2) + b"}")  # even rightly signed
    response, taken = send(app.test_client(), "/webhooks/courier", size, chunked=chunked,
                           headers=headers)
    assert_too_large(response)
    assert taken <= (limit + 64 * 1024 if chunked else 0)


@pytest.mark.parametrize("headers", [
    {},  # no signature at all
    {"X-Courier-Signature": "sha256=abc", "X-Courier-Timestamp": "now"},
    {"X-Courier-Signature": "md5=" + "0" * 32},
    {"X-Courier-Signature": "sha256=" + "0" * 64, "X-Courier-Timestamp": "1000000000"},
])
def test_a_webhook_whose_headers_cannot_be_right_is_refused_before_its_body_is_read(
        app, headers):
    response, taken = send(app.test_client(), "/webhooks/courier", 100_000,
                           headers=headers)
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert taken == 0


def test_a_rightly_signed_webhook_is_still_read(app):
    body = json.dumps({"event_id": "e1", "waybill_no": "W1", "reference": "AS-NOPE",
                       "type": "scan", "status": "in_transit",
                       "at": "2026-12-01T10:00:00+00:00"}).encode()
    response = app.test_client().post("/webhooks/courier", data=body,
                                      content_type="application/json", headers=signed(body))
    assert response.status_code == 202
    assert response.get_json() == {"accepted": False, "reason": "unknown reference"}


@pytest.mark.parametrize("path", ["feedback", "messages", "reply"])
def test_an_oversized_body_to_a_status_endpoint_is_413(app, path):
    limit = app.extensions["aftersales"].settings.max_body
    response, taken = send(app.test_client(), f"/api/v1/status/guess/{path}", limit + 1)
    assert_too_large(response)
    assert taken == 0


@pytest.mark.parametrize("path", ["feedback", "messages", "reply"])
def test_a_status_endpoint_looks_up_the_link_before_the_body(app, path):
    client = app.test_client()
    response, taken = send(client, f"/api/v1/status/guess/{path}", 1000,
                           content_type="text/plain")
    assert response.status_code == 404  # not 400 for a body it never needed to read
    assert taken == 0
    guesser = {"REMOTE_ADDR": "203.0.113.50"}
    for n in range(20):
        client.get(f"/api/v1/status/guess-{n}", environ_base=guesser)
    limited = client.post(f"/api/v1/status/guess/{path}", data=b"not json",
                          content_type="application/json", environ_base=guesser)
    assert limited.status_code == 429 and limited.headers["Retry-After"]


def test_an_upload_just_above_its_limit_is_refused_unread(app):
    """The upload limit: the largest file allowed and the multipart around it."""
    from web.evidence import FORM_OVERHEAD

    settings = app.extensions["aftersales"].settings
    token = staff_token(app)
    limit = max(settings.max_image, settings.max_video) + FORM_OVERHEAD
    url = "/api/v1/cases/AS-NONE/attachments"
    response, taken = send(app.test_client(), url, limit + 1,
                           headers={"Authorization": f"Bearer {token}"},
                           content_type="multipart/form-data; boundary=B")
    assert_too_large(response)
    assert "file" in response.get_json()["errors"]
    assert taken == 0
    assert list(app.extensions["aftersales"].blobs.list()) == []
    # Just under it, the upload is not refused for its size: here the case is unknown.
    response, _ = send(app.test_client(), url, limit,
                       headers={"Authorization": f"Bearer {token}"},
                       content_type="multipart/form-data; boundary=B")
    assert response.status_code == 404
