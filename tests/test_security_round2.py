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
