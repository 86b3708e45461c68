"""Idempotency keys kept in the read model: how long they live, and the housekeeping
that forgets expired ones (the web layer's `Idempotency-Key` handling uses them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete

from db.models import IdempotencyKey

KEY_LIFETIME = timedelta(hours=24)


def purge_expired(sessions, now: datetime | None = None) -> int:
    """Delete keys older than 24 h; housekeeping for the scheduler."""
    cutoff = (now or datetime.now(UTC)) - KEY_LIFETIME
    with sessions.begin() as session:
        result = session.execute(delete(IdempotencyKey).where(
            IdempotencyKey.created_at < cutoff))
        return int(result.rowcount or 0)
