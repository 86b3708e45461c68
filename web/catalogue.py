"""The web's reads of the catalogue (order system) and the stock (inventory system) for
a `resolve` that exchanges an item for another SKU (docs/resolutions.md, "exchange"),
and of the order system's coupons for one that grants a coupon.

The replacement is checked before the case hears of it: an unknown SKU is a 422, one
out of stock a 409, and its price is fixed here, from the catalogue, for the workflow
(never from the caller). A coupon code likewise: one the order system does not know,
has expired or was used is a 422 on `coupon_code`, and nothing changes; the order
system refuses it again when the saga grants it (the code may expire in between), and
that grant is the durable check: if the order system does not answer this early read
within a short budget for the whole body (COUPON_BUDGET, every coupon and retry in it),
the resolve goes on and the grant decides.
Synchronous: Flask handlers are.
"""

from __future__ import annotations

import time
from decimal import Decimal
from urllib.parse import quote

import httpx
from flask import current_app

from web.problems import Problem
from workflows.case.refusals import refused


class Catalogue:
    """What a SKU sells for now, and how many are available to reserve."""

    def __init__(self, order_system_url: str, inventory_system_url: str,
                 timeout: float = 5.0) -> None:
        limits = httpx.Timeout(timeout, connect=2.0)
        self._orders = httpx.Client(base_url=order_system_url.rstrip("/"), timeout=limits)
        self._stock = httpx.Client(base_url=inventory_system_url.rstrip("/"), timeout=limits)

    def close(self) -> None:
        self._orders.close()
        self._stock.close()

    def unit_price(self, sku: str) -> Decimal | None:
        """The SKU's catalogue price, or None if the catalogue does not know it."""
        data = _read(self._orders, f"/products/{quote(sku, safe='')}", "order system")
        return None if data is None else Decimal(data["unit_price"])

    def coupon(self, code: str, timeout: float | None = None) -> dict | None:
        """The coupon as the order system knows it (`value`, `expires_at`, `state`:
        active, expired or used), or None if it knows no such code. `timeout`: at most
        this long (seconds) instead of the client's."""
        return _read(self._orders, f"/coupons/{quote(code, safe='')}", "order system",
                     timeout)

    def available(self, sku: str) -> int:
        """How many of the SKU the warehouse can still reserve (0 if it keeps none)."""
        data = _read(self._stock, f"/stock/{quote(sku, safe='')}", "inventory system")
        return 0 if data is None else int(data["available"])


def _read(http: httpx.Client, path: str, system: str,
          timeout: float | None = None) -> dict | None:
    try:
        response = http.get(path) if timeout is None else http.get(
            path, timeout=httpx.Timeout(timeout, connect=min(timeout, 2.0)))
    except httpx.HTTPError as err:
        raise _unavailable(system) from err
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise _unavailable(system)
    return response.json()


def _unavailable(system: str) -> Problem:
    return Problem(503, f"{system.capitalize()} unavailable",
                   f"the {system} is not answering; try again in a moment",
                   headers={"Retry-After": "5"})


def _remedies(data: dict) -> tuple[dict | None, list[dict]]:
    """A loaded `resolve` body's single `resolution` (or None) and its remedies in order."""
    one = data.get("resolution")
    return one, [one] if one is not None else list(data.get("resolutions") or [])


def price_replacements(data: dict) -> dict:
    """A loaded `resolve` body with each exchange's `replacement_sku` checked against the
    catalogue and the stock, and its `replacement_price` set. Raises Problem: 422 for a
    SKU the catalogue does not know, 409 when the warehouse has too few to reserve."""
    catalogue: Catalogue = current_app.extensions["aftersales"].catalogue
    one, plans = _remedies(data)
    field = "resolution" if one is not None else "resolutions"
    priced = []
    for number, plan in enumerate(plans):
        sku = plan.get("replacement_sku")
        if not sku:
            priced.append(plan)
            continue
        where = field if one is not None else f"{field}.{number}"
        price = catalogue.unit_price(sku)
        if price is None:
            why = refused("unknown_product", "replacement_sku", sku=sku)
            raise Problem.refused(422, "Invalid request", why,
                                  errors={f"{where}.replacement_sku": [why.message]})
        wanted = sum(item["quantity"] for item in plan.get("items", []))
        available = catalogue.available(sku)
        if available < wanted:
            raise Problem.refused(409, "Out of stock", refused(
                "out_of_stock", "replacement_sku", sku=sku, wanted=wanted,
                available=available))
        priced.append({**plan, "replacement_price": f"{price:.2f}"})
    if one is not None:
        return {**data, "resolution": priced[0]}
    return {**data, "resolutions": priced}


# How long the early coupon check may take for a whole resolve body, every coupon and
# retry in it (seconds): when the order system does not answer within it, the resolve
# goes on and the grant decides.
COUPON_BUDGET = 3.0
# The pause before asking again after a failed read (a GET changes nothing).
COUPON_RETRY_PAUSE = 0.2


def _coupon_read(catalogue: Catalogue, code: str, deadline: float) -> dict | None:
    """The coupon, asked again when the order system does not answer, until `deadline`
    (time.monotonic()); the last attempt's Problem (503) is raised when it passes."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _unavailable("order system")
        try:
            return catalogue.coupon(code, timeout=left)
        except Problem:
            if deadline - time.monotonic() <= COUPON_RETRY_PAUSE:
                raise
            time.sleep(COUPON_RETRY_PAUSE)


def check_coupons(data: dict) -> dict:
    """A loaded `resolve` body whose coupon codes the order system knows, unexpired and
    unused; unchanged. Raises Problem: 422 naming the remedy's `coupon_code`."""
    catalogue: Catalogue = current_app.extensions["aftersales"].catalogue
    one, plans = _remedies(data)
    deadline = time.monotonic() + COUPON_BUDGET  # for all of them together
    for number, plan in enumerate(plans):
        code = plan.get("coupon_code")
        if not code:
            continue
        try:
            coupon = _coupon_read(catalogue, code, deadline)
        except Problem:
            # The order system does not answer: the grant checks the code durably (it
            # refuses an unknown, expired or used one), so the resolve is not held up.
            continue
        state = "unknown" if coupon is None else str(coupon.get("state"))
        if state == "active":
            continue
        where = "resolution" if one is not None else f"resolutions.{number}"
        # Why it cannot be granted, by its state in the order system.
        if state == "expired":
            why = refused("coupon_expired", "coupon_code", coupon=code)
        elif state == "used":
            why = refused("coupon_used", "coupon_code", coupon=code)
        else:
            why = refused("coupon_unknown", "coupon_code", coupon=code)
        raise Problem.refused(422, "Invalid request", why,
                              errors={f"{where}.coupon_code": [why.message]})
    return data
