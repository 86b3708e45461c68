"""The second security review's defects (docs/security.md lists which test guards
which defence). Each test here failed on the code before its fix."""

from __future__ import annotations

import csv
import io
import logging
import time

import pytest

from tests.conftest import make_settings, staff_token
from web import create_app


@pytest.fixture
def app(database_url):
    app = create_app(make_settings("127.0.0.1:9", database_url, "http://127.0.0.1:9",
                                   courier_webhook_secret="courier-secret"))
    yield app
    app.extensions["aftersales"].engine.dispose()


# --- 10. a non-ASCII webhook signature ----------------------------------------------------


@pytest.mark.parametrize("given", ["sha256=é", "sha256=" + "ü" * 64, "签名"])
def test_a_non_ascii_webhook_signature_is_401_not_500(app, given):
    response = app.test_client().post(
        "/webhooks/courier", data=b"{}", content_type="application/json",
        headers={"X-Courier-Signature": given, "X-Courier-Timestamp": str(int(time.time()))})
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"


# --- 11. CSV formula injection through the report's filters -----------------------------


@pytest.mark.parametrize("handler", ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3",
                                     "@SUM(A1)", "\tcmd", "\rcmd"])
def test_report_csv_cells_never_start_a_formula(app, handler):
    token = staff_token(app, "sue", "supervisor")
    response = app.test_client().get(
        "/api/v1/reports/summary", query_string={"format": "csv", "handler": handler},
        headers={"Authorization": f"Bearer {token}"})
    if response.status_code == 422:  # refused at the door is safe too
        return
    assert response.status_code == 200
    cells = [cell for row in csv.reader(io.StringIO(response.get_data(as_text=True)))
             for cell in row]
    assert handler in {c.lstrip("'") for c in cells} or any(handler in c for c in cells)
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_numbers_in_csv_stay_numbers():
    from web.reports import safe_cell

    assert safe_cell(-3) == -3 and safe_cell(2.5) == 2.5 and safe_cell("=1") == "'=1"




# --- 7. personal data in SQL parameters never reaches an error or a log -------------------


def test_a_failing_statement_does_not_carry_its_parameters(database_url, caplog):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from db.engine import make_engine

    engine = make_engine(database_url)
    try:
        with pytest.raises(DBAPIError) as failed, engine.connect() as conn:
            # (PostgreSQL quotes the statement's first line back: the value is on the
            # second, as SQLAlchemy's own rendering of the parameters is what is tested.)
            conn.execute(text("SELECT phone FROM no_such_table\nWHERE phone = :phone"),
                         {"phone": "13812345678"})
        logging.getLogger("test").error("write failed: %s", failed.value)
        assert "13812345678" not in str(failed.value)
        assert "13812345678" not in caplog.text
    finally:
        engine.dispose()


# --- 12. sign-in timing does not tell known names from unknown ones ------------------------


def test_an_unknown_name_costs_a_password_check_too(database_url, monkeypatch):
    from db import accounts
    from db.engine import make_engine, make_sessionmaker, migrate

    migrate(database_url)
    sessions = make_sessionmaker(make_engine(database_url))
    with sessions.begin() as session:
        accounts.create_user(session, "known", "handler", "right-password")
    checked = []
    real = accounts.check_password_hash
    monkeypatch.setattr(accounts, "check_password_hash",
                        lambda stored, given: checked.append(stored) or real(stored, given))
    with sessions() as session:
        assert accounts.check_password(session, "known", "wrong-password") is None
        assert accounts.check_password(session, "nobody", "wrong-password") is None
    assert len(checked) == 2  # the unknown name was hashed against too
    assert checked[0].split("$")[0] == checked[1].split("$")[0]  # the same method


# --- 16. the demo listings fail loudly on an error answer ---------------------------------


@pytest.mark.parametrize("command", ["orders", "refunds"])
def test_demo_listings_fail_on_an_error_answer(command):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from click.testing import CliRunner

    from aftersales.cli import main

    class Down(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"type":"about:blank","title":"Service Unavailable","status":503}'
            self.send_response(503)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Down)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = CliRunner().invoke(main, ["demo", command, "--json"], env={
            "AFTERSALES_ORDER_SYSTEM_URL": f"http://127.0.0.1:{server.server_address[1]}"})
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code != 0
    assert "503" in result.output and "Service Unavailable" in result.output
    assert not result.output.lstrip().startswith("{")


# --- 1. no web app without a real secret key ------------------------------------------------


@pytest.mark.parametrize("key", ["", "dev-only-secret", "x" * 31, "密" * 10])
def test_the_web_app_refuses_to_start_without_a_long_secret_key(sqlite_url, key):
    settings = make_settings("127.0.0.1:9", sqlite_url, "http://127.0.0.1:9", secret_key=key)
    with pytest.raises(ValueError, match="AFTERSALES_SECRET_KEY"):
        create_app(settings)


