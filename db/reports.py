"""The supervisor's KPIs over a period, as SQL aggregates over the read model.

Every figure is an aggregate query filtered by the same conditions; nothing loads the
cases into Python. The definitions are in docs/reports.md; how the closed days come
from the KPI snapshots, in its "KPI snapshots and charts".
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    DateTime,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
)
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
    its closed days plus the rest counted live (`period_tally`), the p90s found
    through the tally's histograms, and the cases overdue now counted live. Equal to
    `live_summary`."""
    return report(session, f, period_tally(session, f, now or datetime.now(UTC)))


def live_summary(session: Session, f: ReportFilter) -> dict:
    """The same report with every figure counted from the cases (the p90s by a
    percentile query over the period's cases)."""
    return report(session, f, tally(session, f), direct_p90s(session, f))


def report(session: Session, f: ReportFilter, t: dict,
           p90: dict[str, float | None] | None = None) -> dict:
    """The report of docs/reports.md from the period's tally `t` and the p90 of each
    duration (default: through the tally's histograms, `histogram_p90s`)."""
    durations = t["durations"]
    p90 = p90 if p90 is not None else histogram_p90s(session, f, t)

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


def _histogram_edges() -> tuple[int, ...]:
    """Whole seconds from 1 s to ten years, each at most 10 % above the one before."""
    edges, edge = [], 1
    while edge < 10 * 366 * 86400:
        edges.append(edge)
        edge = max(edge + 1, math.ceil(edge * 1.1))
    return tuple(edges)


# The buckets of the duration histograms a tally keeps (`hist`): bucket i holds the
# durations d with HISTOGRAM_EDGES[i - 1] <= d < HISTOGRAM_EDGES[i] (bucket 0 those
# under the first edge, the last those at or above the last edge). The edges are whole
# numbers, so the database and Python compare a duration with them alike.
HISTOGRAM_EDGES = _histogram_edges()
# The edges as PostgreSQL's `width_bucket` takes them.
EDGES_ARRAY: Any = literal_column(
    f"ARRAY[{','.join(map(str, HISTOGRAM_EDGES))}]::double precision[]")
PERCENTILE = 0.9


def histogram_bucket(value: float | None) -> int | None:
    """The histogram bucket of a duration (the database's `width_bucket`)."""
    return None if value is None else bisect.bisect_right(HISTOGRAM_EDGES, value)


def empty_tally() -> dict:
    return {**dict.fromkeys(COUNTS, 0), **dict.fromkeys(MONEY, "0.00"),
            "durations": {key: [0, 0.0] for key in DURATIONS},
            "hist": {key: {} for key in DURATIONS},
            "clocks": {}, "root_causes": {}, "parties": {}, "remedies": {}, "team": {},
            "store": {}}


def sum_tallies(parts: list[dict]) -> dict:
    """The tally of disjoint sets of cases, from theirs. A snapshot taken before a
    figure existed holds none of it: zero; one taken before the histograms has none,
    and neither has the sum (its p90s are counted from the cases)."""
    out = empty_tally()
    money = dict.fromkeys(MONEY, Decimal(0))
    for part in parts:
        for key in COUNTS:
            out[key] += part.get(key, 0)
        for key in MONEY:
            money[key] += Decimal(part.get(key, "0"))
        for key in DURATIONS:
            total = out["durations"][key]
            total[0] += part["durations"][key][0]
            total[1] += part["durations"][key][1]
        if out["hist"] is not None:
            if part.get("hist") is None:
                out["hist"] = None
            else:
                for key in DURATIONS:
                    into = out["hist"][key]
                    for bucket, count in part["hist"][key].items():
                        into[bucket] = into.get(bucket, 0) + count
        for key in ("clocks", "root_causes", "parties", "remedies", "team", "store"):
            merged = out[key]
            for name, value in part.get(key, {}).items():
                if name not in merged:
                    merged[name] = (dict(value) if isinstance(value, dict)
                                    else list(value) if isinstance(value, list) else value)
                elif isinstance(value, int):
                    merged[name] += value
                elif isinstance(value, list):
                    merged[name] = [x + y for x, y in zip(merged[name], value, strict=True)]
                else:
                    for figure in GROUP_FIGURES:
                        merged[name][figure] += value[figure]
    for key in MONEY:
        out[key] = f"{money[key]:.2f}"
    return out


def _settled_with(kind: str):
    """The case's completed resolution included a remedy of type `kind` (the
    `remedy_types` column lists them, space-delimited)."""
    return Case.remedy_types.like(f"% {kind} %")


def _sum(condition):
    return func.sum(case((condition, 1), else_=0))


