"""What the pages show of a case: urgency, stage progress, breaches, and the actions
this user can take now.

The action list is the action table's (workflows/case/lifecycle.py), asked about the
case state the read model holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l

from aftersales.converter import decode
from db.cases import as_utc
from db.models import Case
from web.auth import ownership_refusal
from web.representation import SYSTEM_NAMES
from workflows.case.contracts import MAX_MESSAGE_LENGTH, Actor, CaseState
from workflows.case.eligibility import REFUSALS
from workflows.case.lifecycle import ACTIONS, BY_NAME, available, refusal
from workflows.case.vocabulary import CASE_ID, GRADES, OPEN_STAGES

# The customer's six steps, in plain words (受理 → 确认 → 分析 → 处理 → 评价 → 回访).
PROGRESS = OPEN_STAGES
STAGE_WORDS = {
    "record": _l("Received"),
    "confirm": _l("Confirmed"),
    "analyze": _l("Analysed"),
    "resolve": _l("Resolved"),
    "feedback": _l("Rated"),
    "revisit": _l("Follow-up"),
    "closed": _l("Closed"),
    "cancelled": _l("Cancelled"),
}
# The same steps as the staff call them.
STAFF_STEPS = {
    "record": _l("Record"),
    "confirm": _l("Confirm"),
    "analyze": _l("Analyse"),
    "resolve": _l("Resolve"),
    "feedback": _l("Feedback"),
    "revisit": _l("Revisit"),
}
# What the stage means while the case is in it (staff wording).
STAGE_NAMES = {
    "record": _l("Recording"),
    "confirm": _l("To confirm"),
    "analyze": _l("To analyse"),
    "resolve": _l("To resolve"),
    "feedback": _l("Awaiting rating"),
    "revisit": _l("To follow up"),
    "closed": _l("Closed"),
    "cancelled": _l("Cancelled"),
}
KIND_NAMES = {
    "complaint": _l("Complaint"),
    "return": _l("Return"),
    "refund": _l("Refund"),
    "exchange": _l("Exchange"),
    "repair": _l("Repair"),
}
CLOCK_NAMES = {
    "confirm": _l("confirmation"),
    "analyze": _l("analysis"),
    "resolution": _l("resolution"),
    "revisit": _l("follow-up"),
    "legal_refund": _l("legal refund deadline"),
    "reply": _l("reply to the customer"),
}
# The customers' languages (every one of vocabulary.LOCALES; a test holds them), as the
# pages name them.
LOCALE_NAMES = {"zh-CN": _l("Chinese"), "en": _l("English")}
# A clock's state (workflows/case/clocks.py) and why a paused one is paused.
CLOCK_STATE_NAMES = {"running": _l("running"), "paused": _l("paused"), "met": _l("met"),
                     "breached": _l("breached")}
PAUSE_REASON_NAMES = {
    "waiting_on_customer": _l("waiting on the customer"),
    "parcel_in_transit": _l("parcel in transit"),
    "waiting_on_supplier": _l("waiting on the supplier"),
    "waiting_on_approval": _l("waiting for a supervisor's approval"),
}
STATUS_NAMES = {
    "open": _l("Open"),
    "resolving": _l("Resolution running"),
    "waiting_on_customer": _l("Waiting on the customer"),
    "waiting_on_approval": _l("Waiting for approval"),
    "waiting_on_system": _l("Waiting on a retailer system"),
    "closed": _l("Closed"),
    "cancelled": _l("Cancelled"),
}
ROOT_CAUSE_NAMES = {
    "product_quality": _l("Product quality"),
    "wrong_item": _l("Wrong item sent"),
    "missing_item": _l("Item missing"),
    "damaged_in_transit": _l("Damaged in transit"),
    "late_delivery": _l("Late delivery"),
    "lost_parcel": _l("Parcel lost"),
    "description_mismatch": _l("Not as described"),
    "service_attitude": _l("Service attitude"),
    "pricing": _l("Pricing"),
    "customer_changed_mind": _l("Customer changed mind"),
    "other": _l("Other"),
}
PARTY_NAMES = {
    "merchant": _l("Merchant"),
    "supplier": _l("Supplier"),
    "courier": _l("Courier"),
    "customer": _l("Customer"),
    "platform": _l("Platform"),
}
RESOLUTION_NAMES = {
    "refund": _l("Refund"),
    "return_refund": _l("Return and refund"),
    "exchange": _l("Exchange"),
    "repair": _l("Repair"),
    "compensation": _l("Compensation"),
    "apology": _l("Apology"),
}
# A plan of several remedies (`resolutions`), and the outcomes a remedy of it can have.
COMBINED_NAME = _l("Several remedies")
REMEDY_STATES = {"planned": _l("planned"), "running": _l("running"), "done": _l("done"),
                 "failed": _l("failed"), "compensated": _l("undone"),
                 "skipped": _l("not reached")}
# What a resolution that has not finished waits for (its `awaiting`).
AWAITING_NAMES = {
    "approval": _l("a supervisor's approval"), "parcel": _l("the parcel"),
    "inspection": _l("inspection"),
    "quote": _l("the customer's answer to the repair quote"),
    "payment": _l("the customer's payment of the difference"),
}
# How many remedy rows the desk's resolve form offers (the API takes up to MAX_REMEDIES).
REMEDY_ROWS = 3
OUTCOME_NAMES = {
    "satisfied": _l("Satisfied"),
    "unsatisfied": _l("Unsatisfied (reopen)"),
    "unreachable": _l("Unreachable"),
}
# What the pages call each action: the label of its row in the action table,
# translated (babel.cfg extracts the table's labels).
ACTION_NAMES = {action.name: _l(action.label) for action in ACTIONS}
EVENT_NAMES = {
    "created": _l("opened the case"),
    "recorded": _l("recorded it"),
    "waiting": _l("waits on a system"),
    "system_answered": _l("the system answered"),
    "confirmed": _l("confirmed"),
    "rejected": _l("rejected"),
    "cancelled": _l("cancelled"),
    "erased": _l("erased the customer's personal data"),
    "analyzed": _l("recorded the analysis"),
    "resolution_planned": _l("chose the resolution"),
    "resolution_step": _l("resolution step"),
    "resolution_failed": _l("resolution failed"),
    "resolved": _l("resolution done"),
    "approval_requested": _l("asked for approval"),
    "approved": _l("approved"),
    "denied": _l("denied the refund"),
    "resolution_withdrawn": _l("resolution withdrawn"),
    "inspected": _l("inspected the goods"),
    "quote_offered": _l("offered the customer a repair quote"),
    "quote_answered": _l("the customer answered the repair quote"),
    "quote_expired": _l("the repair quote was not answered in time"),
    "closed_unrepaired": _l("closed: the item went back unrepaired"),
    "payment_received": _l("the customer paid the difference"),
    "payment_window_closed": _l("the difference was not paid in time"),
    "fraud_review": _l("flagged the case for fraud review"),
    "escalation_risk": _l("found a risk that the customer escalates"),
    "triage_failed": _l("could not suggest a triage"),
    "instant_refund_refused": _l("no instant refund"),
    "recovery_task": _l("recorded a recovery task"),
    "info_requested": _l("asked the customer"),
    "customer_replied": _l("the customer wrote"),
    "staff_replied": _l("replied to the customer"),
    "notification_failed": _l("a notification could not be delivered"),
    "note": _l("note"),
    "tagged": _l("changed the tags"),
    "attachment_added": _l("added a file"),
    "escalated": _l("escalated"),
    "assigned": _l("assigned"),
    "unassigned": _l("returned the case to the queue"),
    "rerouted": _l("routed the case to another team"),
    "logistics_exception": _l("courier exception"),
    "parcel": _l("parcel update"),
    "sla_warning": _l("SLA warning"),
    "overdue": _l("overdue"),
    "revisit_due": _l("follow-up call due"),
    "revisited": _l("follow-up call"),
    "feedback": _l("the customer rated"),
    "feedback_timeout": _l("no rating given"),
    "reopened": _l("reopened"),
    "closed": _l("closed"),
    "merged": _l("closed it as a duplicate of"),
    "merged_in": _l("merged a duplicate into this case:"),
}
CHANNEL_NAMES = {
    "phone": _l("phone"), "web": _l("web"), "app": _l("app"), "wechat": _l("WeChat"),
    "email": _l("email"), "store": _l("store"), "chat": _l("chat"), "system": _l("system"),
    # Where a message of the conversation was written (besides the channels above).
    "desk": _l("desk"), "api": _l("API"),
}
TIER_NAMES = {"regular": _l("regular"), "silver": _l("silver"), "gold": _l("gold"),
              "vip": _l("VIP")}
ORDER_STATUS_NAMES = {"placed": _l("placed"), "paid": _l("paid"), "shipped": _l("shipped"),
                      "delivered": _l("delivered"), "cancelled": _l("cancelled"),
                      "refunded": _l("refunded")}
PAYMENT_NAMES = {"alipay": _l("Alipay"), "wechat_pay": _l("WeChat Pay"), "card": _l("card")}
ACTOR_NAMES = {"system": _l("system"), "customer": _l("customer"), "courier": _l("courier"),
               "email": _l("inbound mail")}
PARCEL_WORDS = {
    "created": _l("Waybill created"),
    "picked_up": _l("Picked up"),
    "in_transit": _l("On the way"),
    "delivered": _l("Delivered"),
    "delayed": _l("Delayed"),
    "lost": _l("Lost"),
    "damaged": _l("Damaged"),
    "cancelled": _l("Cancelled"),
}
# Saga steps; a step is named `<name>` or `<name>:<sku>`.
STEP_NAMES = {
    "grant_compensation": _l("grant the compensation"),
    "refund": _l("refund"),
    "partial_refund": _l("partial refund"),
    "instant_refund": _l("instant refund at pickup"),
    "reserve": _l("reserve stock"),
    "return_pickup": _l("collect the return"),
    "repair_pickup": _l("collect for repair"),
    "repair_return": _l("return from repair"),
    "quote_accepted": _l("repair quote accepted (owed)"),
    "return_unrepaired": _l("send back unrepaired"),
    "ship_replacement": _l("ship the replacement"),
    "payment_link": _l("payment link for the difference"),
    "refund_difference": _l("refund the price difference"),
    "release": _l("release the reserved replacement"),
    "collect_old": _l("collect the old item"),
    "return_to_customer": _l("send back to the customer"),
    "outbound": _l("outbound parcel"),
}
# Inspection grades of returned goods (docs/resolutions.md).
GRADE_NAMES = {"A": _l("resaleable"), "B": _l("opened or minor wear (open box)"),
               "C": _l("damaged by the customer"), "D": _l("not the item sent")}
STEP_STATES = {"done": _l("done"), "compensated": _l("undone"),
               "compensation_failed": _l("undo failed")}
# Form fields by their schema path, for messages about what to correct.
FIELD_LABELS = {
    "note": _l("Note"), "reason": _l("Reason"), "text": _l("Note"),
    "question": _l("Question to the customer (pauses the clock)"),
    "root_cause": _l("Root cause"), "responsible_party": _l("Responsible party"),
    "resolution.type": _l("Resolution"),
    "resolution.amount": _l("Amount (refunds, money compensation)"),
    "resolution.coupon_code": _l("Coupon code (compensation)"),
    "resolution.replacement_sku": _l("Replacement SKU (exchange)"),
    "resolution.points": _l("Points (compensation)"),
    "resolution.items": _l("Items that move (returns, exchanges, repairs)"),
    "resolutions": _l("Remedies"),
    "assignee": _l("Give to"), "outcome": _l("Outcome of the call"),
    "passed": _l("Did the goods pass inspection?"), "priority": _l("Priority"),
    "grade": _l("Grade of the returned goods"),
    "kind": _l("Kind"), "rating": _l("Rating"), "comment": _l("Comment"),
    "message": _l("Message"),
    "into": _l("The customer's case this one duplicates (case id)"),
    "add": _l("Add tags (separated by commas)"), "remove": _l("Remove"),
    "confirmed": _l("I understand that this cannot be undone."),
}


def field_label(path: str) -> str:
    """The form label of a field path such as `resolution.items.0.quantity`."""
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        label = FIELD_LABELS.get(".".join(parts[:n]))
        if label is not None:
            return str(label)
    return path


SENTIMENT_NAMES = {"negative": _l("negative"), "neutral": _l("neutral"),
                   "positive": _l("positive")}
ROLE_NAMES = {
    "handler": _l("handler"),
    "supervisor": _l("supervisor"),
    "admin": _l("admin"),
}
@dataclass(frozen=True)
class Urgency:
    """How a case reads at a glance: `overdue`, `risk` (≥75 % of a target used),
    `ok`, or `none` (nothing due)."""

    level: str
    due_at: datetime | None

    @property
    def label(self) -> str:
        return str({"overdue": _l("Overdue"), "risk": _l("At risk"), "ok": _l("On time"),
                    "none": _l("Nothing due")}[self.level])


def urgency(row: Case, now: datetime) -> Urgency:
    due = as_utc(row.stage_due_at) if row.stage_due_at else None
    if row.stage not in OPEN_STAGES:
        return Urgency("none", None)
    if row.overdue or (due is not None and due <= now):
        return Urgency("overdue", due)
    if row.at_risk_at is not None and as_utc(row.at_risk_at) <= now:
        return Urgency("risk", due)
    return Urgency("ok" if due else "none", due)


def progress(stage: str, staff: bool = False) -> list[dict]:
    """The six steps with `done` / `current` / `todo` for the stage bar, in the
    customer's words or, for staff, the stage names."""
    if stage == "closed":
        position = len(PROGRESS)
    elif stage == "cancelled":
        position = -1
    else:
        position = PROGRESS.index(stage)
    steps = []
    for n, name in enumerate(PROGRESS):
        state = "done" if n < position else "current" if n == position else "todo"
        label = STAFF_STEPS[name] if staff else STAGE_WORDS[name]
        steps.append({"stage": name, "label": label, "state": state})
    return steps