def test_a_cookie_signed_with_the_old_fallback_key_opens_nothing(sqlite_url):
    """The review's attack: a session cookie for `admin` signed with the public string
    the app used to fall back to."""
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface

    from db.accounts import create_user

    try:
        app = create_app(make_settings("127.0.0.1:9", sqlite_url, "http://127.0.0.1:9",
                                       secret_key=""))
    except ValueError:
        return  # no app without a key: nothing to forge a cookie for
    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "admin", "admin", "a long admin password")
    forger = Flask("forger")
    forger.secret_key = "dev-only-secret"
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    assert serializer is not None
    forged = serializer.dumps({"user": "admin", "sv": 0})
    client = app.test_client()
    client.set_cookie("session", forged)
    response = client.get("/supervisor")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    app.extensions["aftersales"].engine.dispose()


@pytest.mark.parametrize("env", [{}, {"AFTERSALES_SECRET_KEY": "short"}])
def test_aftersales_web_and_wsgi_stop_with_a_clear_message(tmp_path, env):
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    base.update(env, AFTERSALES_DATA_DIR=str(tmp_path),
                AFTERSALES_DATABASE_URL=f"sqlite:///{tmp_path}/a.db")
    cli = subprocess.run([sys.executable, "-m", "aftersales.cli", "web", "--port", "9"],
                         capture_output=True, text=True, timeout=60, env=base)
    assert cli.returncode != 0
    assert "AFTERSALES_SECRET_KEY" in cli.stderr and "32 bytes" in cli.stderr
    assert "listening" not in cli.stdout
    wsgi = subprocess.run([sys.executable, "-c", "import web.wsgi"], capture_output=True,
                          text=True, timeout=60, env=base)
    assert wsgi.returncode != 0 and "AFTERSALES_SECRET_KEY" in wsgi.stderr


def test_the_dev_stack_makes_a_key_per_data_dir_and_keeps_it(tmp_path):
    from aftersales.devstack import DevStack
    from aftersales.settings import Settings

    stack = DevStack(Settings(data_dir=str(tmp_path)), "127.0.0.1", 5000, 7233, True)
    first = stack._kept_secret("secret_key")
    again = DevStack(Settings(data_dir=str(tmp_path)), "127.0.0.1", 5000, 7233, True)
    assert len(first.encode()) >= 32 and again._kept_secret("secret_key") == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0  # the owner's only


# --- 8. sign-out ends the session on the server ----------------------------------------------


def test_a_replayed_cookie_stops_working_after_sign_out(database_url):
    from tests.test_pages_auth import make_app, sign_in

    app = make_app(database_url)
    try:
        client = app.test_client()
        assert sign_in(client).status_code == 302
        cookie = client.get_cookie("session")
        assert cookie is not None
        copied = cookie.value
        assert client.get("/desk").status_code == 200
        page = client.get("/desk").get_data(as_text=True)
        from tests.test_pages_auth import csrf_token

        assert client.post("/logout", data={"csrf_token": csrf_token(page)}).status_code == 302
        thief = app.test_client()
        thief.set_cookie("session", copied)
        replayed = thief.get("/desk")
        assert replayed.status_code == 302 and "/login" in replayed.headers["Location"]
        # Signing in again works, with a new session.
        assert sign_in(client).status_code == 302
        assert client.get("/desk").status_code == 200
        thief.set_cookie("session", copied)
        assert thief.get("/desk").status_code == 302
    finally:
        app.extensions["aftersales"].engine.dispose()


# --- 13. payload keys: a warning without them, failures sealed with them ---------------------


def test_a_process_without_payload_keys_warns_at_start(caplog):
    from aftersales.settings import Settings
    from aftersales.temporal import warn_without_payload_keys

    with caplog.at_level(logging.WARNING, logger="aftersales.temporal"):
        warn_without_payload_keys(Settings())
    assert "AFTERSALES_PAYLOAD_KEYS is not set" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aftersales.temporal"):
        warn_without_payload_keys(Settings(dev_stack=True))
        warn_without_payload_keys(Settings(payload_keys="k:" + "A" * 44))
    assert caplog.text == ""


