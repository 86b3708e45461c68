"""marshmallow schemas for every request body; enumerations come from the domain."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates,
    validates_schema,
)

from db.accounts import MIN_PASSWORD_LENGTH
from workflows.case import remedies
from workflows.case.contracts import (
    MAX_MESSAGE_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    AnalyzeInput,
    ApproveInput,
    AssignInput,
    CaseItem,
    ConfirmInput,
    FeedbackInput,
    InspectInput,
    MergeInput,
    NoteInput,
    QuoteAnswerInput,
    ReasonInput,
    ReplyInput,
    RequestInfoInput,
    Resolution,
    ResolveInput,
    RevisitInput,
    StaffReplyInput,
    TagInput,
    tag_problem,
)
from workflows.case.lifecycle import STAFF_ACTIONS
from workflows.case.vocabulary import (
    CASE_ID,
    CHANNELS,
    GOODS_RESOLUTIONS,
    GRADES,
    KINDS,
    LOCALES,
    MAX_REMEDIES,
    PRIORITIES,
    QUOTE_DECISIONS,
    REFUNDING_GRADES,
    RESOLUTION_TYPES,
    RESPONSIBLE_PARTIES,
    REVISIT_OUTCOMES,
    ROLES,
    ROOT_CAUSES,
    STAGES,
    TEAM_NAME,
    TIERS,
)

MONEY = re.compile(r"^\d{1,10}(\.\d{1,2})?$")
ID = validate.Length(min=1, max=64)
SHORT = validate.Length(min=1, max=200)
TEXT = validate.Length(min=1, max=4000)
OPTIONAL_TEXT = validate.Length(max=4000)
SKU = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z",
                      error="a SKU is letters, digits, '.', '_' or '-' (at most 64)")


def team_name(value: str) -> None:
    if not re.match(TEAM_NAME, value):
        raise ValidationError("a team name is 1-40 letters, digits, '.', '-' or '_'")


def money(value: str) -> None:
    if not MONEY.match(value) or Decimal(value) <= 0:
        raise ValidationError("a positive decimal string with at most 2 places, e.g. \"25.00\"")


class CustomerSchema(Schema):
    id = fields.String(required=True, validate=ID)
    name = fields.String(required=True, validate=SHORT)
    email = fields.Email(load_default="", validate=validate.Length(max=200))
    phone = fields.String(load_default="", validate=validate.Length(max=40))
    tier = fields.String(load_default="regular", validate=validate.OneOf(TIERS))
    # Language of the customer's notifications; absent: from Accept-Language, else the
    # default locale.
    locale = fields.String(load_default="", validate=validate.OneOf(("", *LOCALES)))
    wechat_openid = fields.String(load_default="", validate=validate.Regexp(
        r"^[A-Za-z0-9_-]{0,64}$", error="a WeChat openid: letters, digits, '-' and '_'"))


class ItemSchema(Schema):
    sku = fields.String(required=True, validate=ID)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(1, 9999))
    reason = fields.String(load_default="", validate=validate.Length(max=500))


class CaseCreateSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    # Omitted (or "") only for a complaint without an order: then the customer's name and
    # a phone or an email are required.
    order_id = fields.String(load_default="", validate=validate.Length(max=64))
    customer = fields.Nested(CustomerSchema, required=True)
    items = fields.List(fields.Nested(ItemSchema), load_default=list,
                        validate=validate.Length(max=100))
    description = fields.String(required=True, validate=TEXT)
    priority = fields.String(load_default=None, validate=validate.OneOf(PRIORITIES))

    @validates_schema
    def orderless_complaint(self, data: dict, **kwargs) -> None:
        if data.get("order_id"):
            return
        if data.get("kind") != "complaint":
            raise ValidationError("an order is needed, except for a complaint", "order_id")
        customer = data.get("customer") or {}
        if not (customer.get("phone") or customer.get("email")):
            raise ValidationError("a complaint without an order needs the customer's phone "
                                  "or email", "customer")
        if data.get("items"):
            raise ValidationError("a complaint without an order has no order lines", "items")


CONTACT = validate.Length(min=3, max=200)


class RequestLookupSchema(Schema):
    """The customer's proof of the order: its number and the phone or email on it."""

    order_id = fields.String(required=True, validate=ID)
    contact = fields.String(required=True, validate=CONTACT)