Span = tuple[datetime, datetime]
# The figures a tally reads from the cases, built once: `_CASE_COUNTS` in this order,
# then the count and sum of each duration, the cases settled with each remedy, and the
# money (MONEY). `fcr_now` is the tally's `now`.
_CASE_GROUPS = (Case.team, Case.store, Case.root_cause, Case.responsible_party)
_CASE_COUNTS = ("opened", "resolved", "reopened", "ratings", "satisfied", "rating_sum",
                "refunds", "compensations", "points", "fcr_open", "fraud_review",
                "instant_refunds", "recovery_tasks")
_CASE_FIGURES = (
    func.count(), func.count(Case.resolved_at),
    _sum((Case.resolved_at.is_not(None)) & (Case.reopen_count > 0)),
    func.count(Case.rating), _sum(Case.rating >= 4), func.sum(Case.rating),
    _sum(Case.refunded > 0), _sum(_settled_with("compensation")),
    func.sum(Case.compensation_points),
    _sum(Case.resolved_at.is_not(None)
         & (Case.fcr_until > bindparam("fcr_now", type_=DateTime(timezone=True)))),
    _sum(Case.fraud_review.is_(True)), func.count(Case.instant_refund_at),
    func.sum(Case.recovery_tasks),
    *(aggregate(getattr(Case, key)) for key in DURATIONS
      for aggregate in (func.count, func.sum)),
    *(_sum(_settled_with(kind)) for kind in RESOLUTION_TYPES),
    func.sum(Case.refunded), func.sum(Case.coupon_value), func.sum(Case.recovery_amount))
# Built once (SQLAlchemy sets up an alias's or a subquery's columns on first use): the
# numbers of the durations, to read each case once per duration, and that duration.
_WHICH = union_all(*(select(literal(n).label("n")) for n in range(len(DURATIONS)))).subquery()
_DURATION = case(*((_WHICH.c.n == n, getattr(Case, key)) for n, key in enumerate(DURATIONS)))
_REPEAT = aliased(Case, name="repeat")
_OTHER = aliased(Case, name="other")


def within(column, spans: list[Span]):
    """`column` falls in one of the [start, end) `spans`."""
    ranges = [and_(column >= start, column < end) for start, end in spans]
    return ranges[0] if len(ranges) == 1 else or_(*ranges)


