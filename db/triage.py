"""Reads of the handlers' triage decisions: the training pairs for the next model."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import TriageFeedback


@dataclass(frozen=True)
class FeedbackPair:
    case_id: str
    description: str
    kind: str | None
    root_cause: str | None
    suggested_kind: str | None
    suggested_root_cause: str | None


def feedback_pairs(session: Session) -> list[FeedbackPair]:
    """Every recorded decision with a kind or a root cause, oldest first."""
    rows = session.scalars(select(TriageFeedback).order_by(TriageFeedback.updated_at,
                                                           TriageFeedback.case_id))
    return [FeedbackPair(r.case_id, r.description, r.kind, r.root_cause, r.suggested_kind,
                         r.suggested_root_cause)
            for r in rows if r.kind or r.root_cause]
