"""The rosters a case routed again needs: who is on duty in a team now, with their open
cases, as the read model has them (docs/teams.md). The workflow cannot read the database;
this activity does, and the answer is recorded in the case's history."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from db.teams import rosters
from workflows.case.contracts import READ_ROSTERS, RosterRequest, Rosters


class RosterReader:
    """Reads team rosters from the read model for the workflow."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    @activity.defn(name=READ_ROSTERS.name)
    async def read(self, request: RosterRequest) -> Rosters:
        return await asyncio.to_thread(self._read, request)

    def _read(self, request: RosterRequest) -> Rosters:
        with self._session_factory() as session:
            return Rosters(rosters=rosters(session, request.teams))
