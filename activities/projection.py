"""The projection writer: the workflow's state into the read model."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.exc import DataError, StatementError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.cases import write_projection
from db.links import LinkSeal
from db.projection_failures import clear_failure, describe, record_failure
from workflows.case.contracts import (
    PROJECT_CASE,
    PROJECTION_REFUSED,
    Projection,
)

log = logging.getLogger("aftersales.projection")


def refused_for_good(err: BaseException) -> bool:
    """A write the database will refuse however often it is tried: data it cannot take
    (a NUL on PostgreSQL, text that cannot be encoded, a value too long), as against a
    lost connection or a lock, which the next attempt may not meet."""
    if isinstance(err, StatementError) and not isinstance(err, DataError):
        err = err.orig if isinstance(err.orig, BaseException) else err
    # psycopg2 and sqlite3 raise a bare ValueError (UnicodeEncodeError is one) before
    # the statement reaches the server; the server's own refusal is a DataError.
    return isinstance(err, DataError | ValueError)


class CaseProjector:
    """Writes case snapshots, timeline events and outbox rows in one transaction.

    Idempotent: the row carries the workflow's version and never moves backwards;
    events and outbox rows are keyed by case id and sequence.
    """

    def __init__(self, session_factory: sessionmaker[Session], links: LinkSeal) -> None:
        self._session_factory = session_factory
        self._links = links  # the status link is stored sealed (db/links.py)

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self._session_factory

    @activity.defn(name=PROJECT_CASE.name)
    async def project(self, projection: Projection) -> None:
        await asyncio.to_thread(self.write, projection)

    def write(self, projection: Projection) -> None:
        """Write the projection; a write refused for good is recorded, logged at ERROR
        and raised as a non-retryable `ProjectionRefused`, so it is not tried forever."""
        snap = projection.snapshot
        try:
            write_projection(self._session_factory, projection, self._links)
        except Exception as err:
            if not refused_for_good(err):
                raise  # retried by the workflow's policy
            error = describe(err)
            log.error("projection of case %s (version %d) refused for good: %s; the "
                      "case is listed for `aftersales cases reproject`", snap.case_id,
                      snap.version, error)
            try:
                record_failure(self._session_factory, snap.case_id, snap.version, error,
                               datetime.now(UTC))
            except Exception:
                log.exception("could not list case %s as failed", snap.case_id)
            raise ApplicationError(f"the read model refused case {snap.case_id}: {error}",
                                   type=PROJECTION_REFUSED, non_retryable=True) from None
        if projection.after_failure:
            with self._session_factory.begin() as session:
                if clear_failure(session, snap.case_id):
                    log.warning("case %s is written to the read model again", snap.case_id)
