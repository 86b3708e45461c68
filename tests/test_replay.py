"""Replay the recorded history of every case path against today's workflow code: a
change that would make a running case non-deterministic fails here, before it meets a
live case. Record anew with AFTERSALES_RECORD_HISTORIES=1 (docs/operations.md)."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from tests.conftest import HISTORIES
from workflows.case.workflow import CaseWorkflow

PATHS = ("complaint", "refund", "return", "exchange", "repair", "reopen_cancel", "overdue",
         "notify_complaint", "triage", "tag_lifecycle", "orderless_coupon",
         "attachments_cancel", "conversation", "approval_split", "routed_return",
         "approval_escalated", "approval_denied", "approval_cancelled",
         "rerouted_confirm", "merged_duplicate", "merged_survivor", "remedies",
         "remedies_failed", "warranty_accepted", "warranty_declined", "warranty_expired",
         "swap_cheaper", "swap_paid", "swap_unpaid", "graded_return", "graded_fraud",
         "instant_refund", "instant_refund_recovery", "approval_paused")


@pytest.mark.parametrize("path", PATHS)
async def test_recorded_history_replays(path):
    recorded = HISTORIES / f"{path}.json"
    assert recorded.exists(), f"no recorded history for the {path} path in {HISTORIES}"
    history = WorkflowHistory.from_json(f"replay-{path}", recorded.read_text(encoding="utf-8"))
    await Replayer(workflows=[CaseWorkflow]).replay_workflow(history)


async def test_a_changed_workflow_fails_replay(monkeypatch):
    """The check has teeth: a workflow that runs activities in another order fails."""
    from workflows.case import workflow as case_module

    original = case_module.CaseWorkflow._record

    async def reordered(self):
        await asyncio.sleep(1)  # a new timer where the history has none
        return await original(self)

    monkeypatch.setattr(case_module.CaseWorkflow, "_record", reordered)
    history = WorkflowHistory.from_json(
        "replay-complaint", (HISTORIES / "complaint.json").read_text(encoding="utf-8"))
    # Unsandboxed, so the replayer runs the patched class of this process.
    replayer = Replayer(workflows=[CaseWorkflow], workflow_runner=UnsandboxedWorkflowRunner())
    with pytest.raises(Exception, match=r"[Nn]ondetermin"):
        await replayer.replay_workflow(history)
