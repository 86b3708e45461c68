"""The second security review's defects (docs/security.md lists which test guards
which defence). Each test here failed on the code before its fix."""

from __future__ import annotations

import csv
import io
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


