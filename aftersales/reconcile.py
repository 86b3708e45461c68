"""Reconciliation of the read model against Temporal, the source of truth.

For every case the read model shows open, the workflow is asked for its snapshot (the
same query the projection is built from). Where stage, status or version disagree, the
row is rewritten from that snapshot, unless a live projection write changed it
meanwhile. Timeline events or outbox rows a lost write carried cannot be rebuilt from a
query: the report names the repaired cases so someone can look.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError

from db.cases import apply_projection
from db.models import Case
from db.reports import OPEN
from workflows.case import CaseWorkflow
from workflows.domain import Projection

log = logging.getLogger("aftersales.reconcile")
QUERY_TIMEOUT = timedelta(seconds=10)


@dataclass
class Repair:
    case_id: str
    was: dict
    now: dict


@dataclass
class ReconcileReport:
    checked: int = 0
    repaired: list[Repair] = field(default_factory=list)
    # The workflow is gone or did not answer: nothing to repair from.
    unanswered: dict[str, str] = field(default_factory=dict)
    # Disagreed, but a live write changed the row before the repair could.
    raced: list[str] = field(default_factory=list)


async def reconcile(client: Client, sessions: sessionmaker[Session],
                    limit: int = 5000) -> ReconcileReport:
    """Compare every open case's row with its workflow and repair those that differ."""
    with sessions() as session:
        rows = session.execute(
            select(Case.id, Case.stage, Case.status, Case.version)
            .where(Case.stage.in_(OPEN)).order_by(Case.id).limit(limit)).all()
    report = ReconcileReport()
    for case_id, stage, status, version in rows:
        report.checked += 1
        handle = client.get_workflow_handle(f"case-{case_id}")
        try:
            snap = await handle.query(CaseWorkflow.snapshot, rpc_timeout=QUERY_TIMEOUT)
        except (TimeoutError, RPCError, WorkflowQueryFailedError,
                WorkflowQueryRejectedError) as err:
            report.unanswered[case_id] = f"{type(err).__name__}: {err}"
            continue
        was = {"stage": stage, "status": status, "version": version}
        now = {"stage": snap.stage, "status": snap.status, "version": snap.version}
        if was == now:
            continue
        repaired = await asyncio.to_thread(_repair, sessions, snap, version)
        if repaired:
            report.repaired.append(Repair(case_id, was, now))
            log.warning("reconciliation repaired case %s: read model had %s, workflow %s",
                        case_id, was, now)
        else:
            report.raced.append(case_id)
    return report


def _repair(sessions: sessionmaker[Session], snap, seen_version: int) -> bool:
    with sessions.begin() as session:
        return apply_projection(session, Projection(snapshot=snap, events=[], outbox=[]),
                                replace_version=seen_version)
