"""How a case looks over the API: to staff, and to the customer through the link."""

from __future__ import annotations

from flask import current_app
from flask_babel import lazy_gettext as _l

from aftersales.converter import decode
from db.accounts import token_state
from db.cases import jsonable
from db.links import customer_url
from db.models import Case, TimelineEvent
from web.schemas import CaseSchema
from workflows.case.contracts import Resolution
from workflows.case.lifecycle import BY_NAME, CUSTOMER, awaits_quote

# Timeline events a customer sees, in plain words.
CUSTOMER_EVENTS = {
    "created": _l("We received your request"),
    "recorded": _l("Your request was registered"),
    "confirmed": _l("A service agent confirmed your request"),
    "rejected": _l("Your request was declined"),
    "analyzed": _l("We found the cause"),
    "resolution_planned": _l("We decided how to put it right"),
    "parcel": _l("Your parcel moved"),
    "approved": _l("Your refund was approved"),
    "inspected": _l("We checked the returned goods"),
    "resolved": _l("Done: the resolution was carried out"),
    "info_requested": _l("We asked you a question"),
    "customer_replied": _l("You wrote to us"),
    "feedback": _l("You rated our service"),
    "reopened": _l("Your case was reopened"),
    "cancelled": _l("Your case was cancelled"),
    "closed": _l("Your case is closed"),
    "merged": _l("Joined with your other request, which goes on"),
    "quote_offered": _l("We sent you a quote for the repair"),
    "quote_answered": _l("You answered the repair quote"),
    "quote_expired": _l("The repair quote was not answered in time"),
    "closed_unrepaired": _l("Your item was sent back unrepaired and the case is closed"),
}
NEXT_STEP = {
    "record": _l("We are registering your request."),
    "confirm": _l("A service agent will confirm your request."),
    "analyze": _l("We are looking into the cause."),
    "resolve": _l("We are putting it right."),
    "feedback": _l("Please rate how we handled your case."),
    "revisit": _l("We will call you to check that all is well."),
    "closed": _l("Nothing more to do. Thank you."),
    "cancelled": _l("Nothing more to do."),
}

SYSTEM_NAMES = {
    "order system": _l("order system"),
    "inventory system": _l("inventory system"),
    "courier system": _l("courier system"),
}


def next_step(row: Case) -> str:
    """What happens next, in the customer's words (and language)."""
    merged_into = row.data.get("merged_into")
    if merged_into:
        return str(_l("You wrote to us twice about this: we handle it in your case "
                      "%(case_id)s.", case_id=merged_into))
    waiting_on = row.data.get("waiting_on")
    if waiting_on:
        return str(_l("We are waiting on the %(system)s; nothing is lost, we keep trying.",
                      system=SYSTEM_NAMES.get(waiting_on, waiting_on)))
    if (row.data.get("resolution") or {}).get("awaiting") == "quote":
        return str(_l("Your item is at our repair centre: please accept or decline the "
                      "repair quote."))
    return str(NEXT_STEP.get(row.stage, ""))


def case_json(row: Case, events: list[TimelineEvent] | None = None) -> dict:
    """The staff representation of a case: every field the `Case` response schema
    names, from the read model's row (columns) and the snapshot it stores (the rest),
    so a field added to the case state and to that schema shows without more code."""
    data = row.data
    body = {name: data.get(name) for name in _STATE_FIELDS}
    body.update({
        "id": row.id,
        "kind": row.kind,
        "channel": row.channel,
        "stage": row.stage,
        "status": row.status,
        "priority": row.priority,
        "assignee": row.assignee,
        "order_id": row.order_id,
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
        "rating": row.rating,
        "eligibility": data.get("eligibility") or {"eligible": True, "reasons": []},
        "parcels": data.get("parcels") or {},
        "triage": row.triage,
        "closed_at": jsonable(row.closed_at),
        "attachments": staff_attachments(row),
        "version": row.version,
        "customer_url": customer_url(data, row.id, current_app.extensions["aftersales"].links),
    })
    for name, empty in _DEFAULTS.items():
        if body.get(name) is None:
            body[name] = empty
    if events is not None:
        body["timeline"] = [event_json(e) for e in events]
    return body


