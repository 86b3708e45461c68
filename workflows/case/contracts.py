"""The dataclasses that cross the workflow boundary: the case's state and snapshot,
the workflow's and each update's input, the activities' requests and receipts, and the
names of the activities the case calls.

Activities, the read model and the web import these, never workflow code.
Dataclasses only hold JSON-friendly fields (str, int, bool, list, dict, datetime) so
Temporal's default converter carries them and a field can be added later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime

from workflows.case.refusals import PROJECTION_REFUSED as _PROJECTION_REFUSED
from workflows.case.refusals import Refusal, refused
from workflows.case.vocabulary import Stage, Status
from workflows.routing import RoutingPolicy, TeamRoster
from workflows.routing import TeamMember as TeamMember  # intake builds rosters of these
from workflows.sla import SlaPolicy


def workflow_id(case_id: str) -> str:
    """The id of a case's workflow in Temporal: the one place it is spelled."""
    return f"case-{case_id}"


@dataclass
class Customer:
    id: str
    name: str
    email: str = ""
    phone: str = ""
    tier: str = "regular"
    # Language of the customer's notifications (zh-CN or en); "" = the default locale.
    locale: str = ""
    # The customer's openid with the retailer's WeChat Official Account: notifications
    # go by WeChat when it is configured and the customer has no email address.
    wechat_openid: str = ""


@dataclass
class CaseItem:
    sku: str
    quantity: int
    reason: str = ""


@dataclass
class OrderLine:
    sku: str
    name: str
    quantity: int
    unit_price: str
    category: str = ""
    # The product's warranty in days from delivery (from purchase when not delivered),
    # as the order system gives it; None where it does not say: a repair is then free.
    warranty_days: int | None = None


@dataclass
class Payment:
    id: str
    method: str
    amount: str
    paid_at: datetime


@dataclass
class OrderSnapshot:
    """What the order system told us about the order at intake (the read model's copy
    adds the case's own refunds to `refunded`: the order as it stands)."""

    id: str
    customer_id: str
    status: str
    currency: str
    total: str
    placed_at: datetime
    delivered_at: datetime | None = None
    lines: list[OrderLine] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    refunded: str = "0.00"
    customer: Customer | None = None
    waybill_no: str = ""
    # The store that sold it ("" from order systems that do not say): routing reads it.
    store_id: str = ""
    # The store's name as its customers know it ("" when the order system gives none).
    store_name: str = ""


@dataclass
class CaseInput:
    """Everything needed to open a case; the workflow's single argument."""

    case_id: str
    kind: str
    channel: str
    order_id: str
    customer: Customer
    items: list[CaseItem]
    description: str
    status_token: str
    customer_url: str
    policy: SlaPolicy
    opened_by: str
    priority: str | None = None
    repeat_of: str | None = None
    # Earlier cases of this customer or on this order within the policy's repeat window.
    recent_cases: list[str] = field(default_factory=list)
    # Quantities per SKU already sent back on this order by earlier returns/exchanges.
    returned: dict[str, int] = field(default_factory=dict)
    # Off only on servers that cannot register custom search attributes (Temporal's
    # time-skipping test server); every real deployment publishes them.
    publish_search_attributes: bool = True
    # The routing rules in force and, per team, who was on duty at intake with their
    # open cases: the workflow picks team and assignee from these (docs/teams.md).
    # None: opened before routing existed, or by a caller that does not route.
    routing: RoutingPolicy | None = None
    rosters: list[TeamRoster] = field(default_factory=list)


@dataclass
class StandingRequest:
    """What an instant refund asks of the read model about the case's customer, as of
    `at` (the workflow's time, so the answer is the same on every retry)."""

    customer_id: str
    case_id: str
    at: datetime


@dataclass
class CustomerStanding:
    """The customer's other cases as the read model has them: instant refunds paid in
    the 90 days before, and the open disputes (docs/resolutions.md, "Instant refund")."""

    instant_refunds_90d: int = 0
    disputes: list[str] = field(default_factory=list)


@dataclass
class StageClock:
    """One SLA clock: working seconds used against a target, running or paused."""

    name: str
    target: int
    used: float = 0.0
    running_since: datetime | None = None
    paused_reason: str | None = None
    state: str = "running"  # running | paused | met | breached
    breached_at: datetime | None = None
    due_at: datetime | None = None
    # Warning shares already announced and escalation levels already taken.
    warned: list[float] = field(default_factory=list)
    escalations: int = 0


