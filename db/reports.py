"""The supervisor's KPIs over a period, as SQL aggregates over the read model.

Every figure is one aggregate query (or two, for a p90) filtered by the same
conditions; nothing loads the cases into Python. The definitions are in
docs/reports.md.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import case, exists, func, select
from sqlalchemy.orm import Session, aliased

from db.cases import as_utc
from db.models import Case, CaseClock, KpiSnapshot
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


def summary(session: Session, f: ReportFilter, now: datetime | None = None) -> dict:
    """The report over `f`: the period's additive figures from the KPI snapshots of
    its closed days plus the rest counted live (db/kpi.py `period_tally`), and what
    cannot be summed (overdue now, the p90s) counted live. Equal to `live_summary`."""
    return report(session, f, period_tally(session, f, now or datetime.now(UTC)))


def live_summary(session: Session, f: ReportFilter) -> dict:
    """The same report with every figure counted from the cases."""
    return report(session, f, tally(session, f))


def report(session: Session, f: ReportFilter, t: dict) -> dict:
    """The report of docs/reports.md from the period's tally `t`."""
    durations = t["durations"]
    p90 = _p90s(session, f)

    def timed(wall: str, work: str) -> dict:
        return {label: {"count": durations[key][0],
                        "mean_s": _mean(durations[key][1], durations[key][0]),
                        "p90_s": p90[key]}
                for label, key in (("wall", wall), ("working", work))}

    overdue = _overdue_now(session, f)
    return {
        "period": {"from": f.start.isoformat(), "to": f.end.isoformat()},
        "filters": f.named(),
        "opened": t["opened"],
        "closed": t["closed"],
        "overdue_now": sum(overdue.values()),
        "sla_attainment": {
            name: {"met": met, "breached": breached, "pct": _pct(met, met + breached)}
            for name in CLOCK_ORDER if name in t["clocks"]
            for met, breached in [t["clocks"][name]]},
        "first_response": timed("first_response_s", "first_response_work_s"),
        "resolution_time": timed("resolution_s", "resolution_work_s"),
        "csat": {
            "ratings": t["ratings"],
            "satisfied_pct": _pct(t["satisfied"], t["ratings"]),
            "mean_rating": round(t["rating_sum"] / t["ratings"], 2) if t["ratings"] else None,
        },
        "fcr": {"resolved": t["resolved"], "first_contact": t["first_contact"],
                "pct": _pct(t["first_contact"], t["resolved"])},
        "reopen_rate": {"reopened": t["reopened"], "pct": _pct(t["reopened"], t["resolved"])},
        "root_causes": _pareto(t["root_causes"]),
        "responsible_parties": [{"party": value, "count": count, "pct": pct}
                                for value, count, pct in _ranked(t["parties"])],
        "refunds": {"count": t["refunds"], "amount": t["refunded"]},
        "compensation": {"count": t["compensations"], "points": t["points"],
                         "coupon_value": t["coupon_value"]},
        # A case counts once under each type it was settled with (apology + coupon +
        # refund: once in each of the three).
        "remedies": {kind: t["remedies"].get(kind, 0) for kind in RESOLUTION_TYPES},
        "fraud_review": t["fraud_review"],
        "instant_refunds": t["instant_refunds"],
        "recovery_tasks": {"count": t["recovery_tasks"], "amount": t["recovery_amount"]},
        "by_team": _breakdown(t, overdue, "team"),
        "by_store": _breakdown(t, overdue, "store"),
    }


# A tally: the additive figures of a set of cases, as JSON (a KPI snapshot keeps one per
# day). Tallies of disjoint periods add up to the tally of their union.
DURATIONS = ("first_response_s", "first_response_work_s", "resolution_s",
             "resolution_work_s")
COUNTS = ("opened", "closed", "resolved", "first_contact", "fcr_open", "reopened",
          "ratings", "satisfied", "rating_sum", "refunds", "compensations", "points",
          "fraud_review", "instant_refunds", "recovery_tasks")
MONEY = ("refunded", "coupon_value", "recovery_amount")
GROUP_FIGURES = ("opened", "closed", "met", "breached", "resolved", "resolution_sum")
NONE = ""  # a team or store of null, as a JSON key (names are never empty)


def empty_tally() -> dict:
    return {**dict.fromkeys(COUNTS, 0), **dict.fromkeys(MONEY, "0.00"),
            "durations": {key: [0, 0.0] for key in DURATIONS},
            "clocks": {}, "root_causes": {}, "parties": {}, "remedies": {}, "team": {},
            "store": {}}


