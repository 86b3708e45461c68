"""KPI snapshots: one row of counts per day, so that reports and trend charts over
closed days need not scan the cases, and the per-handler figures of the supervisor
console.

A day's cases are those opened that day (UTC), as in docs/reports.md; its figures
change as those cases are rated or their clocks stop, so each nightly run rewrites the
last `REFRESH_DAYS` days and older days keep what they had. A row's `figures` is the
day's report tally (db/reports.py), which reports use while it still holds
(`fresh_snapshots`) and count live otherwise.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, case, cast, delete, func, select
from sqlalchemy.orm import Session

from db.models import Case, CaseClock, KpiSnapshot
from db.reports import DAY, SNAPSHOT_MARGIN, ReportFilter, day_start, first_contact, tally
from workflows.case.vocabulary import OPEN_STAGES

REFRESH_DAYS = 35


def day_figures(session: Session, day: datetime, now: datetime) -> dict:
    """The figures of one UTC day: its report tally and the counts kept beside it."""
    start = day_start(day)
    period = ReportFilter(start, start + DAY)
    figures = tally(session, period, now)
    if figures["fcr_open"]:
        # The first contacts as of a cutoff a margin before now (every case opened
        # before it is in the read model): a report subtracts those that cases opened
        # since took back (db/reports.py `taken_back`) instead of counting the day again.
        cutoff = now - SNAPSHOT_MARGIN
        figures["fcr_since"] = {"cutoff": cutoff.isoformat(), "first_contact": first_contact(
            session, period.conditions(), start, before=cutoff)}
    overdue = session.scalar(select(func.count()).select_from(Case).where(
        Case.stage.in_(OPEN_STAGES), Case.overdue.is_(True)))
    return {"day": start, "opened": figures["opened"], "closed": figures["closed"],
            "clocks_met": sum(met for met, _ in figures["clocks"].values()),
            "clocks_breached": sum(breached for _, breached in figures["clocks"].values()),
            "ratings": figures["ratings"], "satisfied": figures["satisfied"],
            "rating_sum": figures["rating_sum"], "overdue_open": int(overdue or 0),
            "taken_at": now, "figures": figures}


def take_snapshots(session: Session, now: datetime, days: int = REFRESH_DAYS) -> int:
    """Rewrite the rows of the last `days` whole days before `now` (idempotent)."""
    today = day_start(now)
    first = today - days * DAY
    session.execute(delete(KpiSnapshot).where(KpiSnapshot.day >= first,
                                              KpiSnapshot.day < today))
    for n in range(days):
        session.add(KpiSnapshot(**day_figures(session, first + n * DAY, now)))
    return days


def handler_rows(session: Session, f: ReportFilter) -> list[dict]:
    """Per assignee, over cases opened in the period: opened, closed, open and overdue, SLA
    attainment, CSAT and mean wall time to first response; busiest first."""
    period = f.conditions()
    rows = session.execute(
        select(Case.assignee, func.count(),
               func.sum(case((Case.stage == "closed", 1), else_=0)),
               func.sum(case(((Case.stage.in_(OPEN_STAGES)) & Case.overdue.is_(True), 1), else_=0)),
               func.count(Case.rating), func.sum(case((Case.rating >= 4, 1), else_=0)),
               func.avg(cast(Case.first_response_s, Float)))
        .where(*period, Case.assignee.is_not(None))
        .group_by(Case.assignee).order_by(func.count().desc(), Case.assignee)).all()
    clocks = dict(
        (name, (int(met or 0), int(breached or 0)))
        for name, met, breached in session.execute(
            select(Case.assignee, func.sum(case((CaseClock.state == "met", 1), else_=0)),
                   func.sum(case((CaseClock.state == "breached", 1), else_=0)))
            .join(Case, Case.id == CaseClock.case_id)
            .where(*period, Case.assignee.is_not(None),
                   CaseClock.state.in_(("met", "breached")))
            .group_by(Case.assignee)).all())
    out = []
    for name, opened, closed, overdue, ratings, satisfied, first_response in rows:
        met, breached = clocks.get(name, (0, 0))
        out.append({
            "handler": name, "opened": int(opened), "closed": int(closed or 0),
            "overdue_open": int(overdue or 0),
            "sla_pct": round(100.0 * met / (met + breached), 1) if met + breached else None,
            "csat_pct": round(100.0 * int(satisfied or 0) / ratings, 1) if ratings else None,
            "first_response_mean_s": round(float(first_response), 1)
            if first_response is not None else None,
        })
    return out

