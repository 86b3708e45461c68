"""Reconciliation of the read model against Temporal, the source of truth.

For every case the read model shows open, the workflow is asked for its snapshot (the
same query the projection is built from), a batch at a time through all of them. Where
stage, status, version, assignee, overdue flag or due time disagree, the row is
rewritten from that snapshot, unless a live projection write changed it
meanwhile. Timeline events or outbox rows a lost write carried cannot be rebuilt from a
query: the report names the repaired cases so someone can look.

Cases whose projection write the read model refused for good (`projection_failures`)
are listed too, with the error, each time: they need an operator to remove the cause
and run `aftersales cases reproject`, which writes the workflow's own `projection`
(the snapshot with the timeline events and outbox rows the refused writes carried).
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

from db.cases import apply_projection, as_utc, write_projection
from db.links import LinkSeal
from db.models import Case
from db.projection_failures import clear_failure, failed_cases
from workflows.case.contracts import Projection, workflow_id
from workflows.case.vocabulary import OPEN_STAGES
from workflows.case.workflow import CaseWorkflow

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
    # The read model refused a write of these for good: case id -> the error.
    unwritten: dict[str, str] = field(default_factory=dict)


FIELDS = ("stage", "status", "version", "assignee", "overdue", "stage_due_at")


async def reconcile(client: Client, sessions: sessionmaker[Session], links: LinkSeal,
                    batch: int = 500) -> ReconcileReport:
    """Compare every open case's row with its workflow and repair those that differ
    (the status link sealed with `links`, as the worker writes it)."""
    report = ReconcileReport()
    with sessions() as session:
        report.unwritten = {row.case_id: f"version {row.version}, {row.failures} failed "
                            f"write(s) since {row.first_failed_at:%Y-%m-%d %H:%M}: {row.error}"
                            for row in failed_cases(session)}
    for case_id, why in report.unwritten.items():
        log.error("case %s is not in the read model as it stands (%s); remove the cause, "
                  "then run `aftersales cases reproject %s`", case_id, why, case_id)
    after = ""
    while True:
        with sessions() as session:
            rows = session.execute(
                select(Case.id, *(getattr(Case, name) for name in FIELDS))
                .where(Case.stage.in_(OPEN_STAGES), Case.id > after)
                .order_by(Case.id).limit(batch)).all()
        if not rows:
            return report
        after = rows[-1][0]
        for case_id, *values in rows:
            await _check(client, sessions, links, case_id,
                         dict(zip(FIELDS, values, strict=True)), report)


async def _check(client: Client, sessions: sessionmaker[Session], links: LinkSeal,
                 case_id: str, was: dict, report: ReconcileReport) -> None:
    report.checked += 1
    handle = client.get_workflow_handle(workflow_id(case_id))
    try:
        snap = await handle.query(CaseWorkflow.snapshot, rpc_timeout=QUERY_TIMEOUT)
    except (TimeoutError, RPCError, WorkflowQueryFailedError,
            WorkflowQueryRejectedError) as err:
        report.unanswered[case_id] = f"{type(err).__name__}: {err}"
        return
    was = {**was, "stage_due_at": as_utc(was["stage_due_at"]) if was["stage_due_at"]
           else None}
    now = {name: getattr(snap, name) for name in FIELDS}
    if was == now:
        return
    repaired = await asyncio.to_thread(_repair, sessions, links, snap, was["version"])
    if repaired:
        changed = [name for name in FIELDS if was[name] != now[name]]
        report.repaired.append(Repair(case_id, {k: was[k] for k in changed},
                                      {k: now[k] for k in changed}))
        log.warning("reconciliation repaired case %s: read model had %s, workflow %s",
                    case_id, {k: was[k] for k in changed}, {k: now[k] for k in changed})
    else:
        report.raced.append(case_id)


def _repair(sessions: sessionmaker[Session], links: LinkSeal, snap,
            seen_version: int) -> bool:
    with sessions.begin() as session:
        return apply_projection(session, Projection(snapshot=snap, events=[], outbox=[]),
                                replace_version=seen_version, links=links)


async def reproject(client: Client, sessions: sessionmaker[Session], links: LinkSeal,
                    case_id: str) -> str:
    """Write the case again from its workflow (the query `projection`): the row, and the
    timeline events and outbox rows refused writes carried. Raises what the query or the
    write raises; on success the case is no longer listed as failed."""
    handle = client.get_workflow_handle(workflow_id(case_id))
    projection = await handle.query(CaseWorkflow.projection, rpc_timeout=QUERY_TIMEOUT)
    await asyncio.to_thread(write_projection, sessions, projection, links)
    with sessions.begin() as session:
        clear_failure(session, case_id)
    log.warning("case %s reprojected at version %d (%d events, %d outbox rows carried)",
                case_id, projection.snapshot.version, len(projection.events),
                len(projection.outbox))
    return (f"{case_id}: written at version {projection.snapshot.version}, "
            f"{len(projection.events)} timeline events and {len(projection.outbox)} "
            "notifications carried")