# The snapshot's fields the staff see, with the value a row written before the field
# existed shows.
_STATE_FIELDS = tuple(n for n in CaseSchema().fields if n not in ("timeline", "deadlines"))
_DEFAULTS: dict = {"priority_reasons": [], "reopen_count": 0, "tags": [], "messages": [],
                   "store": "", "merged_from": [], "fraud_review": False,
                   "recovery_tasks": []}


def attachment_json(item: dict, base: str) -> dict:
    """One file's metadata with the URLs it is fetched from (`base`: the case's
    attachments URL, under the API or under the status token)."""
    url = f"{base}/{item['id']}"
    return {
        "id": item["id"], "filename": item["filename"],
        "content_type": item["content_type"], "size": item["size"],
        "sha256": item["sha256"], "url": url,
        "thumbnail_url": f"{url}?size=thumb" if item.get("thumbnail_sha256") else None,
        "by": item.get("by") or "", "at": item.get("at"),
        "shared": bool(item.get("shared")),
    }


def staff_attachments(row: Case) -> list[dict]:
    base = f"/api/v1/cases/{row.id}/attachments"
    return [attachment_json(a, base) for a in row.data.get("attachments") or []]


def from_customer(item: dict) -> bool:
    return item.get("by") == CUSTOMER


def visible_to_customer(item: dict) -> bool:
    """The customer sees the files they sent and the ones staff chose to show."""
    return from_customer(item) or bool(item.get("shared"))


def customer_attachments(row: Case, token: str) -> list[dict]:
    """What the customer sees (never who of the staff sent a file)."""
    base = f"/api/v1/status/{token}/attachments"
    shown = []
    for item in row.data.get("attachments") or []:
        if visible_to_customer(item):
            view = attachment_json(item, base)
            view["by"] = "customer" if from_customer(item) else "staff"
            shown.append(view)
    return shown


def customer_messages(row: Case) -> list[dict]:
    """The conversation as the customer sees it: no internal notes, staff by their
    display name only (never the user name), files only those the customer may open."""
    visible = {a["id"] for a in row.data.get("attachments") or [] if visible_to_customer(a)}
    return [{"id": m["id"], "author": m["author"],
             "display_name": m.get("display_name") or "" if m["author"] == "staff" else "",
             "text": m["text"], "at": m["at"], "channel": m["channel"],
             "attachments": [a for a in m.get("attachments") or [] if a in visible]}
            for m in row.data.get("messages") or [] if not m.get("internal")]


def user_json(user, teams: list[str] | None = None) -> dict:
    return {"name": user.name, "role": user.role, "active": user.active,
            "email": user.email, "locale": user.locale,
            "display_name": user.display_name, "teams": teams or [],
            "on_duty": user.on_duty,
            "created_at": jsonable(user.created_at)}


def token_json(row) -> dict:
    """An API token as it may be shown: its public id, never the token."""
    return {"id": row.id, "user": row.user_name, "state": token_state(row),
            "created_at": jsonable(row.created_at), "expires_at": jsonable(row.expires_at),
            "last_used_at": jsonable(row.last_used_at), "revoked": row.revoked}


def audit_json(row) -> dict:
    return {"id": row.id, "at": jsonable(row.at), "actor": row.actor, "role": row.role,
            "method": row.method, "path": row.path, "case_id": row.case_id,
            "action": row.action, "status": row.status, "remote_addr": row.remote_addr,
            "detail": row.detail}


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


def customer_order(row: Case) -> dict | None:
    """The order the case is about as the customer knows it: its number, the shop that
    sold it and the products the case concerns (the whole order when it names none)."""
    order = row.data.get("order") or {}
    if not row.order_id and not order:
        return None
    lines = order.get("lines") or []
    names = {line["sku"]: line["name"] for line in lines}
    asked = [{"name": names.get(item["sku"], item["sku"]), "quantity": item["quantity"]}
             for item in row.data.get("items") or []]
    return {
        "id": row.order_id or order.get("id"),
        "store": order.get("store_name") or order.get("store_id") or row.store or None,
        "products": asked or [{"name": line["name"], "quantity": line["quantity"]}
                              for line in lines],
    }