def add_tallies(a: dict, b: dict) -> dict:
    """The tally of two disjoint sets of cases."""
    out = empty_tally()
    # A snapshot taken before a figure existed holds none of it: zero.
    for key in COUNTS:
        out[key] = a.get(key, 0) + b.get(key, 0)
    for key in MONEY:
        out[key] = f"{Decimal(a.get(key, '0')) + Decimal(b.get(key, '0')):.2f}"
    for key in DURATIONS:
        out["durations"][key] = [a["durations"][key][0] + b["durations"][key][0],
                                 a["durations"][key][1] + b["durations"][key][1]]
    for key in ("clocks", "root_causes", "parties", "remedies", "team", "store"):
        merged = {k: v for k, v in a.get(key, {}).items()}
        for name, value in b.get(key, {}).items():
            if name not in merged:
                merged[name] = value
            elif isinstance(value, int):
                merged[name] = merged[name] + value
            elif isinstance(value, list):
                merged[name] = [x + y for x, y in zip(merged[name], value, strict=True)]
            else:
                merged[name] = {k: merged[name][k] + value[k] for k in GROUP_FIGURES}
        out[key] = merged
    return out


def tally(session: Session, f: ReportFilter, now: datetime | None = None) -> dict:
    """The additive figures of the cases opened (and of those closed) in `f`'s period
    that match its filters, as SQL aggregates. `fcr_open` counts resolved cases whose
    repeat window is still open at `now`: their first-contact figure may still fall."""
    opened = f.conditions()
    now = now or datetime.now(UTC)
    t = empty_tally()
    row = session.execute(select(
        func.count(), func.count(Case.resolved_at),
        _sum((Case.resolved_at.is_not(None)) & (Case.reopen_count > 0)),
        func.count(Case.rating), _sum(Case.rating >= 4), func.sum(Case.rating),
        _sum(Case.refunded > 0), func.sum(Case.refunded),
        _sum(_settled_with("compensation")), func.sum(Case.compensation_points),
        func.sum(Case.coupon_value),
        _sum(Case.resolved_at.is_not(None) & (Case.fcr_until > now)),
        *(aggregate(getattr(Case, key)) for key in DURATIONS
          for aggregate in (func.count, func.sum)),
        _sum(Case.fraud_review.is_(True)), func.count(Case.instant_refund_at),
        func.sum(Case.recovery_tasks), func.sum(Case.recovery_amount),
    ).where(*opened)).one()
    (t["opened"], t["resolved"], t["reopened"], t["ratings"], t["satisfied"],
     t["rating_sum"], t["refunds"]) = (int(v or 0) for v in row[:7])
    t["refunded"] = f"{Decimal(str(row[7] or 0)):.2f}"
    t["compensations"], t["points"] = int(row[8] or 0), int(row[9] or 0)
    t["coupon_value"] = f"{Decimal(str(row[10] or 0)):.2f}"
    t["fcr_open"] = int(row[11] or 0)
    for n, key in enumerate(DURATIONS):
        t["durations"][key] = [int(row[12 + 2 * n] or 0), float(row[13 + 2 * n] or 0)]
    after = 12 + 2 * len(DURATIONS)
    t["fraud_review"], t["instant_refunds"], t["recovery_tasks"] = (
        int(v or 0) for v in row[after:after + 3])
    t["recovery_amount"] = f"{Decimal(str(row[after + 3] or 0)):.2f}"
    t["first_contact"] = first_contact(session, opened, f.start)
    for name, met, breached in session.execute(
            select(CaseClock.name, _sum(CaseClock.state == "met"),
                   _sum(CaseClock.state == "breached"))
            .join(Case, Case.id == CaseClock.case_id)
            .where(*opened, CaseClock.state.in_(("met", "breached")))
            .group_by(CaseClock.name)):
        t["clocks"][name] = [int(met or 0), int(breached or 0)]
    settled = session.execute(select(*(_sum(_settled_with(kind)) for kind in RESOLUTION_TYPES))
                              .where(*opened)).one()
    t["remedies"] = {kind: int(count or 0)
                     for kind, count in zip(RESOLUTION_TYPES, settled, strict=True) if count}
    for key, column in (("root_causes", Case.root_cause), ("parties", Case.responsible_party)):
        t[key] = {str(value): int(count) for value, count in session.execute(
            select(column, func.count()).where(*opened, column.is_not(None))
            .group_by(column))}

    def group(team, store) -> list[dict]:
        return [t[name].setdefault(NONE if value is None else value,
                                   dict.fromkeys(GROUP_FIGURES, 0))
                for name, value in (("team", team), ("store", store))]

    for team, store, count, resolved, resolution_sum in session.execute(
            select(Case.team, Case.store, func.count(), func.count(Case.resolution_s),
                   func.sum(Case.resolution_s)).where(*opened)
            .group_by(Case.team, Case.store)):
        for g in group(team, store):
            g["opened"] += int(count)
            g["resolved"] += int(resolved or 0)
            g["resolution_sum"] += float(resolution_sum or 0)
    for team, store, met, breached in session.execute(
            select(Case.team, Case.store, _sum(CaseClock.state == "met"),
                   _sum(CaseClock.state == "breached"))
            .select_from(CaseClock).join(Case, Case.id == CaseClock.case_id)
            .where(*opened, CaseClock.state.in_(("met", "breached")))
            .group_by(Case.team, Case.store)):
        for g in group(team, store):
            g["met"] += int(met or 0)
            g["breached"] += int(breached or 0)
    for team, store, count in session.execute(
            select(Case.team, Case.store, func.count())
            .where(*f.conditions(Case.closed_at), Case.stage == "closed")
            .group_by(Case.team, Case.store)):
        for g in group(team, store):
            g["closed"] += int(count)
        t["closed"] += int(count)
    return t


