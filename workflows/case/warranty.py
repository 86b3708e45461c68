"""Warranty: whether a repair is free, and what a quote for one outside the warranty
may be. Pure rules that the workflow's `resolve` validator reads, at the workflow's
own time (docs/resolutions.md, "Warranty").

A product's warranty runs `warranty_days` (the order system's, per order line) from
the order's delivery, or from its purchase while it is not delivered. A line whose
order system says nothing about a warranty is repaired free, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from workflows.case.contracts import CaseItem, OrderSnapshot, Resolution
from workflows.case.refusals import Refusal, refused


def warranty_ends(order: OrderSnapshot | None, sku: str) -> datetime | None:
    """When the warranty of the order's `sku` ends (the latest of its lines), or None
    when the order system gives no warranty for it."""
    if order is None:
        return None
    start = order.delivered_at or order.placed_at
    ends = [start + timedelta(days=line.warranty_days) for line in order.lines
            if line.sku == sku and line.warranty_days is not None]
    return max(ends) if ends else None


def outside_warranty(order: OrderSnapshot | None, items: Sequence[CaseItem],
                     now: datetime) -> dict[str, datetime]:
    """The items whose warranty has ended by `now`: SKU -> when it ended."""
    ended: dict[str, datetime] = {}
    for item in items:
        end = warranty_ends(order, item.sku)
        if end is not None and now > end:
            ended[item.sku] = end
    return ended


def quote_problem(res: Resolution, order: OrderSnapshot | None, now: datetime,
                  prices: Mapping[str, Decimal]) -> Refusal | None:
    """Why this remedy's quote (or the lack of one) is wrong, or None. A repair outside
    the warranty needs a `quote_amount` above zero and not above what the items cost;
    a repair inside it is free, and no other remedy takes a quote."""
    if res.type != "repair":
        if res.quote_amount is not None:
            return refused("quote_only_repair", "quote_amount")
        return None
    ended = outside_warranty(order, res.items, now)
    if not ended:
        if res.quote_amount is not None:
            return refused("quote_under_warranty", "quote_amount")
        return None
    if res.quote_amount is None:
        sku, end = next(iter(ended.items()))
        return refused("quote_needed", "quote_amount", sku=sku,
                       date=end.date().isoformat())
    try:
        amount = Decimal(res.quote_amount)
        exact = (amount.is_finite() and amount > 0
                 and amount == amount.quantize(Decimal("0.01")))
    except (InvalidOperation, ValueError, TypeError):  # not a number, or far too long
        exact = False
    if not exact:
        return refused("quote_amount_format", "quote_amount")
    value = sum((prices.get(i.sku, Decimal(0)) * i.quantity for i in res.items), Decimal(0))
    if amount > value:
        return refused("quote_above_value", "quote_amount", amount=f"{amount:.2f}",
                       value=f"{value:.2f}")
    return None