class RequestSchema(RequestLookupSchema):
    """The customer's own request (POST /api/v1/requests)."""

    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    items = fields.List(fields.Nested(ItemSchema), required=True,
                        validate=validate.Length(min=1, max=100))
    description = fields.String(required=True, validate=TEXT)
    locale = fields.String(load_default="", validate=validate.OneOf(("", *LOCALES)))
    code = fields.String(load_default=None, validate=validate.Regexp(
        r"^\d{6}$", error="the 6-digit code we sent"))


class CaseListQuery(Schema):
    stage = fields.String(validate=validate.OneOf(STAGES))
    kind = fields.String(validate=validate.OneOf(KINDS))
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    assignee = fields.String(validate=ID)
    overdue = fields.Boolean()
    escalation_risk = fields.Boolean()
    fraud_review = fields.Boolean()
    recovery = fields.Boolean()
    q = fields.String(validate=validate.Length(min=1, max=100))
    tag = fields.String(validate=validate.Length(min=1, max=MAX_TAG_LENGTH))
    team = fields.String(validate=team_name)
    store = fields.String(validate=validate.Length(min=1, max=64))
    created_from = fields.AwareDateTime(default_timezone=UTC)
    created_to = fields.AwareDateTime(default_timezone=UTC)
    sort = fields.String(load_default="due", validate=validate.OneOf(("due", "created",
                                                                      "priority")))
    page = fields.Integer(validate=validate.Range(1, 100000))
    cursor = fields.String(validate=validate.Length(min=1, max=500))
    per_page = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")),
                           metadata={"description": "csv: every matching case as a CSV "
                                                    "download (docs/api.md)"})

    @validates_schema
    def one_way_to_page(self, data: dict, **kwargs) -> None:
        if "page" in data and "cursor" in data:
            raise ValidationError("use page or cursor, not both", "cursor")
        if data.get("format") == "csv":
            for name in ("page", "cursor"):
                if name in data:
                    raise ValidationError("an export holds every matching case; it has "
                                          "no pages", name)
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and start > end:
            raise ValidationError("created_from is after created_to", "created_from")


class UserCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Za-z0-9._-]{1,64}$", error="1-64 letters, digits, '.', '-' or '_'"))
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    password = fields.String(load_default=None, load_only=True,
                             validate=validate.Length(min=8, max=200))
    email = fields.Email(load_default="", validate=validate.Length(max=200))
    locale = fields.String(load_default="", validate=validate.OneOf(("", *LOCALES)))
    display_name = fields.String(load_default="", validate=validate.Length(max=40))
    teams = fields.List(fields.String(validate=team_name), load_default=list,
                        validate=validate.Length(max=20))


class DutySchema(Schema):
    on_duty = fields.Boolean(required=True, truthy={True}, falsy={False})


class PasswordSetSchema(Schema):
    """An admin's reset of a user's password."""

    password = fields.String(required=True, load_only=True, validate=validate.Length(
        min=MIN_PASSWORD_LENGTH, max=200))


def _audit_time(value: str, field_name: str, end: bool) -> datetime:
    """A time (ISO 8601, UTC unless it says otherwise) or a day: `to` a day means to
    the end of that day."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        if end and len(value) == 10:
            parsed += timedelta(days=1)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationError("a date (2026-12-04) or a time (2026-12-04T08:00:00Z)",
                              field_name) from None


class AuditQuery(Schema):
    """The audit log's filters (GET /api/v1/audit and the admin page)."""

    actor = fields.String(validate=ID)
    case_id = fields.String(validate=ID)
    action = fields.String(validate=validate.Length(min=1, max=32))
    start = fields.String(data_key="from", validate=validate.Length(max=40))
    end = fields.String(data_key="to", validate=validate.Length(max=40))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))

    @post_load
    def times(self, data: dict, **kwargs) -> dict:
        if data.get("start"):
            data["start"] = _audit_time(data["start"], "from", end=False)
        if data.get("end"):
            data["end"] = _audit_time(data["end"], "to", end=True)
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            raise ValidationError("from must be before to", "from")
        return data


