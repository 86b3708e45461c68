"""Cases whose projection write failed for good: recorded by the projection activity,
listed for operators (reconciliation, `aftersales cases failed`), cleared when the case
is written again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import ProjectionFailure

MAX_ERROR = 500


def describe(err: BaseException) -> str:
    """The error's type and message, storable and readable: the message may quote the
    very character that could not be written, so controls and surrogates are escaped."""
    text = f"{type(err).__name__}: {err}"
    safe = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return safe[:MAX_ERROR]


def record_failure(sessions: sessionmaker[Session], case_id: str, version: int, error: str,
                   now: datetime) -> None:
    """Note (or count again) the case's failed write, in a transaction of its own."""
    with sessions.begin() as session:
        row = session.get(ProjectionFailure, case_id)
        if row is None:
            session.add(ProjectionFailure(case_id=case_id, version=version, error=error,
                                          failures=1, first_failed_at=now, failed_at=now))
        else:
            row.version, row.error, row.failed_at = version, error, now
            row.failures += 1


def clear_failure(session: Session, case_id: str) -> bool:
    """The case was written again: no longer listed. Returns whether it was."""
    result = session.execute(delete(ProjectionFailure).where(
        ProjectionFailure.case_id == case_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def failed_cases(session: Session) -> list[ProjectionFailure]:
    """Every listed case, the oldest failure first."""
    return list(session.scalars(select(ProjectionFailure).order_by(
        ProjectionFailure.first_failed_at, ProjectionFailure.case_id)))