def exchange_json(resolution: dict) -> dict | None:
    """An exchange for another SKU as the customer sees it: the replacement, the price
    difference (below zero: theirs to pay) and the payment link with its deadline while
    it matters; None when the resolution has no such exchange."""
    for plan in [resolution, *(resolution.get("remedies") or [])]:
        refs = plan.get("refs") or {}
        replacement = refs.get("replacement")
        if replacement:
            payment = refs.get("payment")
            return {"replacement_sku": replacement["sku"],
                    "unit_price": replacement["unit_price"],
                    "price_difference": refs.get("price_difference"),
                    "fallback": refs.get("fallback"),
                    "payment": {**{k: payment.get(k) for k in ("amount", "due", "status")},
                                # a link from another system: only a web address is shown
                                "url": payment["url"] if str(payment.get("url", "")).startswith(
                                    ("https://", "http://")) else None}
                    if payment else None}
    return None


def customer_json(row: Case, events: list[TimelineEvent], token: str,
                  merged_into: dict | None = None) -> dict:
    """What the customer may see: no staff names, notes, phone numbers or internals.
    `merged_into`: the case a duplicate was merged into and its status link."""
    data = row.data
    resolution = data.get("resolution")
    summary = None
    if resolution:
        summary = {k: resolution.get(k) for k in ("type", "amount", "coupon_code", "points",
                                                   "state", "awaiting")}
        refs = resolution.get("refs") or {}
        summary["waybills"] = refs.get("waybills", {})
        summary["refund_id"] = refs.get("refund_id")
        # Each remedy of a combined resolution with its outcome ([] for a single one).
        summary["remedies"] = [
            {**{k: r.get(k) for k in ("type", "amount", "coupon_code", "points", "state")},
             "waybills": (r.get("refs") or {}).get("waybills", {}),
             "refund_id": (r.get("refs") or {}).get("refund_id")}
            for r in resolution.get("remedies") or []]
        summary["refunded"] = refs.get("refunded")  # the amount paid back, once paid
        # From the order system's receipts (resolutions since they are kept).
        summary["refund_method"] = refs.get("refund_method") or None
        summary["refund_arrives_in_working_days"] = \
            refs.get("refund_arrives_in_working_days") or None
        summary["refunded_at"] = refs.get("refunded_at")
        summary["coupon_expires_at"] = refs.get("coupon_expires_at")
        summary["exchange"] = exchange_json(resolution)
    return {
        "case_id": row.id,
        "kind": row.kind,
        "stage": row.stage,
        "status": row.status,
        "order": customer_order(row),
        "next_step": next_step(row),
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
            {"at": jsonable(e.at), "what": str(CUSTOMER_EVENTS[e.type]), "stage": e.stage_after}
            for e in events if e.type in CUSTOMER_EVENTS
        ],
        "attachments": customer_attachments(row, token),
        "can_attach": row.stage in BY_NAME["attach"].stages,
        "messages": customer_messages(row),
        # Open, or closed and its link still shown (the reopen window): write to us.
        # (A duplicate's conversation goes on in the case it was merged into.)
        "can_write": row.stage in BY_NAME["message"].stages and merged_into is None
        and not data.get("merged_into"),
        "merged_into": merged_into,
        "quote": quote_view(resolution),
        "can_answer_quote": row.stage in BY_NAME["quote"].stages and awaits_quote(
            decode(Resolution, resolution) if resolution else None),
    }


def quote_view(resolution: dict | None) -> dict | None:
    """The resolution's repair quote as the customer sees it: amount, answer-by time and
    answer (None until answered); None when the resolution has no quote."""
    quote = (resolution or {}).get("quote")
    if not quote:
        return None
    return {"amount": quote["amount"], "due_at": quote["due_at"],
            "answer": quote.get("answer")}