class AssignSchema(Schema):
    contract = AssignInput
    assignee = fields.String(required=True, validate=ID)


class ConfirmSchema(Schema):
    contract = ConfirmInput
    note = fields.String(required=True, validate=TEXT)
    priority = fields.String(load_default=None, validate=validate.OneOf(PRIORITIES))
    kind = fields.String(load_default=None, validate=validate.OneOf(KINDS))


class ReasonSchema(Schema):
    contract = ReasonInput
    reason = fields.String(required=True, validate=TEXT)

    @validates("reason")
    def not_blank(self, value: str, **kwargs) -> None:
        # Spaces are no reason: a deny, reject or cancel must say why.
        if not value.strip():
            raise ValidationError("the reason is empty")


class AnalyzeSchema(Schema):
    contract = AnalyzeInput
    root_cause = fields.String(required=True, validate=validate.OneOf(ROOT_CAUSES))
    responsible_party = fields.String(required=True,
                                      validate=validate.OneOf(RESPONSIBLE_PARTIES))
    note = fields.String(required=True, validate=TEXT)


class ResolutionSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(RESOLUTION_TYPES))
    amount = fields.String(load_default=None, validate=money)
    items = fields.List(fields.Nested(ItemSchema), load_default=list,
                        validate=validate.Length(max=100))
    coupon_code = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    points = fields.Integer(load_default=None, strict=True,
                            validate=validate.Range(1, 10_000_000))
    # What a repair outside the warranty costs the customer (docs/resolutions.md,
    # "Warranty"); the workflow decides whether the items are outside it.
    quote_amount = fields.String(load_default=None, validate=money)
    # An exchange for another size, colour or product; its price is the catalogue's,
    # looked up by the API (web/catalogue.py), never sent.
    replacement_sku = fields.String(load_default=None, validate=SKU)

    @validates_schema
    def check_shape(self, data: dict, **kwargs) -> None:
        kind = data["type"]
        if data.get("quote_amount") is not None and kind != "repair":
            raise ValidationError("only a repair outside the warranty takes a quote_amount",
                                  "quote_amount")
        problem = remedies.replacement_problem(Resolution(
            type=kind, items=[CaseItem(i["sku"], i["quantity"]) for i in data.get("items", [])],
            replacement_sku=data.get("replacement_sku")))
        if problem:
            raise ValidationError(problem.message, "replacement_sku")
        if kind == "compensation" and not (data.get("coupon_code") or data.get("points")
                                           or data.get("amount")):
            raise ValidationError("a compensation needs coupon_code, points or an amount "
                                  "(a partial refund)", "coupon_code")
        if kind in ("refund",) and not data.get("amount"):
            raise ValidationError("a refund needs an amount", "amount")
        if kind in GOODS_RESOLUTIONS and not data.get("items"):
            raise ValidationError(f"a {kind} needs the items that move", "items")


class ResolveSchema(Schema):
    """One `resolution`, or `resolutions`: up to MAX_REMEDIES remedies run in order, each
    kind of remedy once (workflows/case/remedies.py)."""

    contract = ResolveInput
    resolution = fields.Nested(ResolutionSchema, load_default=None)
    resolutions = fields.List(fields.Nested(ResolutionSchema), load_default=list,
                              validate=validate.Length(min=1, max=MAX_REMEDIES))
    note = fields.String(load_default="", validate=OPTIONAL_TEXT)

    @validates_schema
    def check_one_plan(self, data: dict, **kwargs) -> None:
        one, several = data.get("resolution"), data.get("resolutions")
        if one is not None and several:
            raise ValidationError("send resolution or resolutions, not both", "resolutions")
        if one is None and not several:
            raise ValidationError("send resolution, or resolutions (a list of remedies)",
                                  "resolution")
        problem = remedies.list_problem([Resolution(
            type=r["type"], amount=r.get("amount"), coupon_code=r.get("coupon_code"),
            points=r.get("points")) for r in several]) if several else None
        if problem:
            raise ValidationError(problem.message, "resolutions")


