"""The triage activity: the model's suggestions for a new case's description."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio import activity

from workflows.case.contracts import Triage, TriageRequest


class TriageActivities:
    """Runs the triage model (docs/triage.md). The model file is read once per worker
    process, on first use, so starting a worker stays fast."""

    def __init__(self, model_file: Path) -> None:
        self._model_file = model_file

    @activity.defn(name="triage_case")
    async def suggest(self, request: TriageRequest) -> Triage:
        return await asyncio.to_thread(self._suggest, request)

    def _suggest(self, request: TriageRequest) -> Triage:
        # Imported here: scikit-learn and jieba stay out of the workflow sandbox, which
        # imports this module for the activity's name and types.
        from aftersales.triage.model import shared_model

        return shared_model(self._model_file).suggest(request.description, request.channel)
