"""How a case looks over the API: to staff, and to the customer through the link."""

from __future__ import annotations

from db.cases import jsonable
from db.models import Case, TimelineEvent

# Timeline events a customer sees, in plain words.
CUSTOMER_EVENTS = {
    "created": "We received your request",
    "recorded": "Your request was registered",
    "confirmed": "A service agent confirmed your request",
    "rejected": "Your request was declined",
    "analyzed": "We found the cause",
    "resolution_planned": "We decided how to put it right",
    "parcel": "Your parcel moved",
    "approved": "Your refund was approved",
    "inspected": "We checked the returned goods",
    "resolved": "Done: the resolution was carried out",
    "info_requested": "We asked you a question",
    "customer_replied": "You answered our question",
    "feedback": "You rated our service",
    "reopened": "Your case was reopened",
    "cancelled": "Your case was cancelled",
    "closed": "Your case is closed",
}
NEXT_STEP = {
    "record": "We are registering your request.",
    "confirm": "A service agent will confirm your request.",
    "analyze": "We are looking into the cause.",
    "resolve": "We are putting it right.",
    "feedback": "Please rate how we handled your case.",
    "revisit": "We will call you to check that all is well.",
    "closed": "Nothing more to do. Thank you.",
    "cancelled": "Nothing more to do.",
}


def case_json(row: Case, events: list[TimelineEvent] | None = None) -> dict:
    """The staff representation of a case (DESIGN's case representation)."""
    data = row.data
    body = {
        "id": row.id,
        "kind": row.kind,
        "channel": row.channel,
        "stage": row.stage,
        "status": row.status,
        "priority": row.priority,
        "priority_reasons": data.get("priority_reasons", []),
        "assignee": row.assignee,
        "order_id": row.order_id,
        "customer": data["customer"],
        "items": data["items"],
        "description": data["description"],
        "created_at": jsonable(row.created_at),
        "updated_at": jsonable(row.updated_at),
        "deadlines": {
            "stage_due_at": jsonable(row.stage_due_at),
            "resolution_due_at": jsonable(row.resolution_due_at),
            "overdue": row.overdue,
            "feedback_due_at": data.get("feedback_due_at"),
            "revisit_due_at": data.get("revisit_due_at"),
            "clocks": data.get("clocks", []),
            "breaches": data.get("breaches", []),
            "sla_policy": data.get("sla_policy", {}),
        },
        "repeat_of": row.repeat_of,
        "order": data.get("order"),
        "analysis": data.get("analysis"),
        "resolution": data.get("resolution"),
        "rating": row.rating,
        "rating_comment": data.get("rating_comment"),
        "pending_question": data.get("pending_question"),
        "reopen_count": data.get("reopen_count", 0),
        "eligibility": data.get("eligibility") or {"eligible": True, "reasons": []},
        "parcels": data.get("parcels") or {},
        "proposal": data.get("proposal"),
        "waiting_on": data.get("waiting_on"),
        "triage": row.triage,
        "closed_at": jsonable(row.closed_at),
        "customer_url": data["customer_url"],
        "version": row.version,
    }
    if events is not None:
        body["timeline"] = [event_json(e) for e in events]
    return body


def user_json(user) -> dict:
    return {"name": user.name, "role": user.role, "active": user.active,
            "created_at": jsonable(user.created_at)}


def event_json(event: TimelineEvent) -> dict:
    return {
        "seq": event.seq,
        "at": jsonable(event.at),
        "actor": event.actor,
        "type": event.type,
        "stage_before": event.stage_before,
        "stage_after": event.stage_after,
        "detail": event.detail,
    }


def customer_json(row: Case, events: list[TimelineEvent]) -> dict:
    """What the customer may see: no staff names, notes, phone numbers or internals."""
    data = row.data
    resolution = data.get("resolution")
    summary = None
    if resolution:
        summary = {k: resolution.get(k) for k in ("type", "amount", "coupon_code", "points",
                                                   "state", "awaiting")}
        refs = resolution.get("refs") or {}
        summary["waybills"] = refs.get("waybills", {})
        summary["refund_id"] = refs.get("refund_id")
    return {
        "case_id": row.id,
        "kind": row.kind,
        "stage": row.stage,
        "status": row.status,
        "next_step": (f"We are waiting on the {data['waiting_on']}; nothing is lost, we "
                      "keep trying." if data.get("waiting_on") else NEXT_STEP.get(row.stage, "")),
        "due_at": jsonable(row.stage_due_at) if row.stage not in ("closed", "cancelled")
        else None,
        "question": data.get("pending_question"),
        "can_reply": data.get("pending_question") is not None,
        "can_rate": row.stage == "feedback",
        "rating": row.rating,
        "resolution": summary,
        "created_at": jsonable(row.created_at),
        "tracking": [
            {"waybill": number, "status": parcel["status"],
             "events": [{"status": e["status"], "at": e["at"]} for e in parcel["events"]]}
            for number, parcel in (data.get("parcels") or {}).items()
        ],
        "history": [
            {"at": jsonable(e.at), "what": CUSTOMER_EVENTS[e.type], "stage": e.stage_after}
            for e in events if e.type in CUSTOMER_EVENTS
        ],
    }