def open_breach(row: Case, now: datetime) -> dict | None:
    """The target this case is overdue on: which clock, the rule, and by how long."""
    for clock in row.data.get("clocks", []):
        if clock.get("breached_at") and clock.get("state") in ("running", "paused"):
            at = as_utc(datetime.fromisoformat(clock["breached_at"].replace("Z", "+00:00")))
            rule: dict = next((b for b in reversed(row.data.get("breaches", []))
                         if b.get("clock") == clock["name"]), {})
            return {"clock": clock["name"], "clock_label": CLOCK_NAMES.get(clock["name"],
                                                                          clock["name"]),
                    "since": at, "over_by": now - at, "target_s": clock.get("target"),
                    "priority": rule.get("priority", row.priority)}
    return None


def case_state(row: Case) -> CaseState:
    """The case state the workflow last wrote, read back from the row's snapshot (rows
    written before a field existed get its default)."""
    return decode(CaseState, {**row.data, "status_token": "", "customer_url": ""})


def may_act(row: Case, role: str, user: str, user_teams: list[str]) -> bool:
    """Whether the case is this user's to act on (web/auth.OWNERSHIP, the API's check)."""
    return ownership_refusal(user, role, user_teams, row.id, row.assignee, row.team) is None


def available_actions(row: Case, role: str, user: str, user_teams: list[str],
                      now: datetime) -> list[str]:
    """The actions this user can take on this case right now, in page order: none on a
    case that is not theirs to act on (the API's ownership check), else the action
    table's own rules on the state as last written, so the case page never offers a
    button that can only fail (the workflow still has the last word, and its refusal is
    shown if the case moved meanwhile)."""
    if not may_act(row, role, user, user_teams):
        return []
    return [a.name for a in available(case_state(row), Actor(user, role), now)]


