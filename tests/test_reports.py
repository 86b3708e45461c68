"""The supervisor's report over a period, on SQLite and PostgreSQL: every figure of
docs/reports.md checked against cases whose answers are known."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from db import cases as case_store
from db import kpi, reports
from db.models import Case, KpiSnapshot
from db.reports import ReportFilter
from tests.conftest import make_settings, staff_token
from tests.test_read_model import snapshot
from web import create_app
from workflows.case.contracts import Projection, Resolution, StageClock

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


def clock(name: str, state: str, used: float, target: int = 28800) -> StageClock:
    return StageClock(name=name, target=target, used=used, state=state)


def seed(sessions) -> None:
    cases = [
        # A: refunded, rated 5, closed; a repeat case on its order follows within 7 days.
        dict(case_id="AS-RA", created_at=T0, stage="closed", order_id="SO-1",
             team="returns", store="online",
             confirmed_at=T0 + H, resolved_at=T0 + 10 * H, closed_at=T0 + 48 * H, rating=5,
             analysis={"root_cause": "product_quality", "responsible_party": "supplier"},
             resolution=Resolution(type="refund", amount="50.00", state="done"),
             refunded="50.00",
             clocks=[clock("confirm", "met", 3600), clock("resolution", "met", 36000)]),
        # B: points and a coupon worth 20.00, rated 2, reopened once, its confirm clock breached.
        dict(case_id="AS-RB", created_at=T0 + H, stage="revisit", order_id="SO-2",
             team="returns", store="hz-westlake",
             confirmed_at=T0 + 4 * H, resolved_at=T0 + 21 * H, rating=2, reopen_count=1,
             analysis={"root_cause": "product_quality", "responsible_party": "courier"},
             resolution=Resolution(type="compensation", points=300, coupon_code="CPN-20",
                                   amount="20.00", state="done"),
             compensation_points=300,
             clocks=[clock("confirm", "breached", 10800, 7200),
                     clock("resolution", "met", 72000)]),
        # C: the repeat on A's order, open and overdue.
        dict(case_id="AS-RC", created_at=T0 + 12 * H, stage="analyze", order_id="SO-1",
             team="complaints", store="online",
             confirmed_at=T0 + 12.5 * H, overdue=True,
             clocks=[clock("confirm", "met", 1800), clock("analyze", "running", 100)]),
        # D: opened long before the period.
        dict(case_id="AS-RD", created_at=T0 - timedelta(days=40), stage="closed",
             order_id="SO-9", closed_at=T0 - timedelta(days=39), rating=1),
    ]
    for values in cases:
        values.setdefault("updated_at", values["created_at"])
        case_store.write_projection(sessions, Projection(snapshot(version=1, **values)))


@pytest.fixture
def client(database_url):
    app = create_app(make_settings("127.0.0.1:9", database_url, "http://127.0.0.1:9"))
    seed(app.extensions["aftersales"].sessions)
    token = staff_token(app, "sue", "supervisor")
    yield app.test_client(), {"Authorization": f"Bearer {token}"}
    app.extensions["aftersales"].engine.dispose()


PERIOD = "from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z"


def test_summary_figures(client):
    http, headers = client
    response = http.get(f"/api/v1/reports/summary?{PERIOD}", headers=headers)
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert (report["opened"], report["closed"], report["overdue_now"]) == (3, 1, 1)
    assert report["sla_attainment"]["confirm"] == {"met": 2, "breached": 1, "pct": 66.7}
    assert report["sla_attainment"]["resolution"] == {"met": 2, "breached": 0, "pct": 100.0}
    wall = report["first_response"]["wall"]
    assert wall == {"count": 3, "mean_s": 5400.0, "p90_s": 10800.0}
    assert report["first_response"]["working"]["mean_s"] == 5400.0
    assert report["resolution_time"]["wall"] == {"count": 2, "mean_s": 54000.0,
                                                 "p90_s": 72000.0}
    assert report["csat"] == {"ratings": 2, "satisfied_pct": 50.0, "mean_rating": 3.5}
    # A has a repeat case on its order within 7 days; B was reopened: neither is FCR.
    assert report["fcr"] == {"resolved": 2, "first_contact": 0, "pct": 0.0}
    assert report["reopen_rate"] == {"reopened": 1, "pct": 50.0}
    assert report["root_causes"] == [{"root_cause": "product_quality", "count": 2,
                                      "pct": 100.0, "cumulative_pct": 100.0}]
    assert {p["party"]: p["count"] for p in report["responsible_parties"]} == {
        "supplier": 1, "courier": 1}
    assert report["refunds"] == {"count": 1, "amount": "50.00"}
    assert report["compensation"] == {"count": 1, "points": 300, "coupon_value": "20.00"}
    # One remedy each: A's refund and B's points.
    assert report["remedies"] == {"refund": 1, "return_refund": 0, "exchange": 0,
                                  "repair": 0, "compensation": 1, "apology": 0}


def test_each_remedy_counts_once_under_its_type(client):
    http, headers = client
    # E: settled with an apology, a coupon and a refund at once: once under each of the
    # three; F: the same plan, failed and back in analyze: under none.
    combined = Resolution(type="combined", state="done", amount="20.00", remedies=[
        Resolution(type="apology", state="done"),
        Resolution(type="compensation", coupon_code="SORRY-5", state="done"),
        Resolution(type="refund", amount="20.00", state="done")])
    sessions = http.application.extensions["aftersales"].sessions
    for case_id, stage, resolution, resolved_at in (
            ("AS-RE", "feedback", combined, T0 + 30 * H),
            ("AS-RF", "analyze", Resolution(type="combined", state="failed",
                                            remedies=combined.remedies), None)):
        case_store.write_projection(sessions, Projection(snapshot(
            version=1, case_id=case_id, created_at=T0 + 2 * H, updated_at=T0 + 30 * H,
            stage=stage, order_id="SO-5", confirmed_at=T0 + 3 * H, resolved_at=resolved_at,
            resolution=resolution, refunded="20.00" if resolved_at else "0.00")))
    report = http.get(f"/api/v1/reports/summary?{PERIOD}", headers=headers).get_json()
    assert report["remedies"] == {"refund": 2, "return_refund": 0, "exchange": 0,
                                  "repair": 0, "compensation": 2, "apology": 1}
    assert report["compensation"] == {"count": 2, "points": 300, "coupon_value": "20.00"}
    assert report["refunds"] == {"count": 2, "amount": "70.00"}
    rows = dict(csv.reader(io.StringIO(http.get(
        f"/api/v1/reports/summary?{PERIOD}&format=csv", headers=headers
    ).get_data(as_text=True))))
    assert rows["remedies.apology"] == "1" and rows["remedies.refund"] == "2"


def test_filters_and_csv(client):
    http, headers = client
    only_b = http.get(f"/api/v1/reports/summary?{PERIOD}&priority=P3&handler=nobody",
                      headers=headers).get_json()
    assert only_b["opened"] == 0 and only_b["csat"]["satisfied_pct"] is None
    response = http.get(f"/api/v1/reports/summary?{PERIOD}&format=csv", headers=headers)
    assert response.status_code == 200 and response.content_type.startswith("text/csv")
    rows = dict(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows["opened"] == "3" and rows["csat.satisfied_pct"] == "50.0"
    assert rows["root_causes.product_quality.count"] == "2"
    by_accept = http.get(f"/api/v1/reports/summary?{PERIOD}",
                         headers={**headers, "Accept": "text/csv"})
    assert by_accept.content_type.startswith("text/csv")
    bad = http.get("/api/v1/reports/summary?from=2026-12-01&to=2026-11-01", headers=headers)
    assert bad.status_code == 422
    assert http.get("/api/v1/reports/summary?colour=red", headers=headers).status_code == 422


def test_only_supervisors_and_admins(client, database_url):
    http, _ = client
    app = http.application
    handler = staff_token(app, "hank", "handler")
    response = http.get("/api/v1/reports/summary",
                        headers={"Authorization": f"Bearer {handler}"})
    assert response.status_code == 403


def by(rows: list[dict], key: str) -> dict:
    return {row[key]: {k: v for k, v in row.items() if k != key} for row in rows}


def test_by_team_and_by_store(client):
    http, headers = client
    # A case of no team and no store (opened before routing) is a row of its own.
    case_store.write_projection(http.application.extensions["aftersales"].sessions,
                                Projection(snapshot("AS-RE", 1, created_at=T0 + 2 * H,
                                                    updated_at=T0 + 2 * H)))
    report = http.get(f"/api/v1/reports/summary?{PERIOD}", headers=headers).get_json()
    assert by(report["by_team"], "team") == {
        "returns": {"opened": 2, "closed": 1, "overdue_now": 0, "clocks_met": 3,
                    "clocks_breached": 1, "breach_pct": 25.0, "resolved": 2,
                    "resolution_mean_s": 54000.0},
        "complaints": {"opened": 1, "closed": 0, "overdue_now": 1, "clocks_met": 1,
                       "clocks_breached": 0, "breach_pct": 0.0, "resolved": 0,
                       "resolution_mean_s": None},
        None: {"opened": 1, "closed": 0, "overdue_now": 0, "clocks_met": 0,
               "clocks_breached": 0, "breach_pct": None, "resolved": 0,
               "resolution_mean_s": None},
    }
    # Most opened first; the row of no team last among equals.
    assert [row["team"] for row in report["by_team"]] == ["returns", "complaints", None]
    stores = by(report["by_store"], "store")
    assert stores["online"] == {"opened": 2, "closed": 1, "overdue_now": 1,
                                "clocks_met": 3, "clocks_breached": 0, "breach_pct": 0.0,
                                "resolved": 1, "resolution_mean_s": 36000.0}
    assert stores["hz-westlake"]["breach_pct"] == 50.0
    assert stores["hz-westlake"]["resolution_mean_s"] == 72000.0
    assert stores[None]["opened"] == 1


def test_filtered_by_team_or_store(client):
    http, headers = client
    returns = http.get(f"/api/v1/reports/summary?{PERIOD}&team=returns",
                       headers=headers).get_json()
    assert returns["filters"] == {"team": "returns"}
    assert (returns["opened"], returns["closed"], returns["overdue_now"]) == (2, 1, 0)
    assert returns["csat"] == {"ratings": 2, "satisfied_pct": 50.0, "mean_rating": 3.5}
    assert [row["team"] for row in returns["by_team"]] == ["returns"]
    online = http.get(f"/api/v1/reports/summary?{PERIOD}&store=online&team=complaints",
                      headers=headers).get_json()
    assert (online["opened"], online["overdue_now"]) == (1, 1)
    assert by(online["by_store"], "store") .keys() == {"online"}
    for bad in ("team=no%20such!", "team=" + "t" * 41, "store=", "store=" + "s" * 65):
        response = http.get(f"/api/v1/reports/summary?{PERIOD}&{bad}", headers=headers)
        assert response.status_code == 422, bad
        assert response.content_type == "application/problem+json"
        assert bad.split("=")[0] in response.get_json()["errors"]


def test_the_csv_has_the_team_and_store_tables_and_neutralises_their_names(client):
    http, headers = client
    sessions = http.application.extensions["aftersales"].sessions
    case_store.write_projection(sessions, Projection(snapshot(
        "AS-RF", 1, created_at=T0 + 3 * H, updated_at=T0 + 3 * H,
        store='=HYPERLINK("http://evil.example")')))
    response = http.get(f"/api/v1/reports/summary?{PERIOD}&format=csv", headers=headers)
    rows = dict(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows["by_team.returns.opened"] == "2"
    assert rows["by_team.returns.breach_pct"] == "25.0"
    assert rows["by_team.(none).opened"] == "1"
    assert rows["by_store.hz-westlake.resolution_mean_s"] == "72000.0"
    assert rows['by_store.=HYPERLINK("http://evil.example").opened'] == "1"
    # A filter a spreadsheet would read as a formula comes back as text.
    filtered = http.get(f"/api/v1/reports/summary?{PERIOD}&format=csv&store=@SUM(A1)",
                        headers=headers)
    rows = dict(csv.reader(io.StringIO(filtered.get_data(as_text=True))))
    assert rows["filters.store"] == "'@SUM(A1)"
    assert all(not key.startswith(("=", "+", "-", "@")) for key in rows)


def test_the_reports_page_filters_and_groups_by_team_and_store(client):
    http, _ = client
    app = http.application
    from db.accounts import create_user

    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "sal", "supervisor", "sal-password")
    page = http.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    http.post("/login", data={"username": "sal", "password": "sal-password",
                              "csrf_token": csrf})
    html = http.get("/supervisor/reports?period=365").get_data(as_text=True)
    by_team = html[html.index('id="by-team-h"'):html.index('id="by-store-h"')]
    assert re.search(r"<th scope=\"row\">returns</th><td>2</td><td>1</td><td>0</td>"
                     r"<td>25.0 %</td>", by_team)
    assert "<th scope=\"row\">complaints</th><td>1</td>" in by_team
    by_store = html[html.index('id="by-store-h"'):]
    assert "<th scope=\"row\">hz-westlake</th><td>1</td><td>0</td><td>0</td>" \
        "<td>50.0 %</td>" in by_store
    html = http.get("/supervisor/reports?period=365&team=returns&store=online"
                    ).get_data(as_text=True)
    assert '<option value="returns" selected>' in html
    assert 'name="store" maxlength="64" value="online"' in html
    assert re.search(r"<th scope=\"row\">returns</th><td>1</td>", html)
    link = re.search(r'<a href="(/supervisor/reports.csv[^"]*)">', html).group(1)
    link = link.replace("&amp;", "&")
    assert "team=returns" in link and "store=online" in link
    rows = dict(csv.reader(io.StringIO(http.get(link).get_data(as_text=True))))
    assert rows["opened"] == "1" and rows["filters.team"] == "returns"


# The night after the seeded days: the scheduler's snapshots cover up to 13 November.
NIGHT = datetime(2026, 11, 14, 1, 0, tzinfo=UTC)


def days(first: datetime, last: datetime) -> set[datetime]:
    return {first + timedelta(days=n) for n in range((last - first).days + 1)}


def agreeing(sessions, f: ReportFilter, now: datetime) -> dict:
    """The report from the snapshots plus the live rest, checked against a live count."""
    with sessions() as session:
        fast = reports.summary(session, f, now)
        live = reports.live_summary(session, f)
    assert fast == live
    return fast


def test_snapshots_plus_the_live_rest_equal_a_live_count(database_url):
    app = create_app(make_settings("127.0.0.1:9", database_url, "http://127.0.0.1:9"))
    sessions = app.extensions["aftersales"].sessions
    seed(sessions)
    # E: resolved on 12 November, its 7-day repeat window still open at the snapshot.
    case_store.write_projection(sessions, Projection(snapshot(
        version=1, case_id="AS-RE", created_at=T0 + 30 * H, updated_at=T0 + 40 * H,
        stage="feedback", order_id="SO-5", team="complaints", store="online",
        confirmed_at=T0 + 31 * H, resolved_at=T0 + 40 * H, rating=4,
        analysis={"root_cause": "wrong_item", "responsible_party": "merchant"},
        resolution=Resolution(type="refund", amount="12.50", state="done"),
        refunded="12.50", clocks=[clock("confirm", "met", 3600)])))
    # Both ends of the period fall inside a day: those hours are counted live.
    period = ReportFilter(datetime(2026, 11, 1, 4, 0, tzinfo=UTC), NIGHT + 5 * H)
    first_day, last_day = datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 13, tzinfo=UTC)
    try:
        with sessions.begin() as session:
            kpi.take_snapshots(session, NIGHT)
        with sessions() as session:
            fresh = reports.fresh_snapshots(session, period.start, reports.day_start(NIGHT))
        assert set(fresh) == days(first_day, last_day)
        before = agreeing(sessions, period, NIGHT + H)
        assert (before["opened"], before["closed"], before["fcr"]["first_contact"]) == (4, 1, 1)
        assert before["refunds"] == {"count": 2, "amount": "62.50"}

        # The snapshot is what the fast path reads: a figure planted in one shows.
        with sessions.begin() as session:
            row = session.get(KpiSnapshot, datetime(2026, 11, 5, tzinfo=UTC))
            row.figures = {**row.figures, "opened": 7}
        with sessions() as session:
            assert reports.summary(session, period, NIGHT + H)["opened"] == 11
            assert reports.live_summary(session, period)["opened"] == 4
        with sessions.begin() as session:
            kpi.take_snapshots(session, NIGHT)

        # Today, a repeat case on E's order: E is no longer a first contact, although
        # its day keeps its snapshot.
        case_store.write_projection(sessions, Projection(snapshot(
            version=1, case_id="AS-RF", created_at=NIGHT + 2 * H,
            updated_at=NIGHT + 2 * H, stage="confirm",
            order_id="SO-5", team="complaints", store="online")))
        with sessions() as session:
            fresh = reports.fresh_snapshots(session, period.start, reports.day_start(NIGHT))
        assert set(fresh) == days(first_day, last_day)
        today = agreeing(sessions, period, NIGHT + 3 * H)
        assert (today["opened"], today["fcr"]["first_contact"]) == (5, 0)

        # C (opened on 10 November) is rated and closed after the snapshot: its day and
        # every later one are counted live again.
        case_store.write_projection(sessions, Projection(snapshot(
            version=2, case_id="AS-RC", created_at=T0 + 12 * H, updated_at=NIGHT + 3 * H,
            stage="closed", order_id="SO-1", team="complaints", store="online",
            confirmed_at=T0 + 12.5 * H, resolved_at=NIGHT + 2 * H, closed_at=NIGHT + 3 * H,
            rating=4, resolution=Resolution(type="apology", state="done"),
            clocks=[clock("confirm", "met", 1800), clock("analyze", "met", 100)])))
        with sessions() as session:
            fresh = reports.fresh_snapshots(session, period.start, reports.day_start(NIGHT))
        assert set(fresh) == days(first_day, datetime(2026, 11, 9, tzinfo=UTC))
        after = agreeing(sessions, period, NIGHT + 4 * H)
        assert (after["opened"], after["closed"], after["overdue_now"]) == (5, 2, 0)
        assert after["csat"] == {"ratings": 4, "satisfied_pct": 75.0, "mean_rating": 3.75}
        assert after["sla_attainment"]["analyze"] == {"met": 1, "breached": 0, "pct": 100.0}
        # A filtered report is counted live, and agrees as well.
        for f in (replace(period, team="complaints"), replace(period, store="online"),
                  replace(period, kind="complaint", priority="P3")):
            agreeing(sessions, f, NIGHT + 4 * H)
    finally:
        app.extensions["aftersales"].engine.dispose()


def test_migration_0025_values_the_coupons_granted_before_it(database_url):
    from alembic import command

    from db.engine import alembic_config, make_engine, make_sessionmaker

    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    seed(sessions)  # B was compensated with a coupon worth 20.00
    config = alembic_config(database_url)
    try:
        command.downgrade(config, "0019")
        command.upgrade(config, "head")
        with sessions() as session:
            values = dict(session.execute(select(Case.id, Case.coupon_value)).all())
            assert values == {"AS-RA": Decimal("0"), "AS-RB": Decimal("20.00"),
                              "AS-RC": Decimal("0"), "AS-RD": Decimal("0")}
            assert reports.live_summary(session, ReportFilter(
                T0 - timedelta(days=1), T0 + timedelta(days=1)))["compensation"] == {
                "count": 1, "points": 300, "coupon_value": "20.00"}
    finally:
        engine.dispose()