class InspectSchema(Schema):
    """`grade` (A-D) or, for older clients, `passed` (A or C); both only when they agree."""

    contract = InspectInput
    passed = fields.Boolean(load_default=None, truthy={True}, falsy={False})
    grade = fields.String(load_default=None, validate=validate.OneOf(GRADES))
    note = fields.String(load_default="", validate=OPTIONAL_TEXT)

    @validates_schema
    def grade_or_passed(self, data: dict, **kwargs) -> None:
        grade, passed = data.get("grade"), data.get("passed")
        if grade is None and passed is None:
            raise ValidationError("give the inspection's grade (A, B, C or D) or passed",
                                  "grade")
        if grade is not None and passed is not None and passed != (grade in REFUNDING_GRADES):
            raise ValidationError(f"grade {grade} and passed {str(passed).lower()} disagree: "
                                  "give the grade alone", "passed")


class RequestInfoSchema(Schema):
    contract = RequestInfoInput
    question = fields.String(required=True, validate=TEXT)


class NoteSchema(Schema):
    contract = NoteInput
    text = fields.String(required=True, validate=TEXT)


def _tag(value: str) -> None:
    problem = tag_problem(value)
    if problem:
        raise ValidationError(problem.message)


TAG = fields.String(validate=[validate.Length(min=1, max=MAX_TAG_LENGTH), _tag])


class TagSchema(Schema):
    contract = TagInput
    add = fields.List(TAG, load_default=list, validate=validate.Length(max=MAX_TAGS))
    remove = fields.List(TAG, load_default=list, validate=validate.Length(max=MAX_TAGS))

    @validates_schema
    def something_to_do(self, data: dict, **kwargs) -> None:
        if not data["add"] and not data["remove"]:
            raise ValidationError("name at least one tag to add or remove", "add")


def _case_id(value: str) -> None:
    # fullmatch: a `$` would let a trailing line break through.
    if not re.fullmatch(CASE_ID, value):
        raise ValidationError("not a case id (AS- and 10 letters or digits)")


class MergeSchema(Schema):
    contract = MergeInput
    into = fields.String(required=True, validate=[validate.Length(max=13), _case_id])


class ApproveSchema(Schema):
    contract = ApproveInput
    note = fields.String(load_default="", validate=OPTIONAL_TEXT)


class RevisitSchema(Schema):
    contract = RevisitInput
    outcome = fields.String(required=True, validate=validate.OneOf(REVISIT_OUTCOMES))
    note = fields.String(load_default="", validate=OPTIONAL_TEXT)


class FeedbackSchema(Schema):
    contract = FeedbackInput
    rating = fields.Integer(required=True, strict=True, validate=validate.Range(1, 5))
    comment = fields.String(load_default="", validate=OPTIONAL_TEXT)


class QuoteAnswerSchema(Schema):
    """The customer's answer to a repair quote (`POST /api/v1/status/<token>/quote`)."""

    contract = QuoteAnswerInput
    decision = fields.String(required=True, validate=validate.OneOf(QUOTE_DECISIONS))


MESSAGE = validate.Length(min=1, max=MAX_MESSAGE_LENGTH,
                          error=f"between 1 and {MAX_MESSAGE_LENGTH} characters")


class ReplySchema(Schema):
    """What the customer writes (`POST /api/v1/status/<token>/messages`)."""

    contract: type = ReplyInput
    message = fields.String(required=True, validate=MESSAGE)

    @validates("message")
    def not_blank(self, value: str, **kwargs) -> None:
        if not value.strip():
            raise ValidationError("the message is empty")