def test_the_worker_warns_at_start_without_payload_keys(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERSALES_")}
    env.update(AFTERSALES_DATA_DIR=str(tmp_path), AFTERSALES_TEMPORAL_ADDRESS="127.0.0.1:9",
               AFTERSALES_DATABASE_URL=f"sqlite:///{tmp_path}/a.db")
    out = subprocess.run([sys.executable, "-m", "aftersales.cli", "worker"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode != 0  # nothing answers at 127.0.0.1:9
    assert "AFTERSALES_PAYLOAD_KEYS is not set" in out.stderr


def test_failure_messages_are_sealed_when_keys_are_set():
    import asyncio

    from temporalio.api.failure.v1 import Failure
    from temporalio.exceptions import ApplicationError

    from aftersales.codec import new_key_setting
    from aftersales.settings import Settings
    from aftersales.temporal import data_converter

    converter = data_converter(Settings(payload_keys=new_key_setting("k1")))
    failure = Failure()
    error = ApplicationError("refund refused for 13812345678", type="Refused")
    converter.failure_converter.to_failure(error, converter.payload_converter, failure)
    asyncio.run(converter.payload_codec.encode_failure(failure))  # type: ignore[union-attr]
    assert "13812345678" not in str(failure)
    assert "13812345678" not in failure.SerializeToString().decode("latin-1")
    decoded = Failure()
    decoded.CopyFrom(failure)
    asyncio.run(converter.payload_codec.decode_failure(decoded))  # type: ignore[union-attr]
    back = converter.failure_converter.from_failure(decoded, converter.payload_converter)
    assert "13812345678" in str(back)


# --- 9. status tokens are kept out of stored data --------------------------------------------


def _everything_stored(engine) -> str:
    """Every row of every table of the read model, as text."""
    from sqlalchemy import MetaData, select

    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return "\n".join(str(row) for table in meta.sorted_tables
                         for row in conn.execute(select(table)))


def test_no_status_token_is_stored_in_the_clear(temporal_address, database_url,
                                                order_system_url, tmp_path):
    from aftersales.mailsink import read_mailbox, start_sink
    from db.links import LinkSeal, seal_stored_links
    from tests.conftest import BackgroundWorker
    from tests.test_notifications import smtp_settings, wait_for

    mailbox = tmp_path / "mailbox.jsonl"
    sink = start_sink(mailbox)
    settings = smtp_settings(temporal_address, database_url, order_system_url, sink.port)
    worker = BackgroundWorker(settings)
    worker.start()
    app = create_app(settings)
    try:
        headers = {"Authorization": f"Bearer {staff_token(app)}",
                   "Idempotency-Key": "open-once"}
        body = {"kind": "complaint", "channel": "web", "order_id": "SO-10002",
                "customer": {"id": "C-1002", "name": "李娜", "email": "lina@example.com"},
                "description": "The tea box arrived crushed."}
        client = app.test_client()
        opened = client.post("/api/v1/cases", headers=headers, json=body)
        assert opened.status_code == 201, opened.get_json()
        case = opened.get_json()
        token = case["customer_url"].rsplit("/", 1)[1]
        mails = wait_for(lambda: read_mailbox(mailbox), what="the case-opened email")
        assert case["customer_url"] in mails[0]["body"]  # the customer still gets it
        # The API still shows it, a replay of the same request too.
        again = client.post("/api/v1/cases", headers=headers, json=body)
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.get_json()["customer_url"] == case["customer_url"]
        shown = client.get(f"/api/v1/cases/{case['id']}", headers=headers).get_json()
        assert shown["customer_url"] == case["customer_url"]
        assert client.get(f"/api/v1/status/{token}").status_code == 200
        # ... but a copy of the database does not open the case.
        assert token not in _everything_stored(app.extensions["aftersales"].engine)
        # Sealed under another key, a link is unreadable; rows an older version wrote
        # in the clear are sealed by the next worker's start.
        engine = app.extensions["aftersales"].engine
        sealed = LinkSeal(settings.secret_key)
        from sqlalchemy import update

        from db.models import Case, OutboxMessage
        with app.extensions["aftersales"].sessions.begin() as session:
            session.execute(update(Case).where(Case.id == case["id"]).values(
                data={**shown, "customer_url": case["customer_url"]}))
            session.execute(update(OutboxMessage).where(OutboxMessage.case_id == case["id"])
                            .values(payload={"customer_url": case["customer_url"]}))
        assert token in _everything_stored(engine)
        with app.extensions["aftersales"].sessions.begin() as session:
            assert seal_stored_links(session, sealed) >= 2
        assert token not in _everything_stored(engine)
        assert client.get(f"/api/v1/cases/{case['id']}",
                          headers=headers).get_json()["customer_url"] == case["customer_url"]
        assert LinkSeal("another-secret-key-of-at-least-32-bytes").open(
            "v1.AAAA", case["id"]) == ""
    finally:
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()
        worker.stop()
        sink.stop()


def test_links_sealed_under_an_old_secret_key_are_carried_over(sqlite_url):
    """After the secret key changes, `aftersales privacy seal-links` with the old key
    re-seals the stored links under the new one."""
    import os
    import subprocess
    import sys

    from db import cases as case_store
    from db.engine import make_engine, make_sessionmaker, migrate
    from db.links import LinkSeal, customer_url
    from tests.test_read_model import snapshot
    from workflows.case.contracts import Projection

    old_key, new_key = "o" * 40, "n" * 40
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    snap = snapshot("AS-K1", 1)
    snap.customer_url = "http://testserver/s/secret-token"
    case_store.write_projection(sessions, Projection(snap), LinkSeal(old_key))
    with sessions() as session:
        row = case_store.get_case(session, "AS-K1")
        assert customer_url(row.data, row.id, LinkSeal(new_key)) == ""  # unreadable
    env = {**os.environ, "AFTERSALES_DATABASE_URL": sqlite_url,
           "AFTERSALES_SECRET_KEY": new_key, "AFTERSALES_OLD_SECRET_KEY": old_key}
    out = subprocess.run([sys.executable, "-m", "aftersales.cli", "privacy", "seal-links"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    with sessions() as session:
        row = case_store.get_case(session, "AS-K1")
        assert customer_url(row.data, row.id, LinkSeal(new_key)) == snap.customer_url
        assert "secret-token" not in str(row.data)
    engine.dispose()