def split_actions(actions: list[str]) -> tuple[str | None, list[str]]:
    """The case page's actions as its first screen shows them: the stage's main step
    (the first available action the table marks `main`), and the others, in page
    order, behind "more"."""
    main = next((a for a in actions if BY_NAME[a].main), None)
    return main, [a for a in actions if a != main]


def may_attach(row: Case, role: str, user: str, user_teams: list[str],
               now: datetime) -> bool:
    """Whether this user can add a file to the case now: its owner's, at a stage that
    takes files (the checks an upload makes before it stores anything)."""
    return may_act(row, role, user, user_teams) and refusal(
        BY_NAME["attach"], case_state(row), Actor(user, role), now) is None


def thread(messages: list[dict], files: list[dict]) -> list[dict]:
    """The conversation as the pages show it, oldest first: each message with the files
    it brought, and each file that came on its own (an upload) as an entry of its own,
    where it falls in time. `files` are attachment views (with their URLs); each keeps
    `by`: `customer`, a user name, or `staff` in the customer's view."""
    by_id = {f["id"]: f for f in files}
    carried = {a for m in messages for a in m.get("attachments") or []}
    entries = [{**m, "files": [by_id[a] for a in m.get("attachments") or [] if a in by_id]}
               for m in messages]
    entries += [{"id": f["id"], "author": "customer" if f["by"] == "customer" else "staff",
                 "display_name": "", "by": f["by"], "text": "", "at": f["at"],
                 "channel": "", "internal": False, "files": [f]}
                for f in files if f["id"] not in carried]
    return sorted(entries, key=lambda e: str(e["at"] or ""))


