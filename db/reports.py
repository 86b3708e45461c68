"""The supervisor's KPIs over a period, as SQL aggregates over the read model.

Every figure is one aggregate query (or two, for a p90) filtered by the same
conditions; nothing loads the cases into Python. The definitions are in
docs/reports.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Float, and_, case, cast, exists, func, select
from sqlalchemy.orm import Session, aliased

from db.models import Case, CaseClock
from workflows.case.vocabulary import CLOCKS, OPEN_STAGES, RESOLUTION_TYPES

CLOCK_ORDER = CLOCKS


@dataclass(frozen=True)
class ReportFilter:
    start: datetime
    end: datetime
    kind: str | None = None
    channel: str | None = None
    handler: str | None = None
    priority: str | None = None
    team: str | None = None
    store: str | None = None

    def named(self) -> dict[str, str]:
        """The filters set, by their names in the API."""
        return {name: value for name, value in (
            ("kind", self.kind), ("channel", self.channel), ("handler", self.handler),
            ("priority", self.priority), ("team", self.team), ("store", self.store))
            if value}

    def conditions(self, period_column=None) -> list:
        """The filter as WHERE conditions; the period applies to `period_column`."""
        column = Case.created_at if period_column is None else period_column
        found = [column >= self.start, column < self.end]
        for name, value in self.named().items():
            found.append(getattr(Case, COLUMN_OF.get(name, name)) == value)
        return found


# A filter's name where the case's column is named otherwise.
COLUMN_OF = {"handler": "assignee"}


def summary(session: Session, f: ReportFilter) -> dict:
    opened = _count(session, f.conditions())
    closed = _count(session, [*f.conditions(Case.closed_at), Case.stage == "closed"])
    overdue_now = _count(session, [*f.conditions()[2:], Case.stage.in_(OPEN_STAGES),
                                   Case.overdue.is_(True)])
    resolved = [*f.conditions(), Case.resolved_at.is_not(None)]
    resolved_count = _count(session, resolved)
    rated = session.execute(select(
        func.count(Case.rating), func.avg(Case.rating),
        func.sum(case((Case.rating >= 4, 1), else_=0)),
    ).where(*f.conditions(), Case.rating.is_not(None))).one()
    repeat = aliased(Case)
    fcr = session.scalar(select(func.count()).select_from(Case).where(
        *resolved, Case.reopen_count == 0,
        ~exists().where(repeat.order_id == Case.order_id, repeat.id != Case.id,
                        repeat.created_at >= Case.resolved_at,
                        repeat.created_at < Case.fcr_until)))
    reopened = _count(session, [*resolved, Case.reopen_count > 0])
    fraud_review = _count(session, [*f.conditions(), Case.fraud_review.is_(True)])
    instant = _count(session, [*f.conditions(), Case.instant_refund_at.is_not(None)])
    recovery = session.execute(select(
        func.coalesce(func.sum(Case.recovery_tasks), 0),
        func.coalesce(func.sum(Case.recovery_amount), 0),
    ).where(*f.conditions())).one()
    money = session.execute(select(
        func.coalesce(func.sum(Case.refunded), 0),
        func.sum(case((Case.refunded > 0, 1), else_=0)),
        func.coalesce(func.sum(Case.compensation_points), 0),
    ).where(*f.conditions())).one()
    # A case counts once under each type it was settled with (apology + coupon + refund:
    # once in each of the three).
    settled = session.execute(select(*(
        func.sum(case((Case.remedy_types.like(f"% {kind} %"), 1), else_=0))
        for kind in RESOLUTION_TYPES)).where(*f.conditions())).one()
    remedies = {kind: int(count or 0) for kind, count in zip(RESOLUTION_TYPES, settled,
                                                            strict=True)}
    return {
        "period": {"from": f.start.isoformat(), "to": f.end.isoformat()},
        "filters": f.named(),
        "opened": opened,
        "closed": closed,
        "overdue_now": overdue_now,
        "sla_attainment": _attainment(session, f),
        "first_response": _durations(session, f, Case.first_response_s,
                                     Case.first_response_work_s),
        "resolution_time": _durations(session, f, Case.resolution_s, Case.resolution_work_s),
        "csat": {
            "ratings": int(rated[0] or 0),
            "satisfied_pct": _pct(rated[2], rated[0]),
            "mean_rating": round(float(rated[1]), 2) if rated[1] is not None else None,
        },
        "fcr": {"resolved": resolved_count, "first_contact": int(fcr or 0),
                "pct": _pct(fcr, resolved_count)},
        "reopen_rate": {"reopened": reopened, "pct": _pct(reopened, resolved_count)},
        "root_causes": _pareto(session, f, Case.root_cause),
        "responsible_parties": _split(session, f, Case.responsible_party),
        "refunds": {"count": int(money[1] or 0),
                    "amount": f"{Decimal(str(money[0] or 0)):.2f}"},
        "compensation": {"count": remedies["compensation"], "points": int(money[2] or 0)},
        "remedies": remedies,
        "fraud_review": fraud_review,
        "instant_refunds": instant,
        "recovery_tasks": {"count": int(recovery[0] or 0),
                           "amount": f"{Decimal(str(recovery[1] or 0)):.2f}"},
        "by_team": breakdown(session, f, "team"),
        "by_store": breakdown(session, f, "store"),
    }


def breakdown(session: Session, f: ReportFilter, group: str) -> list[dict]:
    """The period's figures per team or per store (`group`): cases opened and closed,
    overdue now, the breach rate of their finished SLA clocks and the mean resolution
    time (wall clock). Cases of no team or store are the row whose name is null. Most
    opened first."""
    column = getattr(Case, group)
    rows: dict = {}

    def row(value) -> dict:
        return rows.setdefault(value, {
            group: value, "opened": 0, "closed": 0, "overdue_now": 0, "clocks_met": 0,
            "clocks_breached": 0, "breach_pct": None, "resolved": 0,
            "resolution_mean_s": None})

    def counted(key: str, conditions: list) -> None:
        for value, count in session.execute(select(column, func.count()).where(
                *conditions).group_by(column)):
            row(value)[key] = int(count)

    counted("opened", f.conditions())
    counted("closed", [*f.conditions(Case.closed_at), Case.stage == "closed"])
    counted("overdue_now", [*f.conditions()[2:], Case.stage.in_(OPEN_STAGES),
                            Case.overdue.is_(True)])
    for value, met, breached in session.execute(
            select(column, func.sum(case((CaseClock.state == "met", 1), else_=0)),
                   func.sum(case((CaseClock.state == "breached", 1), else_=0)))
            .select_from(CaseClock).join(Case, Case.id == CaseClock.case_id)
            .where(*f.conditions(), CaseClock.state.in_(("met", "breached")))
            .group_by(column)):
        found = row(value)
        found["clocks_met"], found["clocks_breached"] = int(met or 0), int(breached or 0)
        found["breach_pct"] = _pct(breached, int(met or 0) + int(breached or 0))
    for value, count, mean in session.execute(
            select(column, func.count(Case.resolution_s),
                   func.avg(cast(Case.resolution_s, Float)))
            .where(*f.conditions(), Case.resolution_s.is_not(None)).group_by(column)):
        found = row(value)
        found["resolved"] = int(count)
        found["resolution_mean_s"] = round(float(mean), 1) if mean is not None else None
    return sorted(rows.values(), key=lambda r: (-r["opened"], r[group] is None,
                                                r[group] or ""))


def _count(session: Session, conditions: list) -> int:
    return int(session.scalar(select(func.count()).select_from(Case).where(*conditions)) or 0)


def _pct(part, whole) -> float | None:
    return round(100.0 * float(part or 0) / float(whole), 1) if whole else None


def _attainment(session: Session, f: ReportFilter) -> dict:
    rows = session.execute(
        select(CaseClock.name,
               func.sum(case((CaseClock.state == "met", 1), else_=0)),
               func.sum(case((CaseClock.state == "breached", 1), else_=0)))
        .join(Case, Case.id == CaseClock.case_id)
        .where(*f.conditions(), CaseClock.state.in_(("met", "breached")))
        .group_by(CaseClock.name)).all()
    found = {name: (int(met or 0), int(breached or 0)) for name, met, breached in rows}
    return {name: {"met": met, "breached": breached, "pct": _pct(met, met + breached)}
            for name in CLOCK_ORDER if name in found
            for met, breached in [found[name]]}


def _durations(session: Session, f: ReportFilter, wall, work) -> dict:
    out = {}
    for label, column in (("wall", wall), ("working", work)):
        where = [*f.conditions(), column.is_not(None)]
        count, mean = session.execute(
            select(func.count(column), func.avg(cast(column, Float))).where(*where)).one()
        p90 = None
        if count:
            # The nearest-rank 90th percentile, in SQL on SQLite and PostgreSQL alike.
            offset = max(0, math.ceil(0.9 * count) - 1)
            p90 = session.scalar(select(column).where(*where).order_by(column)
                                 .offset(offset).limit(1))
        out[label] = {"count": int(count or 0),
                      "mean_s": round(float(mean), 1) if mean is not None else None,
                      "p90_s": round(float(p90), 1) if p90 is not None else None}
    return out


def _pareto(session: Session, f: ReportFilter, column) -> list[dict]:
    rows = _grouped(session, f, column)
    total = sum(count for _, count in rows)
    running = 0
    pareto = []
    for value, count in rows:
        running += count
        pareto.append({"root_cause": value, "count": count,
                       "pct": _pct(count, total), "cumulative_pct": _pct(running, total)})
    return pareto


def _split(session: Session, f: ReportFilter, column) -> list[dict]:
    rows = _grouped(session, f, column)
    total = sum(count for _, count in rows)
    return [{"party": value, "count": count, "pct": _pct(count, total)}
            for value, count in rows]


def _grouped(session: Session, f: ReportFilter, column) -> list[tuple[str, int]]:
    rows = session.execute(
        select(column, func.count()).where(and_(*f.conditions()), column.is_not(None))
        .group_by(column).order_by(func.count().desc(), column)).all()
    return [(str(value), int(count)) for value, count in rows]
