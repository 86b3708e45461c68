"""A customer's standing for an instant refund, from the read model: the instant refunds
their other cases were paid in the 90 days before, and their open disputes
(docs/resolutions.md, "Instant refund")."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from db.models import Case, TimelineEvent
from workflows.case.contracts import CustomerStanding
from workflows.case.vocabulary import OPEN_STAGES

INSTANT_REFUND_WINDOW = timedelta(days=90)


def customer_standing(session: Session, customer_id: str, case_id: str,
                      at: datetime) -> CustomerStanding:
    """Other cases of the customer only (this one's own refund is what is being decided).
    A dispute is another case of the customer that is open and escalated (an `escalated`
    event: a handler's `escalate`, a breach or a waiting approval) or that triage found
    about to go further (12315, a lawyer, a chargeback), or any case of theirs flagged for
    fraud review."""
    others = [Case.customer_id == customer_id, Case.id != case_id]
    instant = session.scalar(select(func.count()).select_from(Case).where(
        *others, Case.instant_refund_at > at - INSTANT_REFUND_WINDOW,
        Case.instant_refund_at <= at))
    escalated = exists().where(TimelineEvent.case_id == Case.id,
                               TimelineEvent.type == "escalated")
    disputes = session.scalars(select(Case.id).where(*others, or_(
        Case.fraud_review.is_(True),
        Case.stage.in_(OPEN_STAGES) & or_(Case.escalation_risk.is_(True), escalated),
    )).order_by(Case.id)).all()
    return CustomerStanding(instant_refunds_90d=int(instant or 0), disputes=list(disputes))
