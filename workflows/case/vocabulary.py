"""Every enumeration of the case, once: the API's schemas, the workflow, the read
model, the reports and the pages all read these.

Stages and statuses are `StrEnum`s: each member is the plain string it names, so it is
stored, compared and sent as JSON exactly like the literal, and a typo is a NameError
instead of a case stuck in a stage nobody handles.
"""

from __future__ import annotations

from enum import StrEnum

KINDS = ("complaint", "return", "refund", "exchange", "repair")
PRIORITIES = ("P1", "P2", "P3", "P4")
# "system": opened by Aftersales itself, e.g. on a courier exception (docs/api.md).
CHANNELS = ("phone", "web", "app", "wechat", "email", "store", "chat", "system")
TIERS = ("regular", "silver", "gold", "vip")
ROLES = ("handler", "supervisor", "admin")
# Names the timeline uses for who acted besides users; no user may be called so.
# "email": inbound mail, e.g. a note of a mail from an address that is not the customer's.
RESERVED_NAMES = ("customer", "system", "courier", "email")
MANAGERS = ("supervisor", "admin")
# Case and file ids: short, unambiguous when read over the phone (no 0/O, 1/I); a case
# id is "AS-" and ten of these (CASE_ID).
ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CASE_ID = f"AS-[{ID_ALPHABET}]{{10}}"
# The languages notifications and pages are written in.
LOCALES = ("zh-CN", "en")
# A team's name (docs/teams.md): what users are put in and the routing file names.
TEAM_NAME = r"^[A-Za-z0-9._-]{1,40}$"
# How a routing rule picks the handler of a new case; "none" leaves it in the queue.
ASSIGN_METHODS = ("round_robin", "least_loaded", "none")


class Stage(StrEnum):
    """Where the case is in its lifecycle (docs/architecture.md has the moves)."""

    RECORD = "record"
    CONFIRM = "confirm"
    ANALYZE = "analyze"
    RESOLVE = "resolve"
    FEEDBACK = "feedback"
    REVISIT = "revisit"
    CLOSED = "closed"
    CANCELLED = "cancelled"


STAGES = tuple(s.value for s in Stage)
OPEN_STAGES = STAGES[:6]
ENDED_STAGES = (Stage.CLOSED.value, Stage.CANCELLED.value)
# The close reason of a case merged into another of the same customer (`merge`).
DUPLICATE = "duplicate"
# The close reason of a case whose repair quote the customer declined (or left
# unanswered): the item went back to them unrepaired.
QUOTE_DECLINED = "quote_declined"
# A customer's answers to a repair quote, and what no answer within the window counts as.
QUOTE_DECISIONS = ("accept", "decline")


class Status(StrEnum):
    """What the case is doing inside its stage."""

    OPEN = "open"
    RESOLVING = "resolving"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    WAITING_ON_APPROVAL = "waiting_on_approval"
    WAITING_ON_SYSTEM = "waiting_on_system"
    CLOSED = "closed"
    CANCELLED = "cancelled"


STATUSES = tuple(s.value for s in Status)

ROOT_CAUSES = (
    "product_quality",
    "wrong_item",
    "missing_item",
    "damaged_in_transit",
    "late_delivery",
    "lost_parcel",
    "description_mismatch",
    "service_attitude",
    "pricing",
    "customer_changed_mind",
    "other",
)
RESPONSIBLE_PARTIES = ("merchant", "supplier", "courier", "customer", "platform")
RESOLUTION_TYPES = ("refund", "return_refund", "exchange", "repair", "compensation", "apology")
# Resolutions that move goods: they need items and an eligible case (or a supervisor).
GOODS_RESOLUTIONS = ("return_refund", "exchange", "repair")
# Resolutions that pay money back: they count against what is left to refund.
REFUND_RESOLUTIONS = ("refund", "return_refund")
# What settles a complaint without an order (rude staff in a store, a question).
ORDERLESS_RESOLUTIONS = ("apology", "compensation")
# The type of a plan that runs several remedies (`resolutions`) as one saga, and how many
# remedies one plan may hold.
COMBINED = "combined"
MAX_REMEDIES = 5
REVISIT_OUTCOMES = ("satisfied", "unsatisfied", "unreachable")

# Inspection grades of returned goods (docs/resolutions.md, "Inspection grades"): A
# resaleable, B opened or with minor wear, C damaged by the customer, D not the item sent.
# Where each grade's goods go: A and B back on sale (B as "open box") with the refund share
# the policy's `grades` gives; C back to the customer and the case to analyze; D kept, the
# case flagged for fraud review and back to analyze. `passed` is A (true) or C (false).
GRADES = ("A", "B", "C", "D")
RESTOCK_TO = {"A": "stock", "B": "open_box"}
REFUNDING_GRADES = tuple(RESTOCK_TO)

# A parcel's statuses as the courier reports them, with their order: an event that
# would move a parcel backwards arrived out of order and is ignored.
PARCEL_RANK = {"created": 0, "picked_up": 1, "in_transit": 2, "delayed": 2, "delivered": 3,
               "lost": 4, "damaged": 4, "cancelled": 4}
PARCEL_STATUSES = tuple(PARCEL_RANK)
PARCEL_FAILED = ("lost", "damaged", "cancelled")
# Courier exceptions the customer is told about and the policy may propose a remedy for.
PARCEL_EXCEPTIONS = ("delayed", "lost", "damaged")

# The SLA clocks a case can run (workflows/case/deadlines.py), in the order reports and
# pages list them.
CLOCKS = ("confirm", "analyze", "resolution", "revisit", "legal_refund", "reply")

# A closed case may be reopened this long; then its workflow ends.
REOPEN_WINDOW_DAYS = 30
# A case is "at risk" once this share of a running SLA target is used.
AT_RISK_SHARE = 0.75


def raise_priority(priority: str, steps: int = 1) -> str:
    """Priority `steps` levels more urgent, never beyond P1."""
    return PRIORITIES[max(0, PRIORITIES.index(priority) - steps)]
