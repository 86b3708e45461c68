"""Erasure through the case's own workflow (个人信息保护法).

A closed case's workflow keeps running through its reopen window, holding the case's
state; erasing only the read model's copy would be undone by the workflow's next write
(a reopen, a courier scan). So each case that may still run is first told to erase its
own state and end (the workflow's `erase` update); the read model is erased after, by
the same rules (workflows/case/contracts.py: erase_personal_data).
"""

from __future__ import annotations

import asyncio

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from aftersales.settings import Settings
from aftersales.temporal import connect
from workflows.case.contracts import Actor, ReasonInput, UpdateResult, workflow_id
from workflows.case.refusals import ALREADY_ERASED


class ErasureFailed(Exception):
    """A case's workflow could not erase its state: nothing was erased."""


PRIVACY_ACTOR = Actor("system", "admin")


async def _erase_running(settings: Settings, case_ids: list[str], reason: str) -> list[str]:
    try:
        client = await connect(settings)
    except RuntimeError as err:
        raise ErasureFailed(f"Temporal at {settings.temporal_address} does not answer; "
                            "nothing was erased (closed cases may still be running and "
                            "must erase their own state first)") from err
    erased = []
    for case_id in case_ids:
        handle = client.get_workflow_handle(workflow_id(case_id))
        try:
            await handle.execute_update("erase", ReasonInput(PRIVACY_ACTOR, reason),
                                        result_type=UpdateResult)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == ALREADY_ERASED:
                continue
            raise ErasureFailed(f"case {case_id}: {cause}") from err
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                continue  # the workflow has ended: it writes nothing any more
            raise ErasureFailed(f"case {case_id}: Temporal answered {err.status.name}: "
                                f"{err.message}") from err
        erased.append(case_id)
    return erased


def erase_in_workflows(settings: Settings, case_ids: list[str], reason: str) -> list[str]:
    """Tell each case's workflow, if it still runs, to erase the customer's data from its
    state and end. Returns the cases whose workflow did; raises ErasureFailed (nothing
    more is erased) when Temporal cannot be reached or a workflow refuses."""
    if not case_ids:
        return []
    return asyncio.run(_erase_running(settings, case_ids, reason))
