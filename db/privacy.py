"""Customers' personal data in the read model: export, erasure on request, and
anonymisation of closed cases after the retention period (个人信息保护法).

Temporal keeps its own copy in workflow histories: sealed by the payload codec when
keys are set, and removed with the namespace's retention once a workflow has closed
(docs/security.md).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from temporalio.converter import value_to_type

from db import search
from db.cases import as_utc, jsonable
from db.models import (
    Case,
    CaseAttachment,
    CaseTag,
    OutboxMessage,
    TimelineEvent,
    TriageFeedback,
)
from workflows.case.contracts import ERASED, CaseSnapshot, erase_personal_data, pseudonym
from workflows.case.vocabulary import OPEN_STAGES

# Free text in timeline details and notification payloads; "added" and "removed" are
# the tags a `tagged` event changed, "filename" a file's name (`attachment_added`).
TEXT_KEYS = ("note", "text", "comment", "message", "question", "reason", "detail", "added",
             "removed", "filename")


class ErasureRefused(Exception):
    """The customer still has open cases, which need their data to be finished."""


def export_customer(session: Session, customer_id: str) -> dict:
    """Everything the read model holds about one customer, as JSON-ready data."""
    rows = list(session.scalars(select(Case).where(Case.customer_id == customer_id)
                                .order_by(Case.created_at)))
    cases = []
    for row in rows:
        events = session.scalars(select(TimelineEvent).where(TimelineEvent.case_id == row.id)
                                 .order_by(TimelineEvent.seq))
        messages = session.scalars(select(OutboxMessage).where(
            OutboxMessage.case_id == row.id, OutboxMessage.channel == "customer")
            .order_by(OutboxMessage.created_at))
        cases.append({
            "id": row.id, "stage": row.stage, "order_id": row.order_id,
            "created_at": jsonable(row.created_at), "data": row.data,
            "timeline": [{"at": jsonable(e.at), "type": e.type, "actor": e.actor,
                          "detail": e.detail} for e in events],
            "notifications": [{"template": m.template, "created_at": jsonable(m.created_at),
                               "sent_at": jsonable(m.sent_at), "sent_to": m.delivered,
                               "payload": m.payload} for m in messages],
        })
    return {"customer_id": customer_id, "cases": cases}


def erasable_cases(session: Session, customer_id: str) -> list[str]:
    """The customer's cases not yet erased, whose workflows may still run (a closed case
    within its reopen window); refused (ErasureRefused) while a case is open."""
    rows = list(session.scalars(select(Case).where(Case.customer_id == customer_id)))
    _refuse_open(rows)
    return [row.id for row in rows if row.stage == "closed"
            and not row.data.get("anonymised_at")]


def _refuse_open(rows: list[Case]) -> None:
    still_open = [row.id for row in rows if row.stage in OPEN_STAGES]
    if still_open:
        raise ErasureRefused(f"open cases need the data to be finished: "
                             f"{', '.join(still_open)}; cancel or close them first")


def erase_customer(session: Session, customer_id: str, now: datetime,
                   freed: set[str] | None = None) -> int:
    """Erase a customer's personal data from all their cases; refused while one is open.
    The blobs of their files are added to `freed`: the caller deletes those no case
    references any more once this has committed (aftersales/blobs.py)."""
    # Cases whose workflow erased its own state first are filed under the pseudonym
    # already; their timeline and notifications are erased here all the same.
    rows = list(session.scalars(select(Case).where(
        Case.customer_id.in_((customer_id, pseudonym(customer_id))))))
    _refuse_open(rows)
    for row in rows:
        _anonymise(session, row, now, freed)
    return len(rows)


def anonymise_closed(session: Session, older_than: timedelta, now: datetime,
                     freed: set[str] | None = None) -> int:
    """Anonymise every case closed or cancelled more than `older_than` ago (their files'
    blobs added to `freed`, as for erase_customer)."""
    cutoff = now - older_than
    rows = [row for row in session.scalars(select(Case).where(
        Case.stage.in_(("closed", "cancelled")), Case.closed_at.is_not(None)))
        if row.closed_at is not None and as_utc(row.closed_at) < cutoff
        and not row.data.get("anonymised_at")]
    for row in rows:
        _anonymise(session, row, now, freed)
    return len(rows)


def _anonymise(session: Session, row: Case, now: datetime,
               freed: set[str] | None = None) -> None:
    # The case's data as the workflow last wrote it, erased by the same rules the
    # running workflow applies (workflows/case/contracts.py: erase_personal_data).
    snap = value_to_type(CaseSnapshot, {**row.data, "status_token": "", "customer_url": ""})
    blobs = erase_personal_data(snap, now)
    if freed is not None:
        freed.update(blobs)
    data = jsonable(snap)
    data.pop("status_token", None)
    data.pop("customer_url", None)  # (the sealed copy went with the rest of the data)
    session.execute(delete(CaseTag).where(CaseTag.case_id == row.id))
    session.execute(delete(CaseAttachment).where(CaseAttachment.case_id == row.id))
    row.triage = data["triage"]
    row.data = data
    row.customer_id = snap.customer.id
    row.customer_name = ERASED
    row.customer_name_folded = None
    row.customer_phone = ""
    row.customer_phone_digits = None
    search.forget_name(session, row.id)  # the name cannot be searched for any more
    # The customer's link stops working: nobody holds a token for this hash.
    row.status_token_hash = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
    for event in session.scalars(select(TimelineEvent).where(TimelineEvent.case_id == row.id)):
        event.detail = {k: (ERASED if k in TEXT_KEYS and v else v)
                        for k, v in event.detail.items()}
    # Notifications keep what was sent when, not to which address or with which words.
    for message in session.scalars(select(OutboxMessage).where(OutboxMessage.case_id == row.id)):
        message.payload = {k: (ERASED if k in TEXT_KEYS and v else v)
                           for k, v in message.payload.items() if k != "customer_url"}
        if message.channel == "customer":
            message.delivered = [ERASED for _ in message.delivered or []]
    # The training pair holds a copy of the description: it goes too.
    feedback = session.get(TriageFeedback, row.id)
    if feedback is not None:
        session.delete(feedback)