class StaffReplySchema(ReplySchema):
    """A handler's reply to the customer (the `reply` action); who signs it is the
    server's to say, from the user's display name."""

    contract = StaffReplyInput


TRIAGE_MAX = 5000


class TriageRequestSchema(Schema):
    description = fields.String(required=True, validate=validate.Length(
        min=1, max=TRIAGE_MAX, error="between 1 and 5000 characters"))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    order_id = fields.String(load_default=None, allow_none=True, validate=ID)

    @validates("description")
    def readable(self, value: str, **kwargs) -> None:
        if not value.strip():
            raise ValidationError("the description is empty")
        if not any(ch.isalpha() for ch in value):
            raise ValidationError("the description has no words to read (only digits, "
                                  "symbols or emoji)")


# The body schema of each staff action, found by the input dataclass its table row
# names (workflows/case/lifecycle.py): a new action needs only its schema above.
def _descendants(cls: type) -> list[type]:
    children: list[type] = cls.__subclasses__()
    return [sub for child in children for sub in (child, *_descendants(child))]


_BY_CONTRACT = {contract: cls for cls in _descendants(Schema)
                if (contract := cls.__dict__.get("contract")) is not None}
ACTION_SCHEMAS: dict[str, type[Schema]] = {
    action.name: _BY_CONTRACT[action.input] for action in STAFF_ACTIONS}


# ---------------------------------------------------------------- responses
# Describe what the API answers; the OpenAPI document is generated from them and the
# schemathesis test holds the answers to them.


class ProblemSchema(Schema):
    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    # A refused action: its stable code (workflows/case/refusals.py) and the input it is
    # about, when it is about one.
    code = fields.String(metadata={"description": "the refusal's stable snake_case code"})
    field = fields.String(metadata={"description": "the input the refusal is about"})


class SuggestionSchema(Schema):
    value = fields.String(required=True)
    confidence = fields.Float(required=True, validate=validate.Range(0, 1))
    reasons = fields.List(fields.String(), required=True)


class EscalationRiskSchema(Schema):
    value = fields.Boolean(required=True)
    confidence = fields.Float(required=True, validate=validate.Range(0, 1))
    reasons = fields.List(fields.String(), required=True)


class TriageSchema(Schema):
    kind = fields.Nested(SuggestionSchema, required=True)
    root_cause = fields.Nested(SuggestionSchema, required=True)
    priority = fields.Nested(SuggestionSchema, required=True)
    sentiment = fields.Nested(SuggestionSchema, required=True)
    escalation_risk = fields.Nested(EscalationRiskSchema, required=True)
    reasons = fields.List(fields.String(), required=True)
    low_confidence = fields.Boolean(required=True)
    notes = fields.List(fields.String(), required=True)
    model_version = fields.String(required=True)
    elapsed_ms = fields.Float(required=True)


class ClockSchema(Schema):
    name = fields.String(required=True)
    target = fields.Integer(required=True)
    used = fields.Float(required=True)
    running_since = fields.DateTime(allow_none=True)
    paused_reason = fields.String(allow_none=True)
    state = fields.String(required=True, validate=validate.OneOf(
        ("running", "paused", "met", "breached")))
    breached_at = fields.DateTime(allow_none=True)
    due_at = fields.DateTime(allow_none=True)
    warned = fields.List(fields.Float())
    escalations = fields.Integer()


class DeadlinesSchema(Schema):
    stage_due_at = fields.DateTime(required=True, allow_none=True)
    resolution_due_at = fields.DateTime(required=True, allow_none=True)
    overdue = fields.Boolean(required=True)
    feedback_due_at = fields.DateTime(allow_none=True)
    revisit_due_at = fields.DateTime(allow_none=True)
    clocks = fields.List(fields.Nested(ClockSchema))
    breaches = fields.List(fields.Dict())
    sla_policy = fields.Dict()


class TimelineEventSchema(Schema):
    seq = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    actor = fields.String(required=True)
    type = fields.String(required=True)
    stage_before = fields.String(required=True)
    stage_after = fields.String(required=True)
    detail = fields.Dict(required=True)