def tally(session: Session, f: ReportFilter, now: datetime | None = None,
          spans: list[Span] | None = None) -> dict:
    """The additive figures of the cases opened (and of those closed) in `f`'s period
    that match its filters, as SQL aggregates; with `spans`, in those disjoint
    stretches instead of the period (one set of queries for all). `fcr_open` counts
    resolved cases whose repeat window is still open at `now`: their first-contact
    figure may still fall. `hist` holds each duration's histogram (HISTOGRAM_EDGES)."""
    spans = spans or [(f.start, f.end)]
    filters = f.conditions()[2:]
    opened = [within(Case.created_at, spans), *filters]
    now = now or datetime.now(UTC)
    t = empty_tally()

    def group(team, store) -> list[dict]:
        return [t[name].setdefault(NONE if value is None else value,
                                   dict.fromkeys(GROUP_FIGURES, 0))
                for name, value in (("team", team), ("store", store))]

    # One pass over the cases, by team, store, root cause and party; summed here.
    counts, money = _CASE_COUNTS, dict.fromkeys(MONEY, Decimal(0))
    for team, store, cause, party, *row in session.execute(
            select(*_CASE_GROUPS, *_CASE_FIGURES).where(*opened).group_by(*_CASE_GROUPS),
            {"fcr_now": now}):
        for key, value in zip(counts, row, strict=False):
            t[key] += int(value or 0)
        at = len(counts)
        for key in DURATIONS:
            t["durations"][key][0] += int(row[at] or 0)
            t["durations"][key][1] += float(row[at + 1] or 0)
            at += 2
        for kind in RESOLUTION_TYPES:
            if row[at]:
                t["remedies"][kind] = t["remedies"].get(kind, 0) + int(row[at])
            at += 1
        for key in money:
            money[key] += Decimal(str(row[at] or 0))
            at += 1
        for name, value in (("root_causes", cause), ("parties", party)):
            if value is not None:
                t[name][str(value)] = t[name].get(str(value), 0) + int(row[0])
        at = len(counts) + 2 * DURATIONS.index("resolution_s")
        resolved, resolution_sum = row[at], row[at + 1]
        for g in group(team, store):
            g["opened"] += int(row[0])
            g["resolved"] += int(resolved or 0)
            g["resolution_sum"] += float(resolution_sum or 0)
    for key, total in money.items():
        t[key] = f"{total:.2f}"
    t["first_contact"] = first_contact(session, opened, min(start for start, _ in spans))
    # The histograms, in one pass: each case once per duration.
    bucket_of = _bucket_expression(session)
    for n, bucket, count in session.execute(
            select(_WHICH.c.n, bucket_of(_DURATION), func.count())
            .select_from(Case).join(_WHICH, literal(True))
            .where(*opened, _DURATION.is_not(None))
            .group_by(_WHICH.c.n, bucket_of(_DURATION))):
        t["hist"][DURATIONS[n]][str(bucket)] = int(count)
    for team, store, name, met, breached in session.execute(
            select(Case.team, Case.store, CaseClock.name, _sum(CaseClock.state == "met"),
                   _sum(CaseClock.state == "breached"))
            .select_from(CaseClock).join(Case, Case.id == CaseClock.case_id)
            .where(*opened, CaseClock.state.in_(("met", "breached")))
            .group_by(Case.team, Case.store, CaseClock.name)):
        clock = t["clocks"].setdefault(name, [0, 0])
        clock[0] += int(met or 0)
        clock[1] += int(breached or 0)
        for g in group(team, store):
            g["met"] += int(met or 0)
            g["breached"] += int(breached or 0)
    for team, store, count in session.execute(
            select(Case.team, Case.store, func.count())
            .where(within(Case.closed_at, spans), *filters, Case.stage == "closed")
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
    filtered report) is counted live, one query set for all the stretches of a part.
    The sum is exactly the live tally of the period."""
    edges = edges or [f.start, f.end]
    fresh = {} if f.named() else fresh_snapshots(session, f.start,
                                                 min(f.end, day_start(now)))
    return [sum_tallies(_parts(session, replace(f, start=low, end=high), now, fresh))
            for low, high in itertools.pairwise(edges)]


def _parts(session: Session, f: ReportFilter, now: datetime, fresh: dict) -> list[dict]:
    """The tallies that make up `f`'s period: the fresh snapshots of its whole days,
    the live count of the stretches between them, and the first contacts that repeat
    cases opened since the snapshots took back."""
    parts, live = [], []
    recount: list[datetime] = []
    recheck: dict[str, list[datetime]] = {}
    cursor = f.start
    day = f.start if day_start(f.start) == f.start else day_start(f.start) + DAY
    while day + DAY <= f.end:
        figures = fresh.get(day)
        if figures is not None:
            if cursor < day:
                live.append((cursor, day))
            if figures["fcr_open"]:
                # A repeat case opened since the snapshot can take a first contact
                # back. The snapshot counted the first contacts as of a cutoff too:
                # those that a case opened at or after it took back are subtracted
                # below. A snapshot without that count has its day counted again.
                since = figures.get("fcr_since")
                if since is None:
                    figures = {**figures, "first_contact": 0}
                    recount.append(day)
                else:
                    figures = {**figures, "first_contact": since["first_contact"]}
                    recheck.setdefault(since["cutoff"], []).append(day)
            parts.append(figures)
            cursor = day + DAY
        day += DAY
    if cursor < f.end:
        live.append((cursor, f.end))
    if live:
        parts.append(tally(session, f, now, spans=live))
    if recount:
        part = empty_tally()
        part["first_contact"] = first_contact(
            session, [within(Case.created_at, _runs(recount))], recount[0])
        parts.append(part)
    for cutoff, days in recheck.items():
        part = empty_tally()
        part["first_contact"] = -taken_back(session, _runs(days),
                                            as_utc(datetime.fromisoformat(cutoff)))
        parts.append(part)
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
        # The minimum of an expression, not of the column: SQLite would walk
        # `ix_cases_created` for it, checking every case; the few changed since are
        # found on `ix_cases_updated`.
        earliest = session.scalar(select(
            func.min(func.coalesce(Case.created_at, Case.created_at))).where(
            Case.updated_at > taken_at - SNAPSHOT_MARGIN))
        changed[taken_at] = as_utc(earliest) if earliest is not None else None
    out = {}
    for row in rows:
        day, taken_at = as_utc(row.day), as_utc(row.taken_at)
        earliest = changed[taken_at]
        if taken_at >= day + DAY and (earliest is None or earliest >= day + DAY):
            out[day] = row.figures
    return out


def first_contact(session: Session, conditions: list, since: datetime,
                  before: datetime | None = None) -> int:
    """Resolved cases among `conditions` (opened at or after `since`) never reopened
    and with no other case on the same order opened within their repeat window (with
    `before`: no other case opened before then within it)."""
    return int(session.scalar(select(func.count()).select_from(Case).where(
        *conditions, Case.resolved_at.is_not(None), Case.reopen_count == 0,
        ~_repeated(since, before))) or 0)


def _repeated(since: datetime, before: datetime | None = None):
    """Another case on the same order as `Case` was opened in its repeat window (and
    before `before`)."""
    repeat = _REPEAT
    return exists().where(
        repeat.order_id == Case.order_id, repeat.id != Case.id,
        # Implied (resolved after opened), stated so that the database reads only the
        # cases opened since.
        repeat.created_at >= since,
        repeat.created_at >= Case.resolved_at, repeat.created_at < Case.fcr_until,
        *([] if before is None else [repeat.created_at < before]))


def taken_back(session: Session, spans: list[Span], cutoff: datetime) -> int:
    """Cases opened in `spans` that were first contacts as of `cutoff` (no repeat case
    opened before it) but are no longer: a repeat case opened at or after it. Read
    from the cases opened since `cutoff` (a day or so of them), not the spans'."""
    since = min(start for start, _ in spans)
    repeat = _OTHER
    return int(session.scalar(
        select(func.count(func.distinct(Case.id))).select_from(repeat)
        .join(Case, and_(Case.order_id == repeat.order_id, Case.id != repeat.id))
        .where(repeat.created_at >= cutoff, within(Case.created_at, spans),
               Case.resolved_at.is_not(None), Case.reopen_count == 0,
               repeat.created_at >= Case.resolved_at, repeat.created_at < Case.fcr_until,
               ~_repeated(since, before=cutoff))) or 0)