@dataclass
class TimelineEvent:
    seq: int
    at: datetime
    actor: str
    type: str
    stage_before: str
    stage_after: str
    detail: dict = field(default_factory=dict)


@dataclass
class OutboxMessage:
    key: str
    at: datetime
    channel: str  # customer | staff
    recipient: str  # customer id, user name, or a role ("role:supervisor")
    template: str
    payload: dict = field(default_factory=dict)


@dataclass
class DeliveryInput:
    """Outbox rows to deliver, by key."""

    keys: list[str]


@dataclass
class DeliveryResult:
    """What became of each key: sent now, already sent, or nobody to reach."""

    sent: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    # Refused by the provider for good (an invalid number, an unsubscribed user):
    # {"key", "template", "medium", "reason"}; the case records each on its timeline.
    undeliverable: list[dict] = field(default_factory=list)


@dataclass
class Resolution:
    type: str
    amount: str | None = None
    items: list[CaseItem] = field(default_factory=list)
    coupon_code: str | None = None
    points: int | None = None
    note: str = ""
    state: str = "planned"  # planned | running | done | failed
    steps: list[dict] = field(default_factory=list)
    done_at: datetime | None = None
    # What the running saga waits for: approval | parcel | inspection, or None.
    awaiting: str | None = None
    # References in the other systems: waybill numbers, refund and reservation ids.
    refs: dict = field(default_factory=dict)
    approved_by: str | None = None
    # Who sent the `resolve`, and whether the policy's four-eyes rule (copied in when the
    # plan is made) keeps that user from approving its refund.
    planned_by: str = ""
    four_eyes: bool = True
    # A manager's `deny` of the refund awaiting approval, and why: the saga releases what
    # it holds and the case goes back to analyze.
    denied_by: str | None = None
    denial_reason: str = ""
    # Several remedies settled at once (`resolutions`, docs/resolutions.md): each is a
    # resolution of its own with its steps, refs and outcome, run in order as one saga;
    # this plan's type is then COMBINED and it holds the approval and what the saga awaits.
    remedies: list[Resolution] = field(default_factory=list)
    # A repair outside the warranty (docs/resolutions.md, "Warranty"): what the handler
    # quotes the customer, and on the plan the quote that waits for the customer's
    # answer (amount, offered_at, due_at, answer: accepted | declined | expired).
    quote_amount: str | None = None
    quote: dict | None = None
    # An exchange's replacement (another size, colour or product) for its one item; None
    # gives the same SKU again (docs/resolutions.md, "exchange").
    replacement_sku: str | None = None
    # The replacement's unit price in the catalogue when the resolve was sent (looked up
    # by the API, never taken from the caller); the saga asks the order system if absent.
    replacement_price: str | None = None


@dataclass
class TriageRequest:
    """What triage reads: the customer's words and where they came from."""

    description: str
    channel: str = ""
    order_id: str | None = None


@dataclass
class Suggestion:
    """One suggested value, how sure the model is (0-1), and the words or rules that
    drove it."""

    value: str
    confidence: float
    reasons: list[str] = field(default_factory=list)


@dataclass
class EscalationRisk:
    value: bool
    confidence: float
    reasons: list[str] = field(default_factory=list)


@dataclass
class Triage:
    """The triage model's suggestions for one description (docs/triage.md)."""

    kind: Suggestion
    root_cause: Suggestion
    priority: Suggestion
    sentiment: Suggestion
    escalation_risk: EscalationRisk
    # The strongest reasons across all suggestions, for a one-line explanation.
    reasons: list[str] = field(default_factory=list)
    # True when the text is odd (another script, hardly any words) or the model unsure.
    low_confidence: bool = False
    notes: list[str] = field(default_factory=list)
    model_version: str = ""
    elapsed_ms: float = 0.0


@dataclass
class Attachment:
    """A file on the case (a photo, a video, an invoice): metadata only. The bytes live
    in the blob store under their SHA-256 and never enter Temporal."""

    id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    by: str = ""  # the user's name, or "customer"
    at: datetime | None = None
    # Shown to the customer: always for their own files, for staff's when they chose so.
    shared: bool = False
    thumbnail_sha256: str | None = None
    width: int | None = None
    height: int | None = None


