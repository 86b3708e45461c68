"""The audit log's rows: written by the web app (web/audit.py), sign-ins and the
command line; read by the admin page and the API, filtered and a page at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from db.models import AuditEntry

# An export stops here; a narrower filter gets the rest.
EXPORT_MAX = 50_000


@dataclass(frozen=True)
class AuditFilter:
    """Who (`actor`), which case, which action, and from (inclusive) to (exclusive)."""

    actor: str | None = None
    case_id: str | None = None
    action: str | None = None
    start: datetime | None = None
    end: datetime | None = None


def record(session: Session, *, actor: str, role: str, method: str, path: str,
           status: int, action: str | None = None, case_id: str | None = None,
           remote_addr: str | None = None, idempotency_key: str | None = None,
           at: datetime | None = None, detail: dict | None = None) -> None:
    """Append one entry (the table refuses changes to it); `detail` says what the
    request did beyond its path (a case-list export: its filters and rows)."""
    session.add(AuditEntry(
        at=at or datetime.now(UTC), actor=actor[:64], role=role[:16], method=method[:8],
        path=path[:300], case_id=case_id, action=action[:32] if action else None,
        status=status, idempotency_key=idempotency_key, remote_addr=remote_addr,
        detail=detail))


def _query(audit_filter: AuditFilter) -> Select:
    query = select(AuditEntry)
    if audit_filter.actor:
        query = query.where(AuditEntry.actor == audit_filter.actor)
    if audit_filter.case_id:
        query = query.where(AuditEntry.case_id == audit_filter.case_id)
    if audit_filter.action:
        query = query.where(AuditEntry.action == audit_filter.action)
    if audit_filter.start:
        query = query.where(AuditEntry.at >= audit_filter.start)
    if audit_filter.end:
        query = query.where(AuditEntry.at < audit_filter.end)
    return query


def find(session: Session, audit_filter: AuditFilter, page: int, per_page: int
         ) -> tuple[list[AuditEntry], int]:
    """One page of the matching entries, newest first, and how many match in all."""
    query = _query(audit_filter)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                           .limit(per_page).offset((page - 1) * per_page))
    return list(rows), total


def export(session: Session, audit_filter: AuditFilter, limit: int = EXPORT_MAX
           ) -> list[AuditEntry]:
    """The matching entries, oldest first, at most `limit`."""
    return list(session.scalars(_query(audit_filter)
                                .order_by(AuditEntry.at, AuditEntry.id).limit(limit)))


COLUMNS = ("at", "actor", "role", "method", "path", "case_id", "action", "status",
           "remote_addr", "detail")
