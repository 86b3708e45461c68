"""KPI snapshots: one row of counts per day, for trend charts that need not scan the
cases, and the per-handler figures of the supervisor console.

A day's cases are those opened that day (UTC), as in docs/reports.md; its figures
change as those cases are rated or their clocks stop, so each nightly run rewrites the
last `REFRESH_DAYS` days and older days keep what they had.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Float, case, cast, delete, func, select
from sqlalchemy.orm import Session

from db.cases import as_utc
from db.models import Case, CaseClock, KpiSnapshot
from db.reports import ReportFilter
from workflows.case.vocabulary import OPEN_STAGES

REFRESH_DAYS = 35
DAY = timedelta(days=1)


def day_start(at: datetime) -> datetime:
    at = as_utc(at)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def day_figures(session: Session, day: datetime, now: datetime) -> dict:
    """The counts of one UTC day, as SQL aggregates."""
    start = day_start(day)
    opened_that_day = ReportFilter(start, start + DAY).conditions()
    opened = session.scalar(select(func.count()).select_from(Case).where(*opened_that_day))
    closed = session.scalar(select(func.count()).select_from(Case).where(
        *ReportFilter(start, start + DAY).conditions(Case.closed_at), Case.stage == "closed"))
    met, breached = session.execute(
        select(func.sum(case((CaseClock.state == "met", 1), else_=0)),
               func.sum(case((CaseClock.state == "breached", 1), else_=0)))
        .join(Case, Case.id == CaseClock.case_id)
        .where(*opened_that_day, CaseClock.state.in_(("met", "breached")))).one()
    ratings, satisfied, rating_sum = session.execute(
        select(func.count(Case.rating), func.sum(case((Case.rating >= 4, 1), else_=0)),
               func.sum(Case.rating))
        .where(*opened_that_day, Case.rating.is_not(None))).one()
    overdue = session.scalar(select(func.count()).select_from(Case).where(
        Case.stage.in_(OPEN_STAGES), Case.overdue.is_(True)))
    return {"day": start, "opened": int(opened or 0), "closed": int(closed or 0),
            "clocks_met": int(met or 0), "clocks_breached": int(breached or 0),
            "ratings": int(ratings or 0), "satisfied": int(satisfied or 0),
            "rating_sum": int(rating_sum or 0), "overdue_open": int(overdue or 0),
            "taken_at": now}


def take_snapshots(session: Session, now: datetime, days: int = REFRESH_DAYS) -> int:
    """Rewrite the rows of the last `days` whole days before `now` (idempotent)."""
    today = day_start(now)
    first = today - days * DAY
    session.execute(delete(KpiSnapshot).where(KpiSnapshot.day >= first,
                                              KpiSnapshot.day < today))
    for n in range(days):
        session.add(KpiSnapshot(**day_figures(session, first + n * DAY, now)))
    return days


@dataclass(frozen=True)
class Week:
    """Sums of the snapshots of one ISO week (Monday to Sunday, UTC)."""

    start: datetime
    opened: int
    closed: int
    clocks_met: int
    clocks_breached: int
    ratings: int
    satisfied: int
    rating_sum: int

    @property
    def sla_pct(self) -> float | None:
        total = self.clocks_met + self.clocks_breached
        return round(100.0 * self.clocks_met / total, 1) if total else None

    @property
    def csat_pct(self) -> float | None:
        return round(100.0 * self.satisfied / self.ratings, 1) if self.ratings else None

    @property
    def mean_rating(self) -> float | None:
        return round(self.rating_sum / self.ratings, 2) if self.ratings else None


def weekly(session: Session, now: datetime, weeks: int = 12) -> list[Week]:
    """The last `weeks` ISO weeks up to the one containing `now`, oldest first; a week
    with no snapshot rows counts zeros."""
    today = day_start(now)
    this_monday = today - today.weekday() * DAY
    first = this_monday - (weeks - 1) * 7 * DAY
    rows = session.scalars(select(KpiSnapshot).where(KpiSnapshot.day >= first)
                           .order_by(KpiSnapshot.day)).all()
    sums: dict[datetime, list[int]] = {first + n * 7 * DAY: [0] * 7 for n in range(weeks)}
    for row in rows:
        day = as_utc(row.day)
        monday = day - day.weekday() * DAY
        if monday in sums:
            for i, value in enumerate((row.opened, row.closed, row.clocks_met,
                                       row.clocks_breached, row.ratings, row.satisfied,
                                       row.rating_sum)):
                sums[monday][i] += value
    return [Week(start, *values) for start, values in sums.items()]


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