# One message of the conversation: 1 to 4,000 characters.
MAX_MESSAGE_LENGTH = 4000


@dataclass
class Message:
    """One message of the case's conversation: the customer's (status page, email), a
    handler's reply (the customer sees it), or an internal note (staff only)."""

    id: str
    author: str  # customer | staff
    text: str
    at: datetime
    channel: str  # web | email | desk | api
    # What the customer sees as the writer of a staff message; the user's own name
    # stays in `by`, which only staff see.
    display_name: str = ""
    by: str = ""
    internal: bool = False  # a note: never in the customer's view
    attachments: list[str] = field(default_factory=list)  # attachment ids
    answers: str | None = None  # the question it answered, if any
    # Where it came from outside (an email's Message-ID): the same mail read twice is
    # one message.
    ref: str = ""


@dataclass
class CaseState:
    """Everything a case is, in one place: the workflow holds one of these and changes
    only it, the snapshot the read model stores is this plus a few derived fields, and
    the web reads it back to decide what a user may do now (workflows/case/lifecycle.py).
    """

    case_id: str
    kind: str
    channel: str
    order_id: str
    customer: Customer
    items: list[CaseItem]
    description: str
    status_token: str
    customer_url: str
    created_at: datetime | None = None
    stage: str = Stage.RECORD
    status: str = Status.OPEN
    priority: str = "P3"
    priority_reasons: list[str] = field(default_factory=list)
    assignee: str | None = None
    repeat_of: str | None = None
    order: OrderSnapshot | None = None
    clocks: list[StageClock] = field(default_factory=list)
    breaches: list[dict] = field(default_factory=list)
    analysis: dict | None = None
    resolution: Resolution | None = None
    rating: int | None = None
    rating_comment: str | None = None
    pending_question: str | None = None
    revisit_due_at: datetime | None = None
    feedback_due_at: datetime | None = None
    closed_at: datetime | None = None
    reopen_count: int = 0
    eligibility: dict = field(default_factory=lambda: {"eligible": True, "reasons": []})
    parcels: dict = field(default_factory=dict)
    # A resolution the system proposes to the handler (e.g. after a lost parcel).
    proposal: dict | None = None
    # For the reports: first response, last resolution, money and points given.
    confirmed_at: datetime | None = None
    resolved_at: datetime | None = None
    refunded: str = "0.00"
    compensation_points: int = 0
    # The retailer system a step is waiting on, while it does not answer.
    waiting_on: str | None = None
    # The triage model's suggestions at intake (None for cases opened before triage).
    triage: Triage | None = None
    # Free-text tags staff put on the case (the `tag` action).
    tags: list[str] = field(default_factory=list)
    # Evidence: photos, videos and PDFs from the customer and staff (the `attach` action).
    attachments: list[Attachment] = field(default_factory=list)
    # The conversation, oldest first; and since when the customer's last message waits
    # for an answer (None: nobody is waiting).
    messages: list[Message] = field(default_factory=list)
    awaiting_reply_since: datetime | None = None
    # The store that sold the order ("" without one) and the team whose queue the case
    # is in (None: no team, e.g. cases opened before routing; docs/teams.md).
    store: str = ""
    team: str | None = None
    # The workflow's own bookkeeping, kept with the rest so nothing lives beside it.
    revisit_notified: bool = False
    inspection: dict | None = None
    # Set when an inspection graded the returned goods D (not the item sent): the case
    # waits for a fraud review (the desk's badge, the reports' count).
    fraud_review: bool = False
    # When this case's return was refunded at the courier's pickup (instant refund), and
    # the recoveries its merchant has to make when the goods then fail: each
    # {"id", "amount", "refund_id", "reason", "at", "state"} (docs/resolutions.md).
    instant_refund_at: datetime | None = None
    recovery_tasks: list[dict] = field(default_factory=list)
    resolution_attempt: int = 0
    courier_events_seen: list[str] = field(default_factory=list)
    logistics_events_seen: list[str] = field(default_factory=list)
    # When the customer's personal data was erased (on request, or at the end of the
    # retention period); an erased case takes no more changes.
    anonymised_at: datetime | None = None
    # Why an ended case ended, when it is not the plain outcome of its stage: "duplicate"
    # for a case merged into another. The case it was merged into, and the cases merged
    # into this one (docs/teams.md, "Merging duplicates").
    close_reason: str | None = None
    merged_into: str | None = None
    merged_from: list[str] = field(default_factory=list)


