"""Issue 19, #5 and #6: request bodies have a size limit checked before they are read,
and the rate limits count per client behind a proxy, in the database every web process
shares. Each test of a defect here failed on the code before its fix."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from activities.signing import webhook_signature
from db.accounts import create_user
from db.models import Case
from tests import test_intake
from tests.conftest import make_settings, staff_token
from tests.test_pages_auth import csrf_token
from web import create_app
from web.problems import Problem

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


# --- 6. rate limits lock everyone out behind a proxy -------------------------------------

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
BALANCER = {"REMOTE_ADDR": "10.0.0.2"}


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def apps(database_url):
    """Apps on one database, like the web processes of instances behind a balancer."""
    made = []

    def make(**extra):
        app = create_app(make_settings("127.0.0.1:9", database_url, "http://127.0.0.1:9",
                                       **extra))
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["aftersales"].engine.dispose()


def guess(client, n: int, environ=None, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.get(f"/api/v1/status/guess-{n}", environ_base=environ or {},
                      headers=headers).status_code


def test_behind_a_trusted_proxy_each_client_is_counted_on_its_own(apps):
    client = apps(trusted_proxies=1).test_client()
    answers = [guess(client, n, BALANCER, "203.0.113.1") for n in range(21)]
    assert answers == [404] * 20 + [429]
    # Another customer behind the same balancer is not affected...
    assert guess(client, 99, BALANCER, "198.51.100.2") == 404
    # ...and the guesser cannot escape by naming another address before its own: the
    # balancer appends the address it saw, the one hop the app trusts.
    assert guess(client, 99, BALANCER, "198.51.100.3, 203.0.113.1") == 429


def test_without_trusted_proxies_x_forwarded_for_is_ignored(apps):
    client = apps().test_client()
    guesser = {"REMOTE_ADDR": "203.0.113.9"}
    answers = [guess(client, n, guesser, f"192.0.2.{n}") for n in range(20)]
    assert answers == [404] * 20
    assert guess(client, 99, guesser, "192.0.2.200") == 429  # a new name changes nothing
    assert guess(client, 99, {"REMOTE_ADDR": "198.51.100.7"}, "203.0.113.9") == 404


def test_two_instances_share_the_count(apps):
    first, second = apps().test_client(), apps().test_client()
    guesser = {"REMOTE_ADDR": "203.0.113.10"}
    assert [guess(first, n, guesser) for n in range(20)] == [404] * 20
    assert guess(second, 99, guesser) == 429
    assert guess(second, 99, {"REMOTE_ADDR": "203.0.113.11"}) == 404


LIMITERS = ["link_limiter", "login_limiter", "login_address_limiter", "request_limiter",
            "order_limiter", "submit_limiter", "code_limiter", "message_limiter"]


def test_every_limiter_counts_in_the_shared_store(apps):
    first, second = (app.extensions["aftersales"] for app in (apps(), apps()))
    names = {getattr(first, name).name for name in LIMITERS}
    assert len(names) == len(LIMITERS)  # each its own count
    for name in LIMITERS:
        limiter = getattr(first, name)
        for _ in range(limiter.limit):
            limiter.miss("key")
        with pytest.raises(Problem) as refused:
            getattr(second, name).check("key")
        assert refused.value.status == 429, name
        assert int(refused.value.headers["Retry-After"]) == limiter.window, name
        assert refused.value.detail == getattr(second, name).message
        getattr(second, name).check("another key")


def test_a_count_ends_with_its_window(apps):
    app = apps()
    clock = Clock(NOW)
    app.extensions["aftersales"].link_limiter.clock = clock
    client = app.test_client()
    guesser = {"REMOTE_ADDR": "203.0.113.12"}
    assert [guess(client, n, guesser) for n in range(20)] == [404] * 20
    clock.at = NOW + timedelta(seconds=599)
    response = client.get("/api/v1/status/guess", environ_base=guesser)
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    clock.at = NOW + timedelta(seconds=600)
    assert [guess(client, n, guesser) for n in range(21)] == [404] * 20 + [429]


def test_ended_counts_are_purged_by_the_scheduler(apps, database_url):
    from aftersales.scheduler import JOBS, Housekeeping
    from db.models import RateCounter

    state = apps().extensions["aftersales"]
    clock = Clock(NOW)
    state.link_limiter.clock = clock
    state.link_limiter.miss("203.0.113.13")  # ends at NOW + 10 min
    clock.at = NOW + timedelta(minutes=5)
    state.link_limiter.miss("203.0.113.14")  # ends at NOW + 15 min
    state.link_limiter.miss("203.0.113.13")  # the first's window still
    jobs = Housekeeping(state.settings, clock=Clock(NOW + timedelta(minutes=10)))
    try:
        assert "rate_counter_purge" in JOBS
        assert jobs.purge_rate_counters() == 1
    finally:
        jobs.close()
    with state.sessions() as db:
        assert db.scalars(select(RateCounter.hits)).all() == [1]


def sign_in(client, name: str, password: str, addr: str) -> int:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": name, "password": password,
                                       "csrf_token": token},
                       environ_base={"REMOTE_ADDR": addr}).status_code


@pytest.fixture
def staff(apps):
    app = apps()
    with app.extensions["aftersales"].sessions.begin() as db:
        create_user(db, "alice", "handler", "alice password")
        create_user(db, "bob", "handler", "bob password")
    return app


def test_wrong_passwords_lock_out_one_account_at_one_address(staff):
    client = staff.test_client()
    answers = [sign_in(client, "alice", "wrong", "192.0.2.10") for _ in range(6)]
    assert answers == [401] * 5 + [429]
    assert sign_in(client, "alice", "alice password", "192.0.2.10") == 429
    # Another account at the same address (colleagues behind one office router)...
    assert sign_in(staff.test_client(), "bob", "bob password", "192.0.2.10") == 302
    # ...and the same account from elsewhere still sign in.
    assert sign_in(staff.test_client(), "alice", "alice password", "192.0.2.11") == 302


def test_a_name_that_does_not_exist_is_braked_alike(staff):
    client = staff.test_client()
    unknown = [sign_in(client, "mallory", "wrong", "192.0.2.20") for _ in range(6)]
    known = [sign_in(client, "alice", "wrong", "192.0.2.21") for _ in range(6)]
    assert unknown == known == [401] * 5 + [429]


def test_one_address_trying_many_accounts_meets_a_looser_cap(staff):
    state = staff.extensions["aftersales"]
    assert state.login_address_limiter.limit == 30 > state.login_limiter.limit
    state.login_address_limiter.limit = 6  # the same brake, quicker to reach
    client = staff.test_client()
    answers = [sign_in(client, f"name{n}", "wrong", "192.0.2.30") for n in range(7)]
    assert answers == [401] * 6 + [429]
    assert sign_in(client, "bob", "bob password", "192.0.2.30") == 429
    assert sign_in(client, "bob", "bob password", "192.0.2.31") == 302


def test_the_new_settings_are_read_from_the_environment():
    from aftersales.settings import Settings

    assert (Settings.from_env({}).max_body, Settings.from_env({}).trusted_proxies) == (MIB, 0)
    settings = Settings.from_env({"AFTERSALES_MAX_BODY": "512KB",
                                  "AFTERSALES_TRUSTED_PROXIES": "2"})
    assert (settings.max_body, settings.trusted_proxies) == (512 * 1024, 2)
    again = Settings.from_env(settings.to_env())
    assert (again.max_body, again.trusted_proxies) == (512 * 1024, 2)
    for bad in ("-1", "one", "1.5"):
        with pytest.raises(ValueError, match="AFTERSALES_TRUSTED_PROXIES"):
            Settings.from_env({"AFTERSALES_TRUSTED_PROXIES": bad})


@pytest.mark.parametrize("url", ["/request/lines", "/s/not-a-token/files"])
def test_a_chunked_upload_nobody_could_send_is_cut_off(app, url):
    """A streamed upload has no length to refuse at once: Werkzeug stops it at the
    request's limit (a form's worth here) as the form is parsed."""
    from web.evidence import FORM_OVERHEAD

    response, taken = send(app.test_client(), url, 4 * MIB, chunked=True,
                           content_type="multipart/form-data; boundary=B")
    assert_too_large(response)
    assert taken <= FORM_OVERHEAD + 64 * 1024


# --- 5, end to end: an upload at its limit, on a real case --------------------------------

stack = test_intake.stack  # the fixture: dev server, worker, app, users alice and sam
walk_in_case = test_intake.walk_in_case
SMALL_FILES = {"max_image": 400 * 1024, "max_video": 400 * 1024}


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: about 3 × side² bytes."""
    import random

    from PIL import Image

    pixels = random.Random(side).randbytes(side * side * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("stack", [SMALL_FILES], indirect=True)
def test_an_upload_under_its_limit_is_kept_and_one_over_it_is_refused_unread(
        stack, walk_in_case):
    from web.evidence import FORM_OVERHEAD

    app, client, tokens, _ = stack
    headers = test_intake.auth(tokens["alice"])
    url = f"/api/v1/cases/{walk_in_case['id']}/attachments"
    limit = 400 * 1024 + FORM_OVERHEAD
    photo = noise_png(360)
    assert 380 * 1024 < len(photo) <= 400 * 1024
    kept = test_intake.raw_upload(client, url, photo, "big.png", headers)
    assert kept.status_code == 201, kept.get_json()
    response, taken = send(client, url, limit + 1, headers=headers,
                           content_type="multipart/form-data; boundary=B")
    assert_too_large(response)
    assert taken == 0
    case = client.get(f"/api/v1/cases/{walk_in_case['id']}", headers=headers).get_json()
    assert [a["filename"] for a in case["attachments"]] == ["big.png"]
    assert len(list(app.extensions["aftersales"].blobs.list())) == 2  # it and its thumbnail
