"""The rate limits' counts in the read model, so every web process and every instance
behind a load balancer counts together (web/ratelimit.py decides what to count).

A count belongs to a limiter and a key and lives for one window, which begins with
its first hit: `count` adds a hit with one INSERT … ON CONFLICT DO UPDATE (atomic on
SQLite and PostgreSQL), starting a new window when the old one has ended. Keys are
stored as their SHA-256. Rows whose window has ended are purged by the scheduler.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import case, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from db.cases import as_utc
from db.models import RateCounter


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def current(session: Session, limiter: str, key: str,
            now: datetime) -> tuple[int, datetime | None]:
    """(hits, when the window ends) of this key now; (0, None) when its window ended."""
    row = session.get(RateCounter, (limiter, digest(key)))
    if row is None or as_utc(row.window_ends_at) <= now:
        return 0, None
    return row.hits, as_utc(row.window_ends_at)


def count(session: Session, limiter: str, key: str, now: datetime,
          window: timedelta) -> None:
    """One more hit for this key: in its window, or the first of a new window."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(RateCounter).values(limiter=limiter, key=digest(key), hits=1,
                                           window_ends_at=now + window)
    ended = RateCounter.window_ends_at <= now
    session.execute(statement.on_conflict_do_update(
        index_elements=[RateCounter.limiter, RateCounter.key],
        # Both sides read the row as it was, so a window that ended starts afresh.
        set_={"hits": case((ended, 1), else_=RateCounter.hits + 1),
              "window_ends_at": case((ended, statement.excluded.window_ends_at),
                                     else_=RateCounter.window_ends_at)}))


def purge_ended(sessions: sessionmaker[Session], now: datetime) -> int:
    """Delete the counts whose window has ended; housekeeping for the scheduler."""
    with sessions.begin() as session:
        result = session.execute(delete(RateCounter).where(
            RateCounter.window_ends_at <= now))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