@dataclass
class CaseSnapshot(CaseState):
    """The case as the read model stores it: the state plus what follows from it at
    the moment of the write (deadlines, overdue, the write's version)."""

    version: int = 0
    updated_at: datetime | None = None
    stage_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    overdue: bool = False
    # When a running target reaches AT_RISK_SHARE (the supervisor's "at risk" list).
    at_risk_at: datetime | None = None
    sla_policy: dict = field(default_factory=dict)
    # What the order may still have refunded (paid, minus refunds at intake and this
    # case's own; None without an order), and the case's policy's approval limit: the
    # resolve form says before it is sent whether a refund waits for approval. (The
    # snapshot's `order.refunded` counts this case's refunds too.)
    refundable: str | None = None
    approval_limit: str | None = None


ERASED = "(erased)"


def pseudonym(customer_id: str) -> str:
    """The id an erased customer's cases are filed under: the same for all of them,
    and not the customer's."""
    return "anon-" + hashlib.sha256(customer_id.encode()).hexdigest()[:12]


def erase_personal_data(state: CaseState, now: datetime) -> set[str]:
    """Take the customer's personal data out of the case, in place: the one definition
    of what erasure removes from a case, used by the running workflow (so no later write
    brings anything back) and by the read model for cases whose workflow has ended.
    Who did what when stays; the words, the files and the ways to reach them go.
    Returns the blobs (sha256) of the case's files, to be deleted."""
    c = state.customer
    state.customer = Customer(id=pseudonym(c.id), name=ERASED, tier=c.tier)
    state.description = ERASED
    state.rating_comment = None
    state.pending_question = None
    # The conversation: who wrote when stays, never the words (or the question answered).
    state.messages = [replace(m, text=ERASED, answers=None, attachments=[], ref="")
                      for m in state.messages]
    if state.analysis:
        state.analysis = {**state.analysis, "note": ERASED}
    if state.inspection:
        state.inspection = {**state.inspection, "note": ERASED}
    # Tags are staff's free text and may name the customer.
    state.tags = []
    # Photos show the customer, their home, their parcel label: the files go, names too.
    freed = {s for a in state.attachments for s in (a.sha256, a.thumbnail_sha256) if s}
    state.attachments = []
    if state.triage:
        # The reasons quote the customer's words.
        t = state.triage
        state.triage = replace(
            t, reasons=[], kind=replace(t.kind, reasons=[]),
            root_cause=replace(t.root_cause, reasons=[]),
            priority=replace(t.priority, reasons=[]),
            sentiment=replace(t.sentiment, reasons=[]),
            escalation_risk=replace(t.escalation_risk, reasons=[]))
    # The link: nobody may open the case with it any more.
    state.customer_url = ""
    state.anonymised_at = now
    return freed


@dataclass
class Projection:
    """One write to the read model: the snapshot plus what happened since the last."""

    snapshot: CaseSnapshot
    events: list[TimelineEvent] = field(default_factory=list)
    outbox: list[OutboxMessage] = field(default_factory=list)
    # Carries what an earlier write refused for good (PROJECTION_REFUSED) did not
    # write: once this one succeeds, the case is no longer listed as failed.
    after_failure: bool = False


# The projection activity's failure when the read model refuses the write for good.
PROJECTION_REFUSED = _PROJECTION_REFUSED


@dataclass
class OrderLookup:
    order_id: str


@dataclass
class ProductLookup:
    sku: str


@dataclass
class Product:
    """A catalogue entry of the order system: what the SKU sells for now."""

    sku: str
    name: str
    unit_price: str
    category: str = ""


@dataclass
class PaymentLinkRequest:
    """Ask the order system for a link where the customer pays `amount` on the order
    (an exchange's price difference) until `expires_at`."""

    order_id: str
    case_id: str
    amount: str
    expires_at: datetime
    idempotency_key: str


@dataclass
class PaymentLink:
    """A payment link of the order system and how it stands: open, paid, cancelled or
    expired."""

    id: str
    url: str
    amount: str
    status: str
    expires_at: datetime | None = None
    paid_at: datetime | None = None


