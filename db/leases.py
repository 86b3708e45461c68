"""Leases of the housekeeping jobs, so two schedulers started by mistake never run the
same run of a job twice.

Each job has a row; a run is named by a key (the hour of a digest, the day of a KPI
snapshot). A scheduler may start a run only by one conditional UPDATE that succeeds
when that run is not done and no other holder's lease is still valid; it marks the run
done when it finishes. A scheduler that dies mid-run leaves the lease to expire, and
the next scheduler runs it again (every job is idempotent, so that is safe).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.models import SchedulerLease


def claim_run(sessions: sessionmaker[Session], job: str, run_key: str, holder: str,
              now: datetime, ttl: timedelta) -> bool:
    """Take the lease for this run of `job`; False if it is done or held by another."""
    try:
        with sessions.begin() as session:
            if session.get(SchedulerLease, job) is None:
                session.add(SchedulerLease(job=job))
    except IntegrityError:
        pass  # the other scheduler added it first
    with sessions.begin() as session:
        result: CursorResult = session.execute(  # type: ignore[assignment]
            update(SchedulerLease)
            .where(SchedulerLease.job == job,
                   or_(SchedulerLease.done_key.is_(None), SchedulerLease.done_key != run_key),
                   or_(SchedulerLease.expires_at.is_(None), SchedulerLease.expires_at < now))
            .values(holder=holder, run_key=run_key, expires_at=now + ttl)
            .execution_options(synchronize_session=False))
        return bool(result.rowcount)


def finish_run(sessions: sessionmaker[Session], job: str, run_key: str, holder: str,
               now: datetime, done: bool = True) -> None:
    """Give the lease back; with `done`, this run is never started again."""
    values: dict = {"holder": None, "expires_at": None}
    if done:
        values.update(done_key=run_key, done_at=now)
    with sessions.begin() as session:
        session.execute(
            update(SchedulerLease)
            .where(SchedulerLease.job == job, SchedulerLease.holder == holder,
                   SchedulerLease.run_key == run_key)
            .values(**values).execution_options(synchronize_session=False))
