"""The projection writer: the workflow's state into the read model."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from db.cases import write_projection
from db.links import LinkSeal
from workflows.case.contracts import (
    PROJECT_CASE,
    Projection,
)


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
        await asyncio.to_thread(write_projection, self._session_factory, projection,
                                self._links)