@dataclass
class CompensationRequest:
    order_id: str
    case_id: str
    idempotency_key: str
    coupon_code: str | None = None
    points: int | None = None
    amount: str | None = None
    # The customer's id: a case without an order is compensated on the customer.
    customer_id: str = ""


@dataclass
class CompensationReceipt:
    id: str
    order_id: str
    kind: str
    coupon_code: str | None = None
    points: int | None = None
    amount: str | None = None
    # The last moment a coupon can be used (None: points, or the system does not say).
    expires_at: datetime | None = None


@dataclass
class RefundRequest:
    order_id: str
    case_id: str
    amount: str
    idempotency_key: str


@dataclass
class RefundReceipt:
    id: str
    order_id: str
    amount: str
    # Where the money goes back (the payment's method: alipay, wechat_pay, card) and
    # within how many working days it usually arrives there, first and last ([] unknown).
    method: str = ""
    arrives_in_working_days: list[int] = field(default_factory=list)
    refunded_at: datetime | None = None


@dataclass
class ReservationRequest:
    sku: str
    quantity: int
    reference: str
    idempotency_key: str


@dataclass
class Reservation:
    id: str
    sku: str
    quantity: int
    state: str


@dataclass
class StockMovement:
    """A restock or a write-off of returned goods."""

    sku: str
    quantity: int
    reference: str
    idempotency_key: str
    reason: str = ""
    # Where restocked goods go back on sale: "stock", or "open_box" (grade B).
    location: str = "stock"


@dataclass
class Address:
    name: str
    address: str


@dataclass
class WaybillRequest:
    type: str  # return_pickup | outbound | repair_pickup | repair_return
    reference: str
    idempotency_key: str
    sender: Address
    recipient: Address
    items: list[CaseItem] = field(default_factory=list)


@dataclass
class Waybill:
    waybill_no: str
    type: str
    status: str


@dataclass
class LogisticsException:
    """A courier exception (delayed, lost, damaged) on the order's own delivery."""

    event_id: str
    waybill_no: str
    status: str
    at: datetime
    detail: str = ""


@dataclass
class CourierEvent:
    """A tracking event from the courier system, delivered by its webhook."""

    event_id: str
    waybill_no: str
    status: str
    at: datetime
    detail: str = ""


# --- Update inputs: one dataclass per action, each with the acting user. ---


@dataclass
class Actor:
    name: str
    role: str


@dataclass
class AssignInput:
    actor: Actor
    assignee: str


@dataclass
class UnassignInput:
    """The case back to the unassigned queue while `assignee` still holds it (their
    account was deactivated: `reason`)."""

    actor: Actor
    assignee: str
    reason: str


@dataclass
class ConfirmInput:
    actor: Actor
    note: str
    priority: str | None = None
    kind: str | None = None


@dataclass
class ReasonInput:
    """reject, escalate, reopen, cancel, deny."""

    actor: Actor
    reason: str


@dataclass
class AnalyzeInput:
    actor: Actor
    root_cause: str
    responsible_party: str
    note: str


@dataclass
class ResolveInput:
    """One `resolution`, or `resolutions`: several remedies run in order as one saga."""

    actor: Actor
    resolution: Resolution | None = None
    note: str = ""
    resolutions: list[Resolution] = field(default_factory=list)


@dataclass
class InspectInput:
    """The inspection of returned goods: a `grade` (A-D, docs/resolutions.md), or
    `passed`, kept for older clients as A (true) or C (false)."""

    actor: Actor
    passed: bool | None = None
    note: str = ""
    grade: str | None = None


@dataclass
class RequestInfoInput:
    actor: Actor
    question: str


@dataclass
class NoteInput:
    actor: Actor
    text: str
    channel: str = "desk"  # desk | api | email (a mail for staff to check)
    ref: str = ""  # an email's Message-ID: sent twice, recorded once


# Free-text tags on a case (the `tag` action): how many, and how long each.
MAX_TAGS = 20
MAX_TAG_LENGTH = 40


def tag_problem(tag: str) -> Refusal | None:
    """What is wrong with a tag, or None: 1-40 characters, no leading or trailing
    space, no comma, tab or line break (the desk splits on commas)."""
    if not tag.strip() or tag != tag.strip():
        return refused("tag_blank", "add")
    if len(tag) > MAX_TAG_LENGTH:
        return refused("tag_too_long", "add", max=MAX_TAG_LENGTH)
    if any(ch in tag for ch in ",\r\n\t"):
        return refused("tag_characters", "add")
    return None