def inspecting(resolution: dict | None) -> str | None:
    """The type of the remedy whose goods await inspection (a combined plan's running
    one), or None: a return is graded A-D, a repair passes or fails."""
    if not resolution or resolution.get("awaiting") != "inspection":
        return None
    running = [r for r in resolution.get("remedies") or [] if r.get("state") == "running"]
    return (running[0] if running else resolution).get("type")


def register(app) -> None:
    """The names and helpers every page template uses, as Jinja globals."""
    app.jinja_env.globals.update(
        KIND_NAMES=KIND_NAMES, STAGE_NAMES=STAGE_NAMES, STATUS_NAMES=STATUS_NAMES,
        CLOCK_NAMES=CLOCK_NAMES, CLOCK_STATE_NAMES=CLOCK_STATE_NAMES,
        PAUSE_REASON_NAMES=PAUSE_REASON_NAMES, AWAITING_NAMES=AWAITING_NAMES,
        ROOT_CAUSE_NAMES=ROOT_CAUSE_NAMES, PARTY_NAMES=PARTY_NAMES,
        RESOLUTION_NAMES=RESOLUTION_NAMES, OUTCOME_NAMES=OUTCOME_NAMES,
        COMBINED_NAME=COMBINED_NAME, REMEDY_STATES=REMEDY_STATES, REMEDY_ROWS=REMEDY_ROWS,
        ACTION_NAMES=ACTION_NAMES, ACTION_TABLE=BY_NAME, ROLE_NAMES=ROLE_NAMES,
        EVENT_NAMES=EVENT_NAMES,
        CHANNEL_NAMES=CHANNEL_NAMES, TIER_NAMES=TIER_NAMES,
        ORDER_STATUS_NAMES=ORDER_STATUS_NAMES, PAYMENT_NAMES=PAYMENT_NAMES,
        ACTOR_NAMES=ACTOR_NAMES, PARCEL_WORDS=PARCEL_WORDS, STEP_NAMES=STEP_NAMES,
        STEP_STATES=STEP_STATES, SYSTEM_NAMES=SYSTEM_NAMES, SENTIMENT_NAMES=SENTIMENT_NAMES,
        REFUSALS=REFUSALS, MAX_MESSAGE_LENGTH=MAX_MESSAGE_LENGTH, CASE_ID=CASE_ID,
        GRADES=GRADES, GRADE_NAMES=GRADE_NAMES, inspecting=inspecting, urgency=urgency)
