"""The access lifecycle across the read model and the cases, for the command line and
the admin page alike: a deactivated user's sessions end and tokens stop at once, their
open cases go back to the unassigned queue (each through its own workflow, so the case
and its history agree), and the supervisors are told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from aftersales.settings import Settings
from aftersales.temporal import connect
from db import accounts, outbox
from db.models import Case
from workflows.case.contracts import Actor, UnassignInput, UpdateResult, workflow_id
from workflows.case.vocabulary import OPEN_STAGES

log = logging.getLogger("aftersales.access")

DEACTIVATED = "deactivated"
# Sends `unassign` to each case; returns why each one it could not return was not: the
# English sentence, or the error itself (the web's refusal with its code and params,
# said in the admin page's language; str() of it is the English).
ReturnCases = Callable[[list[str], UnassignInput], dict[str, str | Exception]]
# The supervisors' message lists this many cases; the count is of all of them.
NOTICE_MAX_CASES = 50


@dataclass
class Deactivation:
    """What deactivating a user did."""

    user: str
    returned: list[str] = field(default_factory=list)
    # Cases not returned, and why (the workflow refused, or Temporal did not answer: a
    # sentence or the error, as ReturnCases gives it): a supervisor reassigns them by
    # hand.
    failed: dict[str, str | Exception] = field(default_factory=dict)
    notice: str | None = None  # the supervisors' message (outbox key)


def open_cases_of(session: Session, name: str) -> list[str]:
    """The ids of the open cases assigned to `name`, as the read model has them."""
    return list(session.scalars(select(Case.id).where(
        Case.assignee == name, Case.stage.in_(OPEN_STAGES)).order_by(Case.id)))


def deactivate(settings: Settings, sessions: sessionmaker[Session], name: str,
               by: Actor, return_cases: ReturnCases,
               now: datetime | None = None) -> Deactivation:
    """Deactivate `name` (raises AccountError for an unknown user): sign-in sessions end
    and tokens stop, from the next request; then the user's open cases go back to the
    queue and every supervisor gets one message saying which."""
    now = now or datetime.now(UTC)
    with sessions.begin() as session:
        accounts.set_active(session, name, False)
        case_ids = open_cases_of(session, name)
    result = Deactivation(user=name)
    if case_ids:
        result.failed = return_cases(case_ids, UnassignInput(by, name, DEACTIVATED))
        result.returned = [c for c in case_ids if c not in result.failed]
    key = f"access:{DEACTIVATED}:{name}:{now.isoformat()}"
    with sessions.begin() as session:
        outbox.add_message(session, key, now, "staff", "role:supervisor",
                           "user_deactivated", {
                               "user": name, "by": by.name, "count": len(result.returned),
                               "cases": result.returned[:NOTICE_MAX_CASES],
                               "failed": sorted(result.failed)[:NOTICE_MAX_CASES]})
    result.notice = key
    _deliver(settings, sessions, key)
    return result


def _deliver(settings: Settings, sessions: sessionmaker[Session], key: str) -> None:
    """Send the message now if the senders can; if not, the scheduler's outbox sweep
    sends it later (docs/operations.md)."""
    from activities.notifications import OutboxDelivery

    try:
        report = OutboxDelivery(sessions, settings).deliver([key])
    except Exception:
        log.exception("could not send %s now; the outbox sweep will", key)
        return
    if report.failed:
        log.warning("could not send %s now (%s); the outbox sweep will", key,
                    report.failed.get(key))


def return_cases_through_temporal(settings: Settings) -> ReturnCases:
    """`return_cases` for a process without the web's gateway (the command line)."""

    def send(case_ids: list[str], inp: UnassignInput) -> dict[str, str | Exception]:
        return asyncio.run(_send_all(settings, case_ids, inp))

    return send


async def _send_all(settings: Settings, case_ids: list[str], inp: UnassignInput
                    ) -> dict[str, str | Exception]:
    try:
        client = await connect(settings)
    except RuntimeError as err:
        why = f"Temporal at {settings.temporal_address} does not answer: {err}"
        return dict.fromkeys(case_ids, why)
    failed: dict[str, str | Exception] = {}
    for case_id in case_ids:
        handle = client.get_workflow_handle(workflow_id(case_id))
        try:
            await handle.execute_update("unassign", inp, result_type=UpdateResult)
        except WorkflowUpdateFailedError as err:
            failed[case_id] = str(err.cause or err)
        except RPCError as err:
            failed[case_id] = ("the case's workflow has ended"
                               if err.status == RPCStatusCode.NOT_FOUND
                               else f"Temporal answered {err.status.name}: {err.message}")
    return failed