def _mean(total: float, count: int) -> float | None:
    return round(total / count, 1) if count else None


def _overdue_now(session: Session, f: ReportFilter) -> dict[tuple, int]:
    """Open overdue cases per (team, store), whenever opened: the filters apply, the
    period does not."""
    return {(team, store): int(count) for team, store, count in session.execute(
        select(Case.team, Case.store, func.count())
        .where(*f.conditions()[2:], Case.stage.in_(OPEN_STAGES), Case.overdue.is_(True))
        .group_by(Case.team, Case.store))}


def _bucket_expression(session: Session):
    """The database's expression of `histogram_bucket`: PostgreSQL's `width_bucket`
    over the edges, SQLite's function of that name (db/engine.py)."""
    if session.get_bind().dialect.name == "postgresql":
        return lambda column: func.width_bucket(column, EDGES_ARRAY)
    return func.report_bucket



def histogram_p90s(session: Session, f: ReportFilter, t: dict) -> dict[str, float | None]:
    """The nearest-rank 90th percentile of each duration over `f`'s period, whose
    tally is `t`: its histogram names the bucket that holds the value and its rank
    there, and one query reads that value from the cases of the period in the bucket
    (through the index on the duration and `created_at`). Without histograms (a
    snapshot taken before them), `direct_p90s`."""
    hist = t.get("hist")
    if hist is None:
        return direct_p90s(session, f)
    out: dict[str, float | None] = dict.fromkeys(DURATIONS)
    reads = []
    for key in DURATIONS:
        count = t["durations"][key][0]
        if not count:
            continue
        rank, below = math.ceil(PERCENTILE * count), 0
        buckets = sorted((int(bucket), n) for bucket, n in hist[key].items() if n)
        if sum(n for _, n in buckets) != count:
            return direct_p90s(session, f)  # never expected: the sure way
        bucket = buckets[-1][0]
        for at, n in buckets:
            if below + n >= rank:
                bucket = at
                break
            below += n
        column = getattr(Case, key)
        where = [*f.conditions(), column.is_not(None)]
        if bucket > 0:
            where.append(column >= HISTOGRAM_EDGES[bucket - 1])
        if bucket < len(HISTOGRAM_EDGES):
            where.append(column < HISTOGRAM_EDGES[bucket])
        reads.append((key, select(column).where(*where).order_by(column)
                      .offset(rank - below - 1).limit(1).scalar_subquery()))
    if reads:
        row = session.execute(select(*(read for _, read in reads))).one()
        for (key, _), value in zip(reads, row, strict=True):
            if value is None:
                return direct_p90s(session, f)  # never expected: the sure way
            out[key] = round(float(value), 1)
    return out


def direct_p90s(session: Session, f: ReportFilter) -> dict[str, float | None]:
    """The nearest-rank 90th percentile of each duration over the period, counted from
    its cases. On PostgreSQL one `percentile_disc` query (the nearest rank by
    definition); elsewhere an ordered query per duration."""
    columns = [getattr(Case, key) for key in DURATIONS]
    if session.get_bind().dialect.name == "postgresql":
        row = session.execute(select(*(
            func.percentile_disc(PERCENTILE).within_group(column) for column in columns))
            .where(*f.conditions())).one()
        return {key: round(float(v), 1) if v is not None else None
                for key, v in zip(DURATIONS, row, strict=True)}
    out: dict[str, float | None] = {}
    for key, column in zip(DURATIONS, columns, strict=True):
        where = [*f.conditions(), column.is_not(None)]
        count = session.scalar(select(func.count(column)).where(*where)) or 0
        value = session.scalar(select(column).where(*where).order_by(column)
                               .offset(max(0, math.ceil(PERCENTILE * count) - 1)).limit(1)) \
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
