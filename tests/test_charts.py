"""The supervisor console's charts: inline SVG from the KPI snapshots and the read
model, with the hand-computed figures of tests/test_reports.py's cases, readable by a
screen reader and free of inline styles."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from flask import render_template

from db import cases as case_store
from db import kpi
from db.reports import ReportFilter
from tests.conftest import make_settings
from tests.test_read_model import snapshot
from tests.test_reports import T0, clock, seed
from web import create_app
from web.charts import bucket_edges, supervisor_report
from workflows.case.contracts import Projection

NOW = datetime(2026, 11, 13, 1, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def parsed(svg) -> ET.Element:
    root = ET.fromstring(str(svg))
    assert root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby", "").split()
    assert root.find(f"{SVG}title").get("id") == title_id
    assert root.find(f"{SVG}desc").get("id") == desc_id
    assert "style" not in str(svg)  # the CSP allows no inline styles
    return root


def labels(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def app_with(database_url):
    return create_app(make_settings("127.0.0.1:9", database_url, "http://127.0.0.1:9"))


def test_trend_csat_and_pareto_charts_show_the_known_figures(database_url):
    app = app_with(database_url)
    sessions = app.extensions["aftersales"].sessions
    seed(sessions)
    try:
        with sessions.begin() as session:
            kpi.take_snapshots(session, NOW)
        with sessions() as session:
            report = supervisor_report(session, NOW,
                                       period=ReportFilter(T0 - timedelta(days=9), NOW))
        # Ten days: the charts go day by day, from the period's first hour to now.
        assert report.unit == "day"
        assert report.labels[0] == "11-01" and report.labels[-1] == "11-13"
        cases = parsed(report.cases_trend)
        assert cases.find(f"{SVG}title").text == "Cases opened and closed per day"
        desc = cases.find(f"{SVG}desc").text or ""
        assert "Opened: 11-01: 0; " in desc and "; 11-10: 3; 11-11: 0;" in desc
        assert "Closed: 11-01: 0; " in desc and "; 11-12: 1; 11-13: 0." in desc
        assert {"11-01", "opened", "closed"} <= set(labels(cases))
        assert "opened 11-10: 3" in bar_titles(cases)

        sla = parsed(report.sla_trend)
        assert "11-09: –; 11-10: 80%; 11-11: –" in sla.find(f"{SVG}desc").text
        csat = parsed(report.csat_trend)
        assert "11-10: 50%" in csat.find(f"{SVG}desc").text
        assert "satisfied 11-10: 50%" in bar_titles(csat)

        pareto = parsed(report.root_causes)
        assert "Product quality" in labels(pareto)
        assert "2 · 100% (cumulative 100%)" in labels(pareto)
        # The charts add up to the summary: one set of figures.
        assert report.summary["opened"] == sum(b["opened"] for b in report.buckets) == 3
        assert report.summary["closed"] == sum(b["closed"] for b in report.buckets) == 1
    finally:
        app.extensions["aftersales"].engine.dispose()


def bar_titles(root: ET.Element) -> set[str]:
    return {" ".join((t.text or "").split()) for rect in root.iter(f"{SVG}rect")
            for t in rect.iter(f"{SVG}title")}


def test_on_day_one_the_charts_show_todays_cases(database_url):
    """No snapshot has been taken yet: the cases opened today are in the charts."""
    app = app_with(database_url)
    sessions = app.extensions["aftersales"].sessions
    morning = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    for n in range(20):
        case_store.write_projection(sessions, Projection(snapshot(
            case_id=f"AS-D{n:02d}", version=1, created_at=morning + timedelta(minutes=n),
            updated_at=morning + timedelta(minutes=n), order_id=f"SO-D{n}")))
    now = morning + timedelta(hours=3)
    try:
        with sessions() as session:
            report = supervisor_report(session, now,
                                       period=ReportFilter(now - timedelta(days=7), now))
        assert report.summary["opened"] == 20
        assert report.labels[-1] == "12-01"
        assert "opened 12-01: 20" in bar_titles(parsed(report.cases_trend))
        assert report.buckets[-1]["opened"] == 20
    finally:
        app.extensions["aftersales"].engine.dispose()


def test_the_buckets_follow_the_period():
    now = datetime(2026, 12, 10, 15, 30, tzinfo=UTC)
    unit, edges = bucket_edges(now - timedelta(days=7), now)
    assert unit == "day" and len(edges) == 9  # 3 December 15:30 to today: 8 buckets
    assert edges[1] == datetime(2026, 12, 4, tzinfo=UTC) and edges[-1] == now
    unit, edges = bucket_edges(now - timedelta(days=90), now)
    assert unit == "week"
    assert all(e.weekday() == 0 and e.hour == 0 for e in edges[1:-1])
    unit, edges = bucket_edges(now - timedelta(days=365), now)
    assert unit == "month" and len(edges) == 14
    assert edges[1] == datetime(2026, 1, 1, tzinfo=UTC)
    assert edges[-2] == datetime(2026, 12, 1, tzinfo=UTC)


def seed_handlers(sessions) -> None:
    for values in (
        dict(case_id="AS-H1", assignee="alice", stage="closed", confirmed_at=T0 + timedelta(
            hours=1), closed_at=T0 + timedelta(days=1), rating=5,
             clocks=[clock("confirm", "met", 3600), clock("resolution", "met", 7200)]),
        dict(case_id="AS-H2", assignee="alice", stage="analyze", overdue=True,
             confirmed_at=T0 + timedelta(hours=3),
             clocks=[clock("confirm", "breached", 10800, 7200)]),
        dict(case_id="AS-H3", assignee="bob", stage="revisit", rating=1,
             confirmed_at=T0 + timedelta(hours=2), clocks=[clock("confirm", "met", 7200)]),
        dict(case_id="AS-H4", stage="confirm"),  # nobody's yet: not in the table
    ):
        values.setdefault("created_at", T0)
        case_store.write_projection(sessions, Projection(snapshot(version=1, **values)))


def test_handler_table_and_the_page_partial(database_url):
    app = app_with(database_url)
    sessions = app.extensions["aftersales"].sessions
    seed_handlers(sessions)
    try:
        with sessions() as session:
            report = supervisor_report(session, NOW,
                                       period=ReportFilter(T0, T0 + timedelta(days=1)))
        assert report.handlers == [
            {"handler": "alice", "opened": 2, "closed": 1, "overdue_open": 1,
             "sla_pct": 66.7, "csat_pct": 100.0, "first_response_mean_s": 7200.0},
            {"handler": "bob", "opened": 1, "closed": 0, "overdue_open": 0,
             "sla_pct": 100.0, "csat_pct": 0.0, "first_response_mean_s": 7200.0},
        ]
        with app.test_request_context():
            html = render_template("charts/supervisor_reports.html", report=report)
        assert "style=" not in html and "<style" not in html and "<script" not in html
        assert html.count("<svg") == 4
        row = re.search(r'<th scope="row">alice</th>(.*?)</tr>', html, re.S)
        assert row is not None
        cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
        assert [c.strip() for c in cells] == ["2", "1", "1", "66.7%", "100.0%", "2.0 h"]
        # The figures of the key-figure cards are not repeated above the charts.
        assert "opened, 0 closed" not in " ".join(html.split())
        assert "day by day (UTC days), today so far included" in " ".join(html.split())
    finally:
        app.extensions["aftersales"].engine.dispose()
