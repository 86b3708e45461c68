"""The customer's standing an instant refund needs (docs/resolutions.md, "Instant
refund"), as the read model has it. The workflow cannot read the database; this activity
does, and the answer is recorded in the case's history, so a replay decides the same."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from db.standing import customer_standing
from workflows.case.contracts import READ_STANDING, CustomerStanding, StandingRequest


class StandingReader:
    """Reads a customer's instant refunds and open disputes from the read model."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    @activity.defn(name=READ_STANDING.name)
    async def read(self, request: StandingRequest) -> CustomerStanding:
        return await asyncio.to_thread(self._read, request)

    def _read(self, request: StandingRequest) -> CustomerStanding:
        with self._session_factory() as session:
            return customer_standing(session, request.customer_id, request.case_id,
                                     request.at)
