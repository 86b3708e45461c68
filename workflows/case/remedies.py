"""Several remedies settled on one case at once: which may go together, and what money
they pay back. Pure rules that the API's schema and the workflow's `resolve` validator
both read (docs/resolutions.md, "Several remedies").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from workflows.case.contracts import CaseItem, Resolution
from workflows.case.refusals import Refusal, refused
from workflows.case.vocabulary import GOODS_RESOLUTIONS, MAX_REMEDIES

# What each kind of remedy does; a plan does each of these at most once.
REMEDY_KINDS = {
    "apology": "an apology",
    "grant": "a coupon or points",
    "money": "a refund of money",
    "goods": "goods that move (return_refund, exchange or repair)",
}


def remedy_kind(res: Resolution) -> str:
    """What a remedy does: `apology`, `grant` (a compensation with a coupon or points),
    `money` (a refund, or a compensation with an amount only) or `goods`."""
    if res.type == "apology":
        return "apology"
    if res.type in GOODS_RESOLUTIONS:
        return "goods"
    if res.type == "compensation" and (res.coupon_code or res.points):
        return "grant"
    return "money"


def list_problem(remedies: Sequence[Resolution]) -> Refusal | None:
    """Why these remedies cannot be one plan, or None. Each kind at most once: two
    apologies say nothing more, two refunds are one refund of the sum, a coupon and points
    go in one compensation, and the goods can only go one way."""
    if not remedies:
        return refused("no_remedies", "resolutions")
    if len(remedies) > MAX_REMEDIES:
        return refused("too_many_remedies", "resolutions", max=MAX_REMEDIES)
    seen: dict[str, int] = {}
    for number, res in enumerate(remedies, 1):
        kind = remedy_kind(res)
        if kind in seen:
            return refused("remedies_overlap", "resolutions", first=seen[kind],
                           second=number, remedy=kind, what=REMEDY_KINDS[kind])
        seen[kind] = number
    return None


def money_back(res: Resolution, prices: Mapping[str, Decimal]) -> Decimal:
    """What a remedy refunds: its amount, or for a return the items' value (unit price ×
    quantity from the order); nothing for an apology, a coupon, points or goods that
    come back in kind."""
    if remedy_kind(res) == "money" and res.amount:
        return Decimal(res.amount)
    if res.type == "return_refund":
        return Decimal(res.amount) if res.amount else value_of(res.items, prices)
    if is_swap(res) and res.replacement_price is not None:
        return max(swap_difference(res, prices, Decimal(res.replacement_price)), Decimal(0))
    return Decimal(0)


def is_swap(res: Resolution) -> bool:
    """An exchange for another SKU than the item's (a size, colour or product)."""
    return (res.type == "exchange" and bool(res.replacement_sku) and len(res.items) == 1
            and res.replacement_sku != res.items[0].sku)


def swap_difference(res: Resolution, prices: Mapping[str, Decimal],
                    replacement_price: Decimal) -> Decimal:
    """What an exchange for another SKU owes the customer: the item's price as paid minus
    the replacement's, times the quantity; below zero the customer owes the rest."""
    item = res.items[0]
    return (prices.get(item.sku, Decimal(0)) - replacement_price) * item.quantity


def replacement_problem(res: Resolution) -> Refusal | None:
    """Why a resolution's `replacement_sku` cannot be, or None: only an exchange has
    one, and it replaces one line (one SKU) of the order."""
    if res.replacement_sku is None:
        return None
    if res.type != "exchange":
        return refused("replacement_not_exchange", "replacement_sku", type=res.type)
    if len(res.items) != 1:
        return refused("replacement_one_line", "items")
    return None


def value_of(items: Sequence[CaseItem], prices: Mapping[str, Decimal]) -> Decimal:
    """The items' value at the prices the order was paid."""
    return sum((prices.get(i.sku, Decimal(0)) * i.quantity for i in items), Decimal(0))