class AttachmentSchema(Schema):
    id = fields.String(required=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    url = fields.String(required=True)
    thumbnail_url = fields.String(required=True, allow_none=True)
    by = fields.String(required=True)
    at = fields.DateTime(required=True, allow_none=True)
    shared = fields.Boolean(required=True)


class MessageSchema(Schema):
    """One message of the conversation; the customer's view leaves out notes and the
    staff's user names."""

    id = fields.String(required=True)
    author = fields.String(required=True, validate=validate.OneOf(("customer", "staff")))
    display_name = fields.String(required=True)
    text = fields.String(required=True)
    at = fields.DateTime(required=True)
    channel = fields.String(required=True)
    attachments = fields.List(fields.String(), required=True)
    by = fields.String()
    internal = fields.Boolean()


class CaseSchema(Schema):
    id = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    stage = fields.String(required=True, validate=validate.OneOf(STAGES))
    status = fields.String(required=True)
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    priority_reasons = fields.List(fields.String(), required=True)
    assignee = fields.String(required=True, allow_none=True)
    order_id = fields.String(required=True)
    customer = fields.Dict(required=True)
    items = fields.List(fields.Dict(), required=True)
    description = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    deadlines = fields.Nested(DeadlinesSchema, required=True)
    repeat_of = fields.String(required=True, allow_none=True)
    order = fields.Dict(required=True, allow_none=True)
    analysis = fields.Dict(required=True, allow_none=True)
    resolution = fields.Dict(required=True, allow_none=True)
    rating = fields.Integer(required=True, allow_none=True)
    rating_comment = fields.String(required=True, allow_none=True)
    pending_question = fields.String(required=True, allow_none=True)
    reopen_count = fields.Integer(required=True)
    eligibility = fields.Dict(required=True)
    parcels = fields.Dict(required=True)
    proposal = fields.Dict(required=True, allow_none=True)
    waiting_on = fields.String(required=True, allow_none=True)
    triage = fields.Nested(TriageSchema, required=True, allow_none=True)
    closed_at = fields.DateTime(required=True, allow_none=True)
    tags = fields.List(fields.String(), required=True)
    attachments = fields.List(fields.Nested(AttachmentSchema), required=True)
    messages = fields.List(fields.Nested(MessageSchema), required=True)
    awaiting_reply_since = fields.DateTime(required=True, allow_none=True)
    team = fields.String(required=True, allow_none=True)
    store = fields.String(required=True)
    close_reason = fields.String(required=True, allow_none=True)
    merged_into = fields.String(required=True, allow_none=True)
    merged_from = fields.List(fields.String(), required=True)
    # An inspection graded the returned goods D: the case waits for a fraud review.
    fraud_review = fields.Boolean(required=True)
    # A return refunded at pickup (instant refund), and what the merchant has to recover
    # because its goods then failed.
    instant_refund_at = fields.DateTime(required=True, allow_none=True)
    recovery_tasks = fields.List(fields.Dict(), required=True)
    # What the order may still have refunded (null without an order), and the approval
    # limit of the case's policy: above it, the order's refunds wait for a supervisor.
    refundable = fields.String(required=True, allow_none=True)
    approval_limit = fields.String(required=True, allow_none=True)
    customer_url = fields.String(required=True)
    version = fields.Integer(required=True)
    timeline = fields.List(fields.Nested(TimelineEventSchema))


class CaseListSchema(Schema):
    items = fields.List(fields.Nested(CaseSchema), required=True)
    total = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    page = fields.Integer(required=True, allow_none=True)
    next_cursor = fields.String(required=True, allow_none=True)


class CustomerHistorySchema(Schema):
    at = fields.DateTime(required=True)
    what = fields.String(required=True)
    stage = fields.String(required=True)


class MergedIntoSchema(Schema):
    case_id = fields.String(required=True)
    customer_url = fields.String(required=True, allow_none=True)


class QuoteSchema(Schema):
    """A repair quote outside the warranty, as the customer sees it."""

    amount = fields.String(required=True)
    due_at = fields.DateTime(required=True)
    answer = fields.String(required=True, allow_none=True,
                           validate=validate.OneOf(("accepted", "declined", "expired")))


class CustomerProductSchema(Schema):
    name = fields.String(required=True)
    quantity = fields.Integer(required=True)


class CustomerOrderSchema(Schema):
    id = fields.String(required=True, allow_none=True)
    # The shop that sold it: its name, else its id (None when the order system says none).
    store = fields.String(required=True, allow_none=True)
    products = fields.List(fields.Nested(CustomerProductSchema), required=True)


class CustomerViewSchema(Schema):
    case_id = fields.String(required=True)
    kind = fields.String(required=True)
    stage = fields.String(required=True)
    status = fields.String(required=True)
    # The order the case is about (None for a case without one).
    order = fields.Nested(CustomerOrderSchema, required=True, allow_none=True)
    next_step = fields.String(required=True)
    due_at = fields.DateTime(required=True, allow_none=True)
    question = fields.String(required=True, allow_none=True)
    can_reply = fields.Boolean(required=True)
    can_rate = fields.Boolean(required=True)
    rating = fields.Integer(required=True, allow_none=True)
    resolution = fields.Dict(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    tracking = fields.List(fields.Dict(), required=True)
    history = fields.List(fields.Nested(CustomerHistorySchema), required=True)
    attachments = fields.List(fields.Nested(AttachmentSchema), required=True)
    can_attach = fields.Boolean(required=True)
    messages = fields.List(fields.Nested(MessageSchema), required=True)
    can_write = fields.Boolean(required=True)
    # The case this one was merged into, as the customer reaches it (its status link);
    # None unless the case was closed as a duplicate.
    merged_into = fields.Nested(MergedIntoSchema, required=True, allow_none=True)
    # The latest repair quote of the resolution (None without one), and whether it
    # waits for the customer's accept or decline now.
    quote = fields.Nested(QuoteSchema, required=True, allow_none=True)
    can_answer_quote = fields.Boolean(required=True)


class AttachmentListSchema(Schema):
    items = fields.List(fields.Nested(AttachmentSchema), required=True)


class RequestCreatedSchema(Schema):
    case_id = fields.String(required=True)
    customer_url = fields.String(required=True)


class UserSchema(Schema):
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    active = fields.Boolean(required=True)
    email = fields.String(required=True)
    locale = fields.String(required=True)
    display_name = fields.String(required=True)
    teams = fields.List(fields.String(), required=True)
    on_duty = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)


class UserListSchema(Schema):
    items = fields.List(fields.Nested(UserSchema), required=True)


class DeactivationSchema(UserSchema):
    returned_cases = fields.List(fields.String(), required=True)
    cases_not_returned = fields.Dict(keys=fields.String(), values=fields.String(),
                                     required=True)


class TokenSchema(Schema):
    """A token as it is shown: never the token, only its public id."""

    id = fields.String(required=True)
    user = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(
        ("active", "expired", "revoked")))
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True, allow_none=True)
    last_used_at = fields.DateTime(required=True, allow_none=True)
    revoked = fields.Boolean(required=True)


class TokenListSchema(Schema):
    items = fields.List(fields.Nested(TokenSchema), required=True)


class AuditEntrySchema(Schema):
    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    actor = fields.String(required=True)
    role = fields.String(required=True)
    method = fields.String(required=True)
    path = fields.String(required=True)
    case_id = fields.String(required=True, allow_none=True)
    action = fields.String(required=True, allow_none=True)
    status = fields.Integer(required=True)
    remote_addr = fields.String(required=True, allow_none=True)
    detail = fields.Dict(required=True, allow_none=True, metadata={
        "description": "What the request did beyond its path: a case-list export's "
                       "`filters`, `rows` and `complete`"})


class AuditListSchema(Schema):
    items = fields.List(fields.Nested(AuditEntrySchema), required=True)
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("ok", "unavailable")))
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
