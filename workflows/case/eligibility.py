"""Eligibility at intake: may the customer return or exchange these goods?

Pure. An ineligible request still becomes a case (complaints must be heard); the
reasons are shown on it and goods-moving resolutions need a supervisor.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows.case.contracts import CaseItem, OrderLine, OrderSnapshot
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