@dataclass
class TagInput:
    actor: Actor
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


@dataclass
class MergeInput:
    """This case duplicates `into` (the same customer wrote twice): it closes as a
    duplicate and `into` goes on."""

    actor: Actor
    into: str


@dataclass
class MergedIn:
    """What a duplicate tells the case it was merged into (signal `merged_in`)."""

    case_id: str
    by: str


@dataclass
class AttachInput:
    """A file already in the blob store, to be recorded on the case."""

    attachment: Attachment
    actor: Actor | None = None  # None: the customer, through the status link
    max_files: int = 20  # the setting in force when it was sent (AFTERSALES_MAX_FILES)


@dataclass
class ApproveInput:
    actor: Actor
    note: str = ""


@dataclass
class RevisitInput:
    actor: Actor
    outcome: str
    note: str = ""


@dataclass
class FeedbackInput:
    rating: int
    comment: str = ""


@dataclass
class QuoteAnswerInput:
    """The customer's answer to a repair quote: `accept` or `decline`."""

    decision: str


@dataclass
class ReplyInput:
    """The customer writes (the update keeps its first name, `reply`, from when it
    could only answer a question)."""

    message: str
    channel: str = "web"  # web | email
    attachments: list[str] = field(default_factory=list)
    ref: str = ""  # an email's Message-ID: sent twice, recorded once


@dataclass
class StaffReplyInput:
    """A handler answers the customer; the customer sees it, signed `display_name`."""

    actor: Actor
    message: str
    display_name: str = ""
    channel: str = "desk"  # desk | api


@dataclass
class UpdateResult:
    """What every update returns: the case's new version and stage."""

    case_id: str
    version: int
    stage: str
    status: str


@dataclass
class CaseResult:
    """What the workflow returns when the case ends."""

    case_id: str
    stage: str
    recorded: bool
    error: str | None = None


# --- The activities the case calls, by name: the workflow never imports activity code.


@dataclass(frozen=True)
class ActivityRef:
    """An activity's registered name, the type it returns and the retailer system it
    talks to (shown on the case while that system does not answer)."""

    name: str
    result: type | None
    system: str = ""


@dataclass
class RosterRequest:
    """The teams whose rosters a case routed again needs (docs/teams.md)."""

    teams: list[str]


@dataclass
class Rosters:
    """Each asked team's on-duty handlers with their open cases, as the read model has
    them now."""

    rosters: list[TeamRoster] = field(default_factory=list)


LOOKUP_ORDER = ActivityRef("lookup_order", OrderSnapshot, "order system")
LOOKUP_PRODUCT = ActivityRef("lookup_product", Product, "order system")
CREATE_PAYMENT_LINK = ActivityRef("create_payment_link", PaymentLink, "order system")
CHECK_PAYMENT_LINK = ActivityRef("check_payment_link", PaymentLink, "order system")
CANCEL_PAYMENT_LINK = ActivityRef("cancel_payment_link", PaymentLink, "order system")
GRANT_COMPENSATION = ActivityRef("grant_compensation", CompensationReceipt, "order system")
REFUND_PAYMENT = ActivityRef("refund_payment", RefundReceipt, "order system")
RESERVE_STOCK = ActivityRef("reserve_stock", Reservation, "inventory system")
RELEASE_RESERVATION = ActivityRef("release_reservation", Reservation, "inventory system")
SHIP_RESERVATION = ActivityRef("ship_reservation", Reservation, "inventory system")
RESTOCK = ActivityRef("restock", str, "inventory system")
WRITE_OFF = ActivityRef("write_off", str, "inventory system")
CREATE_WAYBILL = ActivityRef("create_waybill", Waybill, "courier system")
CANCEL_WAYBILL = ActivityRef("cancel_waybill", Waybill, "courier system")
PROJECT_CASE = ActivityRef("project_case", None)
DELIVER_NOTIFICATIONS = ActivityRef("deliver_notifications", DeliveryResult)
TRIAGE_CASE = ActivityRef("triage_case", Triage)
READ_ROSTERS = ActivityRef("read_rosters", Rosters)
READ_STANDING = ActivityRef("read_customer_standing", CustomerStanding)