DAY = timedelta(days=1)
# A projection write can land a little after the change it carries (its updated_at): a
# snapshot is trusted only if no case changed since this long before it was taken.
SNAPSHOT_MARGIN = timedelta(hours=1)


def day_start(at: datetime) -> datetime:
    """The start of `at`'s UTC day."""
    return as_utc(at).replace(hour=0, minute=0, second=0, microsecond=0)


def period_tally(session: Session, f: ReportFilter, now: datetime) -> dict:
    """The tally of `f`'s period: see `period_tallies`."""
    return period_tallies(session, f, now)[0]


def period_tallies(session: Session, f: ReportFilter, now: datetime,
                   edges: list[datetime] | None = None) -> list[dict]:
    """The tallies of the consecutive parts [edges[i], edges[i+1]) of `f`'s period
    (default: the whole period). Without filters, a whole UTC day before today with a
    fresh KPI snapshot (`fresh_snapshots`) is taken from the snapshot; everything else
    (today so far, the partial days at the edges, days without a fresh snapshot, any
    filtered report) is counted live, one query set per stretch. The sum is exactly
    the live tally of the period."""
    edges = edges or [f.start, f.end]
    fresh = {} if f.named() else fresh_snapshots(session, f.start,
                                                 min(f.end, day_start(now)))
    return [functools.reduce(add_tallies, _parts(session, replace(f, start=low, end=high),
                                                 now, fresh), empty_tally())
            for low, high in itertools.pairwise(edges)]


def _parts(session: Session, f: ReportFilter, now: datetime, fresh: dict) -> list[dict]:
    """The tallies that make up `f`'s period: the fresh snapshots of its whole days
    and the live counts of the stretches between them."""
    parts = []
    open_windows: list[datetime] = []
    cursor = f.start
    day = f.start if day_start(f.start) == f.start else day_start(f.start) + DAY
    while day + DAY <= f.end:
        figures = fresh.get(day)
        if figures is not None:
            if cursor < day:
                parts.append(tally(session, replace(f, start=cursor, end=day), now))
            if figures["fcr_open"]:
                # A repeat case opened since can take a first contact back: these
                # days' first contacts are counted again below.
                figures = {**figures, "first_contact": 0}
                open_windows.append(day)
            parts.append(figures)
            cursor = day + DAY
        day += DAY
    if cursor < f.end:
        parts.append(tally(session, replace(f, start=cursor, end=f.end), now))
    for start, end in _runs(open_windows):
        recount = empty_tally()
        recount["first_contact"] = first_contact(
            session, ReportFilter(start, end).conditions(), start)
        parts.append(recount)
    return parts


