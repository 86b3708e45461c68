"""Writes of the case projection and the reads that the API and pages make."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Select,
    Table,
    and_,
    bindparam,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db import search
from db.links import LinkSeal, stored, without_link
from db.models import (
    FAR_FUTURE,
    Case,
    CaseAttachment,
    CaseClock,
    CaseTag,
    OutboxMessage,
    TimelineEvent,
    TriageFeedback,
)
from workflows.case.contracts import Projection
from workflows.case.vocabulary import OPEN_STAGES

CASE_COLUMNS = (
    "kind", "channel", "stage", "status", "priority", "assignee", "order_id",
    "stage_due_at", "resolution_due_at", "overdue", "closed_at", "repeat_of", "rating",
    "at_risk_at", "team",
)


def waybills(snap) -> list[str]:
    """The waybill numbers of a case: its courier parcels and the order's delivery."""
    return [*snap.parcels, *([snap.order.waybill_no] if snap.order else [])]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def jsonable(value: Any) -> Any:
    """Dataclasses and datetimes as JSON values (datetimes as ISO 8601 in UTC)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return as_utc(value).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def apply_projection(session: Session, projection: Projection,
                     replace_version: int | None = None, links: LinkSeal | None = None
                     ) -> bool:
    """Upsert the case row unless it is already at a newer version, or at this version
    written as late or later, and add the timeline events and outbox rows not yet
    there. Returns whether the row moved.

    With `replace_version` (reconciliation), the row is overwritten only if it is still
    at that version, whatever the snapshot's: a repair, not a step forward, and one that
    loses to any live write that lands first."""
    snap = projection.snapshot
    values = {name: getattr(snap, name) for name in CASE_COLUMNS}
    folded = search.normalise(snap.customer.name)
    values.update(
        version=snap.version,
        customer_id=snap.customer.id,
        customer_name=snap.customer.name,
        customer_name_folded=folded,
        customer_phone=snap.customer.phone,
        customer_phone_digits=search.phone_digits(snap.customer.phone) or None,
        created_at=snap.created_at,
        updated_at=snap.updated_at,
        status_token_hash=token_hash(snap.status_token),
        due_key=snap.stage_due_at or FAR_FUTURE,
        **report_facts(snap),
        triage=jsonable(snap.triage) if snap.triage else None,
        escalation_risk=bool(snap.triage and snap.triage.escalation_risk.value),
        store=snap.store or None,
        data=_public_data(snap, links),
    )
    # One conditional UPDATE: atomic on SQLite and PostgreSQL alike, so a slower,
    # older write can never land after a newer one (a read-then-write could).
    # Core statements with bound parameters, not ORM objects: the projection runs on
    # every workflow change, and building an ORM statement with forty literal values
    # cost more CPU than the database did (docs/benchmarks.md).
    cases = _table(Case)
    params = {**values, "p_id": snap.case_id, "p_folded": folded,
              "p_updated_at": snap.updated_at,
              "p_version": snap.version if replace_version is None else replace_version}
    # First on the assumption that the customer's name, as the search index folds it,
    # is as stored, which it nearly always is: then the index needs nothing. If that
    # moves no row, the same write without it tells a changed name from an older
    # version or a new case. A row whose folded name is missing (written by a worker
    # older than migration 0007) is indexed by its next write.
    result: CursorResult = session.execute(  # type: ignore[assignment]
        _UPDATE_SAME_NAME if replace_version is None else _REPAIR_SAME_NAME, params)
    moved = bool(result.rowcount)
    name_changed = False
    if not moved:
        result = session.execute(  # type: ignore[assignment]
            _UPDATE_CASE if replace_version is None else _REPAIR_CASE, params)
        moved = name_changed = bool(result.rowcount)
    if not moved and replace_version is None and session.scalar(
            select(cases.c.version).where(cases.c.id == snap.case_id)) is None:
        session.execute(insert(cases), {"id": snap.case_id, **values})
        moved = name_changed = True
    if name_changed:
        search.index_name(session, snap.case_id, snap.customer.name)
    if moved:
        search.index_waybills(session, snap.case_id, waybills(snap))
    if moved:
        clocks = _table(CaseClock)
        session.execute(delete(clocks).where(clocks.c.case_id == snap.case_id))
        if snap.clocks:
            session.execute(insert(clocks), [
                {"case_id": snap.case_id, "idx": n, "name": c.name, "state": c.state,
                 "target_s": c.target, "used_s": c.used}
                for n, c in enumerate(snap.clocks)])
        # Every write that moves the row, like the clocks: writes of one case can land
        # out of order, and only the newest one counts.
        _replace_tags(session, snap.case_id, snap.tags)
        _replace_attachments(session, snap.case_id, snap.attachments)

    if projection.events:
        events = _table(TimelineEvent)
        seqs = [e.seq for e in projection.events]
        present = set(session.scalars(select(events.c.seq).where(
            events.c.case_id == snap.case_id, events.c.seq.in_(seqs))))
        new = [e for e in projection.events if e.seq not in present]
        if new:
            session.execute(insert(events), [
                {"case_id": snap.case_id, "seq": e.seq, "at": e.at, "actor": e.actor,
                 "type": e.type, "stage_before": e.stage_before,
                 "stage_after": e.stage_after, "detail": jsonable(e.detail)}
                for e in new])
        for event in new:
            if event.type in FEEDBACK_EVENTS:
                record_triage_feedback(session, snap, event)
    if projection.outbox:
        outbox = _table(OutboxMessage)
        keys = [m.key for m in projection.outbox]
        present_keys = set(session.scalars(
            select(outbox.c.key).where(outbox.c.key.in_(keys))))
        rows = [{"key": m.key, "case_id": snap.case_id, "created_at": m.at,
                 "channel": m.channel, "recipient": m.recipient, "template": m.template,
                 "payload": without_link(jsonable(m.payload))}
                for m in projection.outbox if m.key not in present_keys]
        if rows:
            session.execute(insert(outbox), rows)
    return moved


def _replace_tags(session: Session, case_id: str, tags: list[str]) -> None:
    table = _table(CaseTag)
    session.execute(delete(table).where(table.c.case_id == case_id))
    if tags:
        session.execute(insert(table), [{"case_id": case_id, "tag": t} for t in tags])


def _replace_attachments(session: Session, case_id: str, attachments: list) -> None:
    table = _table(CaseAttachment)
    session.execute(delete(table).where(table.c.case_id == case_id))
    if attachments:
        session.execute(insert(table), [
            {"case_id": case_id, "id": a.id, "sha256": a.sha256,
             "thumbnail_sha256": a.thumbnail_sha256} for a in attachments])


def referenced_blobs(session: Session) -> set[str]:
    """Every blob (file or thumbnail) a case still references: the sweep keeps these."""
    table = _table(CaseAttachment)
    found: set[str] = set()
    for sha, thumb in session.execute(select(table.c.sha256, table.c.thumbnail_sha256)):
        found.add(sha)
        if thumb:
            found.add(thumb)
    return found


def _table(model) -> Table:
    return model.__table__


def _case_update(version_test, same_name: bool):
    """UPDATE cases SET <every projected column> WHERE id = :p_id AND <version_test>
    [AND customer_name_folded = :p_folded]; the SET clause comes from the parameters'
    keys, so one compiled statement serves every write."""
    cases = _table(Case)
    conditions = [cases.c.id == bindparam("p_id"),
                  version_test(cases, bindparam("p_version"))]
    if same_name:
        conditions.append(cases.c.customer_name_folded == bindparam("p_folded"))
    return update(cases).where(*conditions).execution_options(synchronize_session=False)


def _newer(cases, version):
    # A newer version, or the same version written later: when a workflow task times
    # out after its projection was written, the retried task flushes again under the
    # same version with what it found then (a breach handled late, say); that write
    # must replace the abandoned attempt's. workflow.now() never goes back, so
    # updated_at orders the two, and a straggling write of the abandoned attempt loses.
    return or_(cases.c.version < version,
               and_(cases.c.version == version,
                    cases.c.updated_at < bindparam("p_updated_at")))


def _same(cases, version):
    return cases.c.version == version


_UPDATE_SAME_NAME = _case_update(_newer, same_name=True)
_UPDATE_CASE = _case_update(_newer, same_name=False)
_REPAIR_SAME_NAME = _case_update(_same, same_name=True)
_REPAIR_CASE = _case_update(_same, same_name=False)


# The events at which a handler decides what triage suggested: the kind at confirm,
# the root cause at analyze.
FEEDBACK_EVENTS = ("confirmed", "analyzed")


def record_triage_feedback(session: Session, snap, event) -> None:
    """Keep the handler's kind or root cause next to the suggestion, as a training pair
    for the next triage model. Called once per new event, so a retried write changes
    nothing."""
    row = session.get(TriageFeedback, snap.case_id)
    if row is None:
        triage = snap.triage
        row = TriageFeedback(
            case_id=snap.case_id, description=snap.description,
            suggested_kind=triage.kind.value if triage else None,
            suggested_root_cause=triage.root_cause.value if triage else None,
            model_version=triage.model_version if triage else None,
            decided_by=event.actor, updated_at=event.at)
        session.add(row)
    if event.type == "confirmed":
        row.kind = snap.kind
    else:
        row.root_cause = event.detail.get("root_cause")
        row.kind = row.kind or snap.kind
    row.decided_by = event.actor
    row.updated_at = event.at


FCR_WINDOW = timedelta(days=7)


def report_facts(snap) -> dict:
    """The columns the reports aggregate, derived from the snapshot."""
    def last_stopped(name: str) -> float | None:
        stopped = [c.used for c in snap.clocks
                   if c.name == name and c.state in ("met", "breached")]
        return stopped[-1] if stopped else None

    resolution = snap.resolution if snap.resolution and snap.resolution.state == "done" \
        else None
    analysis = snap.analysis or {}
    return {
        "confirmed_at": snap.confirmed_at,
        "resolved_at": snap.resolved_at,
        "fcr_until": snap.resolved_at + FCR_WINDOW if snap.resolved_at else None,
        "first_response_s": (snap.confirmed_at - snap.created_at).total_seconds()
        if snap.confirmed_at else None,
        "first_response_work_s": last_stopped("confirm") if snap.confirmed_at else None,
        "resolution_s": (snap.resolved_at - snap.created_at).total_seconds()
        if snap.resolved_at else None,
        "resolution_work_s": last_stopped("resolution") if snap.resolved_at else None,
        "root_cause": analysis.get("root_cause"),
        "responsible_party": analysis.get("responsible_party"),
        "resolution_type": resolution.type if resolution else None,
        "remedy_types": remedy_types(resolution) if resolution else None,
        "refunded": Decimal(snap.refunded or "0"),
        "compensation_points": snap.compensation_points,
        "coupon_value": coupon_value(resolution) if resolution else Decimal("0"),
        "reopen_count": snap.reopen_count,
        "fraud_review": snap.fraud_review,
        "instant_refund_at": snap.instant_refund_at,
        "recovery_tasks": len(snap.recovery_tasks),
        "recovery_amount": sum((Decimal(t.get("amount") or "0") for t in snap.recovery_tasks),
                               Decimal(0)),
    }


def coupon_value(resolution) -> Decimal:
    """The money value of the coupons a resolution grants: the amount of each
    compensation (alone or among several remedies) that carries a coupon code."""
    return sum((Decimal(r.amount or "0") for r in resolution.remedies or [resolution]
                if r.type == "compensation" and r.coupon_code), Decimal("0"))


def remedy_types(resolution) -> str:
    """A resolution's remedy types as the `remedy_types` column keeps them: each between
    spaces, so `LIKE '% refund %'` finds refunds and not `return_refund`."""
    types = [r.type for r in resolution.remedies] or [resolution.type]
    return " " + " ".join(types) + " "


def write_projection(session_factory, projection: Projection,
                     links: LinkSeal | None = None) -> bool:
    """One transaction per projection; a lost insert race is retried as an update. The
    status link is stored sealed with `links` (without, it is not stored)."""
    for attempt in range(3):
        try:
            with session_factory.begin() as session:
                return apply_projection(session, projection, links=links)
        except IntegrityError:
            if attempt == 2:
                raise
    return False


def _public_data(snap, links: LinkSeal | None) -> dict:
    data = jsonable(snap)
    # The token is a credential: only its hash is stored (in its own column), and the
    # link that carries it only sealed (db/links.py).
    data.pop("status_token", None)
    return stored(data, snap.case_id, links)


# ---------------------------------------------------------------- reads


def get_case(session: Session, case_id: str) -> Case | None:
    return session.get(Case, case_id)


def get_case_by_token(session: Session, token: str) -> Case | None:
    return session.scalar(select(Case).where(Case.status_token_hash == token_hash(token)))


def timeline(session: Session, case_id: str) -> list[TimelineEvent]:
    return list(session.scalars(
        select(TimelineEvent).where(TimelineEvent.case_id == case_id)
        .order_by(TimelineEvent.seq)))


def open_case_on_order(session: Session, order_id: str, kind: str) -> Case | None:
    """The oldest open case of this kind on this order, if any."""
    if not order_id:
        return None  # cases without an order are not repeats of one another
    return session.scalar(
        select(Case).where(Case.order_id == order_id, Case.kind == kind,
                           Case.stage.not_in(("closed", "cancelled")))
        .order_by(Case.created_at).limit(1))


@dataclass(frozen=True)
class CaseFilter:
    """What a case list is narrowed to; every field optional."""

    stage: str | None = None
    kind: str | None = None
    priority: str | None = None
    channel: str | None = None
    assignee: str | None = None
    overdue: bool | None = None
    escalation_risk: bool | None = None
    fraud_review: bool | None = None
    recovery: bool | None = None
    q: str | None = None
    tag: str | None = None
    team: str | None = None
    store: str | None = None
    # The desk's queue: cases of these teams or of none (empty: every team).
    queue_of: tuple[str, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    # For the pages: only cases still open, only unassigned ones, one status, and
    # cases not yet overdue whose 75 % mark has passed by this instant.
    open_only: bool = False
    unassigned: bool = False
    status: str | None = None
    at_risk_by: datetime | None = None


# Sort orders: the columns of each, all ascending except `created` (newest first).
# Each ends with the case id, so the order is total and keyset pages are stable.
SORTS = {
    "due": (Case.due_key, Case.id),
    "created": (Case.created_at, Case.id),
    "priority": (Case.priority, Case.due_key, Case.id),
}
DESCENDING = {"created"}


def related_cases(session: Session, case: Case, limit: int = 20) -> tuple[list[Case],
                                                                         list[Case]]:
    """The customer's other cases and this order's other cases, newest first: what a
    handler reads before asking the customer anything twice."""
    def others(condition) -> list[Case]:
        return list(session.scalars(select(Case).where(condition, Case.id != case.id)
                                    .order_by(Case.created_at.desc()).limit(limit)))

    return (others(Case.customer_id == case.customer_id),
            others(Case.order_id == case.order_id) if case.order_id else [])


# The most cases the customer page lists (a customer with more is a case for the API).
CUSTOMER_CASES = 500


def customer_cases(session: Session, customer_id: str) -> list[Case]:
    """Every case of one customer (by the customer id the cases carry), newest first."""
    return list(session.scalars(select(Case).where(Case.customer_id == customer_id)
                                .order_by(Case.created_at.desc(), Case.id)
                                .limit(CUSTOMER_CASES)))


def open_cases_on_order(session: Session, order_id: str) -> list[str]:
    """Ids of the open cases of any kind on this order, oldest first."""
    if not order_id:
        return []
    return list(session.scalars(
        select(Case.id).where(Case.order_id == order_id,
                              Case.stage.not_in(("closed", "cancelled")))
        .order_by(Case.created_at)))


def returned_quantities(session: Session, order_id: str) -> dict[str, int]:
    """SKU -> quantity already sent back on this order by resolved returns and exchanges."""
    returned: dict[str, int] = {}
    for data in session.scalars(select(Case.data).where(Case.order_id == order_id)):
        resolution = data.get("resolution") or {}
        if resolution.get("state") != "done":
            continue
        for remedy in resolution.get("remedies") or [resolution]:
            if remedy.get("type") not in ("return_refund", "exchange"):
                continue
            for item in remedy.get("items", []):
                returned[item["sku"]] = returned.get(item["sku"], 0) + int(item["quantity"])
    return returned


def recent_cases(session: Session, customer_id: str, order_id: str,
                 since: datetime) -> list[str]:
    """Ids of cases opened since `since` by this customer or on this order, newest first."""
    return list(session.scalars(
        select(Case.id).where(or_(Case.customer_id == customer_id,
                                  Case.order_id == order_id if order_id else false()),
                              Case.created_at >= since)
        .order_by(Case.created_at.desc()).limit(20)))


def case_query(filters: CaseFilter) -> Select:
    stmt = select(Case)
    for name in ("stage", "kind", "priority", "channel", "assignee", "status", "team",
                 "store"):
        value = getattr(filters, name)
        if value:
            stmt = stmt.where(getattr(Case, name) == value)
    if filters.overdue is not None:
        stmt = stmt.where(Case.overdue.is_(filters.overdue))
    if filters.open_only:
        stmt = stmt.where(Case.stage.in_(OPEN_STAGES))
    if filters.unassigned:
        stmt = stmt.where(Case.assignee.is_(None))
    if filters.queue_of:
        stmt = stmt.where(or_(Case.team.in_(filters.queue_of), Case.team.is_(None)))
    if filters.at_risk_by is not None:
        stmt = stmt.where(Case.at_risk_at <= filters.at_risk_by, Case.overdue.is_(False),
                          Case.stage.in_(OPEN_STAGES))
    if filters.escalation_risk is not None:
        stmt = stmt.where(Case.escalation_risk.is_(filters.escalation_risk))
    if filters.fraud_review is not None:
        stmt = stmt.where(Case.fraud_review.is_(filters.fraud_review))
    if filters.recovery is not None:
        stmt = stmt.where((Case.recovery_tasks > 0) if filters.recovery
                          else (Case.recovery_tasks == 0))
    if filters.created_from:
        stmt = stmt.where(Case.created_at >= filters.created_from)
    if filters.created_to:
        stmt = stmt.where(Case.created_at < filters.created_to)
    if filters.tag:
        stmt = stmt.where(Case.id.in_(select(CaseTag.case_id).where(CaseTag.tag == filters.tag)))
    if filters.q:
        # Case id, order id or phone exactly, or part of the name (db/search.py).
        stmt = stmt.where(Case.id.in_(search.matching_case_ids(filters.q)))
    return stmt


def list_cases(
    session: Session,
    filters: CaseFilter,
    sort: str = "due",
    per_page: int = 50,
    page: int | None = None,
    after: list | None = None,
) -> tuple[list[Case], int, list | None]:
    """One page of cases and the total; `after` is the keyset of the previous page's
    last row (stable while cases are added), `page` a plain page number.

    Returns the rows, the total count and the keyset to continue after, if any.
    """
    base = case_query(filters)
    total = session.scalar(select(func.count()).select_from(base.subquery()))
    stmt = _in_order(base, sort, after)
    if after is None and page is not None:
        stmt = stmt.offset((page - 1) * per_page)
    rows = list(session.scalars(stmt.limit(per_page + 1)))
    more = len(rows) > per_page
    rows = rows[:per_page]
    next_key = sort_key(rows[-1], sort) if more and rows else None
    return rows, int(total or 0), next_key


def sort_key(row: Case, sort: str) -> list:
    """The row's values of the sort order's columns: the keyset to continue after it."""
    return [getattr(row, c.key) for c in SORTS[sort]]


def _in_order(base: Select, sort: str, after: list | None) -> Select:
    """`base` in the sort order, from the row after the keyset `after` (if any)."""
    columns = SORTS[sort]
    descending = sort in DESCENDING
    stmt = base.order_by(*(c.desc() if descending else c for c in columns))
    if after is not None:
        key = tuple_(*columns)
        values = tuple_(*(literal(v, c.type) for v, c in zip(after, columns, strict=True)))
        stmt = stmt.where(key < values if descending else key > values)
    return stmt


def each_batch(sessions: sessionmaker[Session], filters: CaseFilter, sort: str = "due",
               batch: int = 500) -> Iterator[list[Case]]:
    """Every matching case in the sort order, `batch` at a time: each batch read by
    keyset in a short session of its own, so an export of 100,000 cases holds one batch
    in memory and no transaction open while the client reads. The rows are detached,
    with their columns and `data` loaded."""
    after = None
    base = case_query(filters)
    while True:
        with sessions() as session:
            rows = list(session.scalars(_in_order(base, sort, after).limit(batch)))
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        after = sort_key(rows[-1], sort)


def unsent_outbox(session: Session, limit: int = 100) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
                                .order_by(OutboxMessage.created_at).limit(limit)))
