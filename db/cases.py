"""Writes of the case projection and the reads that the API and pages make."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import Case, OutboxMessage, TimelineEvent
from workflows.domain import Projection

CASE_COLUMNS = (
    "kind", "channel", "stage", "status", "priority", "assignee", "order_id",
    "stage_due_at", "resolution_due_at", "overdue", "closed_at", "repeat_of", "rating",
)


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
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def apply_projection(session: Session, projection: Projection) -> bool:
    """Upsert the case row unless it is already at this version or newer, and add the
    timeline events and outbox rows not yet there. Returns whether the row moved."""
    snap = projection.snapshot
    values = {name: getattr(snap, name) for name in CASE_COLUMNS}
    values.update(
        version=snap.version,
        customer_id=snap.customer.id,
        customer_name=snap.customer.name,
        customer_phone=snap.customer.phone,
        created_at=snap.created_at,
        updated_at=snap.updated_at,
        status_token_hash=token_hash(snap.status_token),
        data=_public_data(snap),
    )
    row = session.get(Case, snap.case_id, with_for_update=True)
    moved = False
    if row is None:
        session.add(Case(id=snap.case_id, **values))
        session.flush()
        moved = True
    elif row.version < snap.version:
        for name, value in values.items():
            setattr(row, name, value)
        moved = True

    if projection.events:
        seqs = [e.seq for e in projection.events]
        present = set(session.scalars(select(TimelineEvent.seq).where(
            TimelineEvent.case_id == snap.case_id, TimelineEvent.seq.in_(seqs))))
        for event in projection.events:
            if event.seq not in present:
                session.add(TimelineEvent(
                    case_id=snap.case_id, seq=event.seq, at=event.at, actor=event.actor,
                    type=event.type, stage_before=event.stage_before,
                    stage_after=event.stage_after, detail=jsonable(event.detail),
                ))
    if projection.outbox:
        keys = [m.key for m in projection.outbox]
        present_keys = set(session.scalars(
            select(OutboxMessage.key).where(OutboxMessage.key.in_(keys))))
        for message in projection.outbox:
            if message.key not in present_keys:
                session.add(OutboxMessage(
                    key=message.key, case_id=snap.case_id, created_at=message.at,
                    channel=message.channel, recipient=message.recipient,
                    template=message.template, payload=jsonable(message.payload),
                ))
    return moved


def write_projection(session_factory, projection: Projection) -> bool:
    """One transaction per projection; a lost insert race is retried as an update."""
    for attempt in range(3):
        try:
            with session_factory.begin() as session:
                return apply_projection(session, projection)
        except IntegrityError:
            if attempt == 2:
                raise
    return False


def _public_data(snap) -> dict:
    data = jsonable(snap)
    # The token is a credential: only its hash is stored (in its own column).
    data.pop("status_token", None)
    return data


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
    return session.scalar(
        select(Case).where(Case.order_id == order_id, Case.kind == kind,
                           Case.stage.not_in(("closed", "cancelled")))
        .order_by(Case.created_at).limit(1))


def case_query(
    stage: str | None = None,
    kind: str | None = None,
    priority: str | None = None,
    assignee: str | None = None,
    overdue: bool | None = None,
    q: str | None = None,
    sort: str = "due",
) -> Select:
    stmt = select(Case)
    if stage:
        stmt = stmt.where(Case.stage == stage)
    if kind:
        stmt = stmt.where(Case.kind == kind)
    if priority:
        stmt = stmt.where(Case.priority == priority)
    if assignee:
        stmt = stmt.where(Case.assignee == assignee)
    if overdue is not None:
        stmt = stmt.where(Case.overdue.is_(overdue))
    if q:
        like = f"%{q}%"
        stmt = stmt.where(or_(Case.id == q, Case.order_id == q, Case.customer_phone == q,
                              Case.customer_name.like(like)))
    if sort == "created":
        order = (Case.created_at.desc(), Case.id)
    elif sort == "priority":
        order = (Case.priority, Case.stage_due_at.is_(None), Case.stage_due_at, Case.id)
    else:
        order = (Case.stage_due_at.is_(None), Case.stage_due_at, Case.id)
    return stmt.order_by(*order)


def list_cases(session: Session, page: int, per_page: int, **filters) -> tuple[list[Case], int]:
    stmt = case_query(**filters)
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = list(session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)))
    return rows, int(total or 0)


def unsent_outbox(session: Session, limit: int = 100) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
                                .order_by(OutboxMessage.created_at).limit(limit)))
