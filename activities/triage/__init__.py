"""Triage: suggested kind, root cause, priority, sentiment and escalation risk from the
customer's words (docs/triage.md), and the activity that runs it at intake. This module
stays light: scikit-learn and jieba are imported by `activities.triage.model` only when
a model is trained or loaded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio import activity

from workflows.case.contracts import TRIAGE_CASE, Triage, TriageRequest

HERE = Path(__file__).parent
DATASET = HERE / "data" / "descriptions.jsonl"
SHIPPED_MODEL = HERE / "model" / "triage.joblib"


def model_path(configured: str = "") -> Path:
    """The model file in use: AFTERSALES_TRIAGE_MODEL, or the one the project ships."""
    return Path(configured).expanduser().resolve() if configured else SHIPPED_MODEL


class TriageActivities:
    """Runs the triage model. The model file is read once per worker process, on first
    use, so starting a worker stays fast."""

    def __init__(self, model_file: Path) -> None:
        self._model_file = model_file

    @activity.defn(name=TRIAGE_CASE.name)
    async def suggest(self, request: TriageRequest) -> Triage:
        return await asyncio.to_thread(self._suggest, request)

    def _suggest(self, request: TriageRequest) -> Triage:
        from activities.triage.model import shared_model

        return shared_model(self._model_file).suggest(request.description, request.channel)
