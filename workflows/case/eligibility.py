"""Eligibility at intake: may the customer return or exchange these goods?

Pure. An ineligible request still becomes a case (complaints must be heard); the
reasons are shown on it and goods-moving resolutions need a supervisor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from workflows.case.contracts import CaseItem, OrderLine, OrderSnapshot
from workflows.case.lifecycle import N_
from workflows.case.vocabulary import KINDS
from workflows.sla import SlaPolicy, format_duration

# Kinds that ask for goods to move back under the no-reason rules.
CHECKED_KINDS = ("return", "exchange")


def check_eligibility(kind: str, items: list[CaseItem], order: OrderSnapshot, now: datetime,
                      policy: SlaPolicy, returned: dict[str, int] | None = None) -> dict:
    """{"eligible": bool, "reasons": [...]} for this request against the policy."""
    reasons: list[str] = []
    if kind in CHECKED_KINDS:
        if order.delivered_at is None:
            reasons.append("the order has not been delivered yet")
        elif now > order.delivered_at + timedelta(seconds=policy.return_window):
            reasons.append(f"delivered {order.delivered_at.date().isoformat()}, more than "
                           f"{format_duration(policy.return_window)} ago")
    lines: dict[str, OrderLine] = {line.sku: line for line in order.lines}
    bought: dict[str, int] = {}
    for line in order.lines:
        bought[line.sku] = bought.get(line.sku, 0) + line.quantity
    for item in items:
        found = lines.get(item.sku)
        if found is None:
            reasons.append(f"{item.sku} is not on order {order.id}")
            continue
        left = bought[item.sku] - (returned or {}).get(item.sku, 0)
        if item.quantity > left:
            reasons.append(f"{item.sku}: {item.quantity} asked, {bought[item.sku]} bought, "
                           f"{left} not yet returned")
        if kind in CHECKED_KINDS and found.category in policy.excluded_categories:
            reasons.append(f"{item.sku} is {found.category}: excluded from no-reason returns")
    return {"eligible": not reasons, "reasons": reasons}


# Why a line cannot be asked for with a kind: the API says the words, the pages their
# translation (marked for extraction).
REFUSALS = {
    "nothing_left": N_("already sent back in full"),
    "not_delivered": N_("not delivered yet"),
    "window_passed": N_("the return window has passed"),
    "excluded": N_("not returnable without a reason (category)"),
}


@dataclass
class LineOption:
    """What the customer may ask for on one line of the order, now."""

    sku: str
    name: str
    category: str
    bought: int
    returned: int
    left: int
    kinds: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # kind -> REFUSALS code


def line_options(order: OrderSnapshot, now: datetime, policy: SlaPolicy,
                 returned: dict[str, int] | None = None,
                 kinds: tuple[str, ...] = KINDS) -> list[LineOption]:
    """Per line (one per SKU), the kinds of request it allows now and why the others
    are refused: the same rules as check_eligibility, shown before the case is opened."""
    window_passed = (order.delivered_at is not None and
                     now > order.delivered_at + timedelta(seconds=policy.return_window))
    options: dict[str, LineOption] = {}
    for line in order.lines:
        option = options.get(line.sku)
        if option is None:
            option = options[line.sku] = LineOption(
                line.sku, line.name, line.category, 0, (returned or {}).get(line.sku, 0), 0)
        option.bought += line.quantity
    for option in options.values():
        option.left = max(option.bought - option.returned, 0)
        for kind in kinds:
            refused = None
            if kind != "complaint" and option.left == 0:
                refused = "nothing_left"
            elif kind in CHECKED_KINDS:
                if order.delivered_at is None:
                    refused = "not_delivered"
                elif window_passed:
                    refused = "window_passed"
                elif option.category in policy.excluded_categories:
                    refused = "excluded"
            if refused:
                option.refused[kind] = refused
            else:
                option.kinds.append(kind)
    return list(options.values())