def _runs(days: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Consecutive days (in order) as [start, end) stretches."""
    runs: list[tuple[datetime, datetime]] = []
    for day in days:
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + DAY)
        else:
            runs.append((day, day + DAY))
    return runs


def fresh_snapshots(session: Session, start: datetime, end: datetime) -> dict:
    """The figures of the KPI snapshots of the whole days in [start, end) that still
    hold: taken after their day ended, and no case opened by the end of the day has
    changed since (less `SNAPSHOT_MARGIN`): a case rated, closed or reopened after the
    snapshot makes its days (and every later one) count live."""
    rows = session.execute(select(KpiSnapshot.day, KpiSnapshot.taken_at, KpiSnapshot.figures)
                           .where(KpiSnapshot.day >= start, KpiSnapshot.day <= end - DAY,
                                  KpiSnapshot.figures.is_not(None))).all()
    changed: dict[datetime, datetime | None] = {}
    for taken_at in {as_utc(row.taken_at) for row in rows}:
        earliest = session.scalar(select(func.min(Case.created_at)).where(
            Case.updated_at > taken_at - SNAPSHOT_MARGIN))
        changed[taken_at] = as_utc(earliest) if earliest is not None else None
    out = {}
    for row in rows:
        day, taken_at = as_utc(row.day), as_utc(row.taken_at)
        earliest = changed[taken_at]
        if taken_at >= day + DAY and (earliest is None or earliest >= day + DAY):
            out[day] = row.figures
    return out


def first_contact(session: Session, conditions: list, since: datetime) -> int:
    """Resolved cases among `conditions` (opened at or after `since`) never reopened
    and with no other case on the same order opened within their repeat window."""
    repeat = aliased(Case)
    return int(session.scalar(select(func.count()).select_from(Case).where(
        *conditions, Case.resolved_at.is_not(None), Case.reopen_count == 0,
        ~exists().where(repeat.order_id == Case.order_id, repeat.id != Case.id,
                        # Implied (resolved after opened), stated so that the
                        # database reads only the cases opened since.
                        repeat.created_at >= since,
                        repeat.created_at >= Case.resolved_at,
                        repeat.created_at < Case.fcr_until))) or 0)


def _settled_with(kind: str):
    """The case's completed resolution included a remedy of type `kind` (the
    `remedy_types` column lists them, space-delimited)."""
    return Case.remedy_types.like(f"% {kind} %")


def _sum(condition):
    return func.sum(case((condition, 1), else_=0))


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 1) if count else None


def _overdue_now(session: Session, f: ReportFilter) -> dict[tuple, int]:
    """Open overdue cases per (team, store), whenever opened: the filters apply, the
    period does not."""
    return {(team, store): int(count) for team, store, count in session.execute(
        select(Case.team, Case.store, func.count())
        .where(*f.conditions()[2:], Case.stage.in_(OPEN_STAGES), Case.overdue.is_(True))
        .group_by(Case.team, Case.store))}


def _p90s(session: Session, f: ReportFilter) -> dict[str, float | None]:
    """The nearest-rank 90th percentile of each duration over the period. On
    PostgreSQL one `percentile_disc` query (the nearest rank by definition); elsewhere
    an ordered query per duration."""
    columns = [getattr(Case, key) for key in DURATIONS]
    if session.get_bind().dialect.name == "postgresql":
        row = session.execute(select(*(
            func.percentile_disc(0.9).within_group(column) for column in columns))
            .where(*f.conditions())).one()
        return {key: round(float(v), 1) if v is not None else None
                for key, v in zip(DURATIONS, row, strict=True)}
    out: dict[str, float | None] = {}
    for key, column in zip(DURATIONS, columns, strict=True):
        where = [*f.conditions(), column.is_not(None)]
        count = session.scalar(select(func.count(column)).where(*where)) or 0
        value = session.scalar(select(column).where(*where).order_by(column)
                               .offset(max(0, math.ceil(0.9 * count) - 1)).limit(1)) \
            if count else None
        out[key] = round(float(value), 1) if value is not None else None
    return out


def _ranked(counts: dict[str, int]) -> list[tuple[str, int, float | None]]:
    total = sum(counts.values())
    return [(value, count, _pct(count, total))
            for value, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _pareto(counts: dict[str, int]) -> list[dict]:
    total, running, out = sum(counts.values()), 0, []
    for value, count, pct in _ranked(counts):
        running += count
        out.append({"root_cause": value, "count": count, "pct": pct,
                    "cumulative_pct": _pct(running, total)})
    return out


def _breakdown(t: dict, overdue: dict[tuple, int], group: str) -> list[dict]:
    """The period's figures per team or per store (`group`): cases opened and closed,
    overdue now, the breach rate of their finished SLA clocks and the mean resolution
    time (wall clock). Cases of no team or store are the row whose name is null. Most
    opened first."""
    at = 0 if group == "team" else 1
    now_overdue: dict[str, int] = {}
    for key, count in overdue.items():
        name = NONE if key[at] is None else key[at]
        now_overdue[name] = now_overdue.get(name, 0) + count
    rows = []
    for name in {*t[group], *now_overdue}:
        g = t[group].get(name, dict.fromkeys(GROUP_FIGURES, 0))
        rows.append({
            group: None if name == NONE else name, "opened": g["opened"],
            "closed": g["closed"], "overdue_now": now_overdue.get(name, 0),
            "clocks_met": g["met"], "clocks_breached": g["breached"],
            "breach_pct": _pct(g["breached"], g["met"] + g["breached"])
            if g["met"] + g["breached"] else None,
            "resolved": g["resolved"], "resolution_mean_s": _mean(g["resolution_sum"],
                                                                   g["resolved"])})
    return sorted(rows, key=lambda r: (-r["opened"], r[group] is None, r[group] or ""))


def _pct(part, whole) -> float | None:
    return round(100.0 * float(part or 0) / float(whole), 1) if whole else None
