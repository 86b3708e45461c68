"""The report summary's fast path (KPI snapshots of the closed days, a live count of
the rest, the p90s through histograms, the first contacts taken back since the
snapshot) against a direct computation in Python over every case, on SQLite and
PostgreSQL, for a seeded mix of cases over 90 days (bench/readmodel.py's)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from bench.readmodel import fill
from db import cases as case_store
from db import kpi, reports
from db.engine import make_engine, make_sessionmaker
from db.models import Case, CaseClock, KpiSnapshot
from db.reports import DAY, ReportFilter, day_start
from tests.test_read_model import snapshot
from workflows.case.contracts import Customer, Projection
from workflows.case.vocabulary import OPEN_STAGES

NOW = datetime(2026, 12, 20, 14, 30, tzinfo=UTC)
NIGHT = day_start(NOW) + timedelta(minutes=30)  # the scheduler's run last night


def direct(session, f: ReportFilter) -> dict:
    """The figures the fast path must give, counted in Python from every case."""
    cases = session.execute(select(Case)).scalars().all()
    clocks = session.execute(select(CaseClock.case_id, CaseClock.name,
                                    CaseClock.state)).all()

    def aware(at):
        return None if at is None else reports.as_utc(at)

    period = [c for c in cases if f.start <= aware(c.created_at) < f.end
              and (f.kind is None or c.kind == f.kind)]
    ids = {c.id for c in period}
    out: dict = {
        "opened": len(period),
        "closed": sum(1 for c in cases if c.stage == "closed" and c.closed_at is not None
                      and f.start <= aware(c.closed_at) < f.end
                      and (f.kind is None or c.kind == f.kind)),
        "overdue_now": sum(1 for c in cases if c.stage in OPEN_STAGES and c.overdue
                           and (f.kind is None or c.kind == f.kind)),
    }
    for key in reports.DURATIONS:
        values = sorted(getattr(c, key) for c in period if getattr(c, key) is not None)
        out[key] = round(values[math.ceil(0.9 * len(values)) - 1], 1) if values else None
    by_order: dict[str, list] = {}
    for c in cases:
        by_order.setdefault(c.order_id, []).append(c)
    out["first_contact"] = sum(
        1 for c in period if c.resolved_at is not None and c.reopen_count == 0
        and not any(other.id != c.id
                    and aware(c.resolved_at) <= aware(other.created_at) < aware(c.fcr_until)
                    for other in by_order.get(c.order_id, [])))
    out["resolved"] = sum(1 for c in period if c.resolved_at is not None)
    out["ratings"] = sum(1 for c in period if c.rating is not None)
    tallied: dict[str, list[int]] = {}
    for case_id, name, state in clocks:
        if case_id in ids and state in ("met", "breached"):
            tallied.setdefault(name, [0, 0])[state == "breached"] += 1
    out["clocks"] = tallied
    return out


def figures(report: dict) -> dict:
    """The same figures as the report gives them."""
    timed = {"first_response_s": report["first_response"]["wall"],
             "first_response_work_s": report["first_response"]["working"],
             "resolution_s": report["resolution_time"]["wall"],
             "resolution_work_s": report["resolution_time"]["working"]}
    return {"opened": report["opened"], "closed": report["closed"],
            "overdue_now": report["overdue_now"],
            **{key: value["p90_s"] for key, value in timed.items()},
            "first_contact": report["fcr"]["first_contact"],
            "resolved": report["fcr"]["resolved"], "ratings": report["csat"]["ratings"],
            "clocks": {name: [value["met"], value["breached"]]
                       for name, value in report["sla_attainment"].items()}}


def check(sessions, f: ReportFilter) -> dict:
    """The fast path equals the live count and the direct count."""
    with sessions() as session:
        fast = reports.summary(session, f, NOW)
        assert fast == reports.live_summary(session, f)
        assert figures(fast) == direct(session, f)
    return fast


def test_the_fast_summary_equals_a_direct_count_over_a_seeded_mix(database_url):
    fill(database_url, 900, seed=11, search=False, now=NOW)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    # Across days without a snapshot (more than 35 days back), snapshot days, a
    # partial first day and today; a period of whole days; a filtered one (all live).
    long = ReportFilter(NOW - timedelta(days=40), NOW)
    week = ReportFilter(day_start(NOW) - 7 * DAY, NOW)
    try:
        with sessions.begin() as session:
            kpi.take_snapshots(session, NIGHT)
        with sessions() as session:
            fresh = reports.fresh_snapshots(session, long.start, day_start(NOW))
            assert len(fresh) == 35
            assert reports.period_tally(session, long, NOW)["hist"] is not None
        before = check(sessions, long)
        assert before["opened"] > 350 and before["fcr"]["first_contact"] > 50
        check(sessions, week)
        check(sessions, replace(long, kind="return"))

        # Today, repeat cases on the orders of first contacts resolved in the last
        # days (snapshot days whose repeat window is still open): they take the first
        # contacts back, subtracted from the snapshots' count.
        with sessions() as session:
            firsts = session.execute(
                select(Case.id, Case.order_id).where(
                    Case.created_at >= day_start(NOW) - 5 * DAY,
                    Case.created_at < day_start(NOW) - DAY,
                    Case.resolved_at.is_not(None), Case.resolved_at < NOW - timedelta(hours=2),
                    Case.reopen_count == 0, Case.fcr_until > NOW)
                .order_by(Case.id)).all()
        direct_before = before["fcr"]["first_contact"]
        repeated = [order for _, order in firsts[:6]]
        assert len(repeated) == 6
        for n, order in enumerate(repeated):
            case_store.write_projection(sessions, Projection(snapshot(
                f"AS-REPEAT{n}", 1, order_id=order, created_at=NOW - timedelta(hours=1),
                updated_at=NOW - timedelta(hours=1),
                customer=Customer(id=f"C-R{n}", name="李娜", phone=f"1390000000{n}"))))
        with sessions() as session:
            taken = direct(session, long)["first_contact"]
        assert taken < direct_before
        after = check(sessions, long)
        assert after["fcr"]["first_contact"] == taken
        check(sessions, week)

        # A case of ten days ago rated and closed after the snapshot: its day and
        # every later one are counted live until the next night.
        changed_day = day_start(NOW) - 10 * DAY
        with sessions.begin() as session:
            old = session.scalars(select(Case).where(
                Case.created_at >= changed_day, Case.created_at < changed_day + DAY,
                Case.stage.in_(("feedback", "revisit"))).order_by(Case.id).limit(1)).one()
            session.execute(update(Case).where(Case.id == old.id).values(
                stage="closed", status="closed", rating=5, closed_at=NOW - timedelta(hours=3),
                updated_at=NOW - timedelta(hours=3)))
        with sessions() as session:
            fresh = reports.fresh_snapshots(session, long.start, day_start(NOW))
            assert changed_day not in fresh and changed_day - DAY in fresh
        check(sessions, long)

        # Snapshots written before the histograms and the first-contact cutoff: the
        # p90s come from the cases, those days' first contacts are counted again.
        with sessions.begin() as session:
            for row in session.scalars(select(KpiSnapshot)):
                row.figures = {key: value for key, value in row.figures.items()
                               if key not in ("hist", "fcr_since")}
        with sessions() as session:
            assert reports.period_tally(session, long, NOW)["hist"] is None
        check(sessions, long)
        check(sessions, week)
    finally:
        engine.dispose()


def test_the_report_bench_runs_on_a_small_fill(postgres_url):
    """`aftersales bench --report` fills, checks the summary against the live count
    and times it (figures are for docs/benchmarks.md)."""
    from bench.reports import main

    result = main(postgres_url, 300)
    assert result["cases"] == 300 and result["cases_in_period"] > 50
    for part in ("function", "api", "database_time"):
        assert 0 < result[part]["p50_ms"] <= result[part]["p95_ms"]
    assert result["function"]["cpu"]["p50_ms"] > 0
    assert result["database_time"]["statements"] >= 5
    assert len(result["load_before"]) == 3
