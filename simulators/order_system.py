"""A runnable stand-in for the retailer's order system (orders, payments, coupons).

Speaks the HTTP contract of docs/integrations.md with real state: demo orders with
lines, payments and delivery dates, and the compensations granted against them,
kept in a JSON file so they survive a restart. `AFTERSALES_SIM_FAIL_RATE` makes
that share of calls fail with a 503 or a hang past the client's timeout.

Never imported by production code; `aftersales dev` runs it as a child process.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from flask import Flask, jsonify, request

from simulators.http import (
    Refused,
    command_line,
    iso,
    load_state,
    problem,
    save_state,
    serve_forever,
    simulator_app,
)

# sku, name, unit price, category (categories matter for return eligibility).
CATALOGUE = [
    ("SKU-TEA-001", "West Lake Longjing tea 250g", "168.00", "grocery"),
    ("SKU-MILK-012", "Fresh milk 1L x 6", "59.90", "fresh"),
    ("SKU-PHONE-200", "Smartphone X2 128GB", "2999.00", "electronics"),
    ("SKU-EARB-031", "Wireless earbuds", "399.00", "electronics"),
    ("SKU-SHIRT-77", "Linen shirt, size L", "259.00", "apparel"),
    ("SKU-CAKE-005", "Mooncake gift box", "328.00", "sweets"),
    ("SKU-FRUIT-09", "Cherries 2kg, chilled", "189.00", "fresh"),
    ("SKU-KETTLE-4", "Electric kettle 1.7L", "149.00", "appliances"),
    ("SKU-SHOES-41", "Running shoes, size 41", "599.00", "apparel"),
    ("SKU-RICE-10", "Northeast rice 10kg", "89.90", "grocery"),
]
# The warranty of each category that has one, in days from delivery; an order line of
# such a category carries it as `warranty_days` (food gives none: a repair of it is free,
# as before). Apparel's 15 days leave some demo orders outside it, so a repair there
# gets a quote (docs/resolutions.md, "Warranty").
WARRANTY_DAYS = {"electronics": 365, "appliances": 730, "apparel": 15}
# Sizes and colours sold besides the demo orders' lines: replacements in an exchange.
CATALOGUE_EXTRAS = [
    ("SKU-SHOES-42", "Running shoes, size 42", "599.00", "apparel"),
    ("SKU-SHOES-42-LITE", "Running shoes Lite, size 42", "459.00", "apparel"),
    ("SKU-SHOES-42-PRO", "Running shoes Pro, size 42", "799.00", "apparel"),
    ("SKU-SHIRT-77M", "Linen shirt, size M", "259.00", "apparel"),
]
PRODUCTS = {sku: {"sku": sku, "name": name, "unit_price": price, "category": category}
            for sku, name, price, category in CATALOGUE + CATALOGUE_EXTRAS}
# id, name, phone, tier
CUSTOMERS = [
    ("C-1001", "王芳", "13800000001", "vip"), ("C-1002", "李娜", "13800000002", "regular"),
    ("C-1003", "张伟", "13800000003", "regular"),
    ("C-1004", "Emma Clarke", "+44 20 7946 0004", "gold"),
    ("C-1005", "刘洋", "13800000005", "regular"), ("C-1006", "陈静", "13800000006", "silver"),
    ("C-1007", "Lucas Martin", "+33 1 70 36 00 07", "regular"),
    ("C-1008", "杨磊", "13800000008", "regular"),
]


def customer_email(customer_id: str) -> str:
    """The demo customer's email address (reserved example domain: never delivered)."""
    return f"{customer_id.lower()}@example.com"


def digits(phone: str) -> str:
    """A phone number as the search compares it: its digits only."""
    return "".join(ch for ch in phone if ch.isdigit())
PAYMENT_METHODS = ("alipay", "wechat_pay", "card")
# How many working days a refund takes to reach each kind of payment account (the
# first and the last day the bank or wallet usually credits it).
REFUND_ARRIVAL_DAYS = {"alipay": (1, 3), "wechat_pay": (1, 3), "card": (3, 7)}
# The shops that sell the demo orders, in turn: SO-10001 online, SO-10002 Shanghai, ...
STORES = ("online", "sh-nanjing-rd", "bj-wangfujing", "hz-westlake")
# Each shop's name as its customers know it (the retailer's own, in one language).
STORE_NAMES = {"online": "官方网上商城", "sh-nanjing-rd": "上海南京东路店",
               "bj-wangfujing": "北京王府井店", "hz-westlake": "杭州西湖店"}
# How long a coupon granted as compensation can be used.
COUPON_LIFETIME = timedelta(days=30)
# The coupon codes the retailer has issued for service recovery, and what each is worth:
# `SORRY-<n>` is worth n yuan (1 to 200, and a few larger), the rest are named campaigns.
# A compensation may grant only a code the order system knows, still valid and unused
# (docs/integrations.md, "Coupons"); `OLD-SORRY-10` has expired and `USED-SORRY-15` was
# a single-use code already redeemed, for the demo and the tests.
COUPON_VALUES = {**{f"SORRY-{n}": f"{n}.00" for n in (*range(1, 201), 300, 500, 600, 1000)},
                 "SORRY20": "20.00", "SORRY-Q": "10.00", "SIZE-5": "5.00", "C1": "1.00",
                 "WELCOME-30": "30.00"}


def demo_coupons(now: datetime) -> dict[str, dict]:
    """The known coupons: valid for a year from `now`, but for one expired and one used."""
    coupons = {code: {"code": code, "value": value, "currency": "CNY", "state": "active",
                      "expires_at": iso((now + timedelta(days=365)).replace(microsecond=0))}
               for code, value in COUPON_VALUES.items()}
    coupons["OLD-SORRY-10"] = {"code": "OLD-SORRY-10", "value": "10.00", "currency": "CNY",
                               "state": "active",
                               "expires_at": iso((now - timedelta(days=10)).replace(
                                   microsecond=0))}
    coupons["USED-SORRY-15"] = {"code": "USED-SORRY-15", "value": "15.00", "currency": "CNY",
                                "state": "used",
                                "expires_at": iso((now + timedelta(days=365)).replace(
                                    microsecond=0))}
    return coupons


def coupon_problem(coupon: dict | None, code: str, now: datetime) -> tuple[int, str, str] | None:
    """Why a coupon cannot be granted (status, problem type, detail), or None."""
    if coupon is None:
        return 422, "unknown_coupon", f"the order system has no coupon {code}"
    if coupon["state"] == "used":
        return 409, "coupon_used", f"coupon {code} has already been used"
    if _instant(coupon["expires_at"]) <= now:
        return 409, "coupon_expired", f"coupon {code} expired at {coupon['expires_at']}"
    return None


def outbound_waybill_no(order_id: str) -> str:
    """The demo courier number of an order's delivery parcel."""
    return "SF8" + order_id.split("-")[-1].zfill(9)


def demo_orders(now: datetime, count: int = 40, seed: int = 7) -> dict[str, dict]:
    """Deterministic demo orders placed over the last weeks, most of them delivered."""
    rng = random.Random(seed)
    orders: dict[str, dict] = {}
    for n in range(count):
        order_id = f"SO-{10001 + n}"
        customer_id, name, phone, tier = CUSTOMERS[n % len(CUSTOMERS)]
        placed = (now - timedelta(days=rng.randint(2, 40), minutes=rng.randint(0, 1440))
                  ).replace(microsecond=0)
        lines = []
        for sku, title, price, category in rng.sample(CATALOGUE, rng.randint(1, 3)):
            line = {"sku": sku, "name": title, "quantity": rng.randint(1, 3),
                    "unit_price": price, "category": category}
            if category in WARRANTY_DAYS:
                line["warranty_days"] = WARRANTY_DAYS[category]
            lines.append(line)
        total = sum((Decimal(str(line["unit_price"])) * int(str(line["quantity"]))
                     for line in lines), Decimal(0))
        delivered = n % 10 != 9  # every tenth order is still on its way
        orders[order_id] = {
            "id": order_id,
            "customer_id": customer_id,
            "customer": {"id": customer_id, "name": name, "phone": phone, "tier": tier,
                         "email": customer_email(customer_id)},
            "status": "delivered" if delivered else "shipped",
            # The parcel that took the order out; the courier system knows it too.
            "waybill_no": outbound_waybill_no(order_id),
            "store_id": STORES[n % len(STORES)],
            "store_name": STORE_NAMES[STORES[n % len(STORES)]],
            "currency": "CNY",
            "total": f"{total:.2f}",
            "placed_at": iso(placed),
            "delivered_at": iso(placed + timedelta(days=rng.randint(1, 3))) if delivered
            else None,
            "lines": lines,
            "payments": [{"id": f"PAY-{10001 + n}", "method": rng.choice(PAYMENT_METHODS),
                          "amount": f"{total:.2f}", "paid_at": iso(placed)}],
            "refunded": "0.00",
        }
    return orders


class OrderSystem:
    """The simulated system's state, guarded by one lock."""

    def __init__(self, state_file: Path | None, now: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._state_file = state_file
        state = self._load()
        if state is None:
            state = {"orders": demo_orders(now or datetime.now(UTC)),
                     "compensations": {}, "refunds": {}, "payment_links": {}}
        self.orders: dict[str, dict] = state["orders"]
        # The coupon codes it has issued (a state file from before them gets the seeds).
        self.coupons: dict[str, dict] = state.get("coupons") or demo_coupons(
            now or datetime.now(UTC))
        self.compensations: dict[str, dict] = state["compensations"]
        self.refunds: dict[str, dict] = state.get("refunds", {})
        # Payment links by idempotency key: the customer pays an exchange's difference.
        self.payment_links: dict[str, dict] = state.get("payment_links", {})
        self._save()

    def search(self, phone: str = "", email: str = "") -> list[dict]:
        """Orders whose customer has this phone (digits compared) or email, newest
        first."""
        wanted_phone, wanted_email = digits(phone), email.strip().lower()
        found = [o for o in self.orders.values()
                 if (wanted_phone and digits(o["customer"].get("phone", "")) == wanted_phone)
                 or (wanted_email and o["customer"].get("email", "").lower() == wanted_email)]
        return sorted(found, key=lambda o: o["placed_at"], reverse=True)

    def coupon(self, code: str) -> dict:
        """A known coupon as the lookup shows it: `state` is `active`, `used` or
        `expired` (an active one past its `expires_at`)."""
        with self._lock:
            coupon = self.coupons.get(code)
            if coupon is None:
                raise OrderRefused(404, "unknown_coupon", f"coupon {code} not found")
            view = dict(coupon)
            if view["state"] == "active" and _instant(view["expires_at"]) <= datetime.now(UTC):
                view["state"] = "expired"
            return view

    def grant(self, order_id: str | None, key: str, body: dict) -> tuple[dict, bool]:
        """Record a compensation once per idempotency key; returns (record, created). A
        coupon must be one it knows, unexpired and unused."""
        with self._lock:
            existing = self.compensations.get(key)
            if existing is not None:
                if existing["request"] != body:
                    raise OrderRefused(409, "idempotency_conflict",
                                       "idempotency key reused with a different body")
                return existing, False
            if body.get("coupon_code"):
                refused = coupon_problem(self.coupons.get(body["coupon_code"]),
                                         body["coupon_code"], datetime.now(UTC))
                if refused:
                    raise OrderRefused(*refused)
            kind = "coupon" if body.get("coupon_code") else "points"
            granted = datetime.now(UTC)
            record = {
                "id": f"CMP-{len(self.compensations) + 1:05d}",
                "order_id": order_id,
                "customer_id": body.get("customer_id"),
                "case_id": body.get("case_id"),
                "kind": kind,
                "coupon_code": body.get("coupon_code"),
                "points": body.get("points"),
                "amount": body.get("amount"),
                "idempotency_key": key,
                "granted_at": iso(granted),
                # A coupon is worth its amount off the next order until it expires.
                "expires_at": iso(granted + COUPON_LIFETIME) if kind == "coupon" else None,
                "request": body,
            }
            self.compensations[key] = record
            self._save()
            return record, True

    def refund(self, order_id: str, key: str, body: dict) -> tuple[dict, bool]:
        """Pay a refund once per idempotency key, never above what is left to refund."""
        with self._lock:
            existing = self.refunds.get(key)
            if existing is not None:
                if existing["request"] != body:
                    raise OrderRefused(409, "idempotency_conflict",
                                       "idempotency key reused with a different body")
                return existing, False
            order = self.orders[order_id]
            amount = Decimal(body["amount"])
            paid = sum(Decimal(p["amount"]) for p in order["payments"])
            refundable = paid - Decimal(order["refunded"])
            if amount > refundable:
                raise OrderRefused(409, "exceeds_refundable",
                                   f"refund {amount} exceeds the {refundable} left to refund "
                                   f"on order {order_id}")
            order["refunded"] = f"{Decimal(order['refunded']) + amount:.2f}"
            payment = order["payments"][0]
            first, last = REFUND_ARRIVAL_DAYS.get(payment["method"], (1, 7))
            record = {
                "id": f"RF-{len(self.refunds) + 1:05d}",
                "order_id": order_id,
                "payment_id": payment["id"],
                # Back to the account that paid, in this many working days.
                "method": payment["method"],
                "arrives_in_working_days": [first, last],
                "case_id": body.get("case_id"),
                "amount": f"{amount:.2f}",
                "idempotency_key": key,
                "refunded_at": iso(datetime.now(UTC)),
                "request": body,
            }
            self.refunds[key] = record
            self._save()
            return record, True

    def create_link(self, order_id: str, key: str, body: dict) -> tuple[dict, bool]:
        """Open a payment link once per idempotency key; returns (link, created)."""
        with self._lock:
            existing = self.payment_links.get(key)
            if existing is not None:
                if existing["request"] != body:
                    raise OrderRefused(409, "idempotency_conflict",
                                       "idempotency key reused with a different body")
                return self._link_view(existing), False
            link_id = f"PL-{len(self.payment_links) + 1:05d}"
            record = {
                "id": link_id, "order_id": order_id, "case_id": body.get("case_id"),
                "amount": f"{Decimal(body['amount']):.2f}", "status": "open",
                "url": f"{request.host_url}pay/{link_id}",
                "expires_at": iso(_instant(body["expires_at"])), "paid_at": None,
                "idempotency_key": key, "created_at": iso(datetime.now(UTC)),
                "request": body,
            }
            self.payment_links[key] = record
            self._save()
            return self._link_view(record), True

    def link(self, link_id: str) -> dict:
        with self._lock:
            return self._link_view(self._link(link_id))

    def pay_link(self, link_id: str) -> dict:
        """The customer pays: the order gets a payment of the link's amount. Paying twice
        is a no-op; an expired or cancelled link refuses."""
        with self._lock:
            record = self._link(link_id)
            status = self._link_view(record)["status"]
            if status in ("expired", "cancelled"):
                raise OrderRefused(409, f"link_{status}", f"payment link {link_id} is {status}")
            if status == "open":
                record["status"] = "paid"
                record["paid_at"] = iso(datetime.now(UTC))
                order = self.orders[record["order_id"]]
                order["payments"].append({"id": f"PAY-{link_id}", "method": "payment_link",
                                          "amount": record["amount"],
                                          "paid_at": record["paid_at"]})
                self._save()
            return self._link_view(record)

    def cancel_link(self, link_id: str) -> dict:
        """Close an unpaid link; cancelling twice is a no-op, a paid one refuses."""
        with self._lock:
            record = self._link(link_id)
            if record["status"] == "paid":
                raise OrderRefused(409, "already_paid", f"payment link {link_id} was paid")
            if record["status"] == "open":
                record["status"] = "cancelled"
                self._save()
            return self._link_view(record)

    def _link(self, link_id: str) -> dict:
        for record in self.payment_links.values():
            if record["id"] == link_id:
                return record
        raise OrderRefused(404, "about:blank", f"payment link {link_id} not found")

    @staticmethod
    def _link_view(record: dict) -> dict:
        view = _public(record)
        if view["status"] == "open" and _instant(view["expires_at"]) <= datetime.now(UTC):
            view["status"] = "expired"
        return view

    def _load(self) -> dict | None:
        return load_state(self._state_file)

    def _save(self) -> None:
        save_state(self._state_file, {"orders": self.orders,
                                      "coupons": self.coupons,
                                      "compensations": self.compensations,
                                      "refunds": self.refunds,
                                      "payment_links": self.payment_links})


class OrderRefused(Refused):
    """A refusal of the order system, answered with a problem whose `type` is `kind`."""


def create_app(system: OrderSystem, fail_rate: float = 0.0, hang_seconds: float = 8.0) -> Flask:
    app = simulator_app("order_system_simulator", fail_rate, hang_seconds)

    def keyed_write(order_id: str, body_ok, invalid: str, operation):
        """Header (400), order (404), body (422), then the write: 201 new, 200 replay."""
        key = request.headers.get("Idempotency-Key")
        if not key:
            return problem(400, "Idempotency-Key header is required")
        if order_id not in system.orders:
            return problem(404, f"order {order_id} not found")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not body_ok(body):
            return problem(422, invalid)
        record, created = operation(order_id, key, body)
        return jsonify(_public(record)), 201 if created else 200

    @app.get("/orders")
    def list_orders():
        phone, email = request.args.get("phone", ""), request.args.get("email", "")
        if "phone" in request.args or "email" in request.args:
            if not digits(phone) and "@" not in email:
                return problem(422, "search by a phone number (digits) or an email address")
            return jsonify(system.search(phone=phone, email=email)[:20])
        return jsonify(list(system.orders.values()))

    @app.get("/orders/<order_id>")
    def get_order(order_id: str):
        order = system.orders.get(order_id)
        if order is None:
            return problem(404, f"order {order_id} not found")
        return jsonify(order)

    @app.get("/products/<sku>")
    def get_product(sku: str):
        """The catalogue's entry for a SKU: what it sells for now (exchanges price the
        replacement with it)."""
        product = PRODUCTS.get(sku)
        if product is None:
            return problem(404, f"product {sku} not found", "unknown_sku")
        return jsonify(product)

    @app.get("/coupons/<code>")
    def get_coupon(code: str):
        """A coupon code the retailer issued: its value, expiry and state (a resolve
        checks a compensation's coupon_code with it)."""
        return jsonify(system.coupon(code))

    @app.post("/orders/<order_id>/compensations")
    def grant(order_id: str):
        return keyed_write(order_id, lambda b: b.get("coupon_code") or b.get("points"),
                           "a compensation needs coupon_code or points", system.grant)

    @app.post("/customers/<customer_id>/compensations")
    def grant_customer(customer_id: str):
        """A compensation without an order (a complaint about a store, a question)."""
        key = request.headers.get("Idempotency-Key")
        if not key:
            return problem(400, "Idempotency-Key header is required")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not (body.get("coupon_code") or body.get("points")):
            return problem(422, "a compensation without an order needs coupon_code or points")
        record, created = system.grant(None, key, {**body, "customer_id": customer_id})
        return jsonify(_public(record)), 201 if created else 200

    @app.get("/compensations")
    def list_compensations():
        return jsonify([_public(r) for r in system.compensations.values()])

    @app.post("/orders/<order_id>/refunds")
    def refund(order_id: str):
        return keyed_write(order_id, lambda b: _is_amount(b.get("amount")),
                           'a refund needs an amount like "25.00"', system.refund)

    @app.post("/orders/<order_id>/payment-links")
    def create_payment_link(order_id: str):
        return keyed_write(order_id, lambda b: _is_amount(b.get("amount"))
                           and _is_instant(b.get("expires_at")),
                           'a payment link needs an amount like "25.00" and expires_at '
                           "(ISO 8601 with a zone)", system.create_link)

    @app.get("/payment-links/<link_id>")
    def get_payment_link(link_id: str):
        return jsonify(system.link(link_id))

    @app.post("/payment-links/<link_id>/cancel")
    def cancel_payment_link(link_id: str):
        return jsonify(system.cancel_link(link_id))

    @app.get("/payment-links")
    def list_payment_links():
        return jsonify([system.link(r["id"]) for r in list(system.payment_links.values())])

    @app.get("/pay/<link_id>")
    def pay_page(link_id: str):
        """The demo payment page the link opens: what is due, and a button to pay."""
        link = system.link(link_id)
        return (f"<!doctype html><title>Pay {link['amount']}</title><h1>Pay "
                f"{link['amount']} CNY</h1><p>Status: {link['status']}</p>"
                f'<form method="post"><button>Pay</button></form>')

    @app.post("/pay/<link_id>")
    def pay(link_id: str):
        return jsonify(system.pay_link(link_id))

    @app.get("/refunds")
    def list_refunds():
        return jsonify([_public(r) for r in system.refunds.values()])

    return app


def _public(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "request"}


def _is_amount(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        amount = Decimal(value)
    except ArithmeticError:
        return False
    return amount.is_finite() and amount > 0 and amount == amount.quantize(Decimal("0.01"))


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _is_instant(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return _instant(value).tzinfo is not None
    except ValueError:
        return False


def serve(host: str, port: int, data_dir: str | None, fail_rate: float) -> None:
    state_file = Path(data_dir) / "order_system.json" if data_dir else None
    serve_forever(create_app(OrderSystem(state_file), fail_rate=fail_rate), host, port)


def main() -> None:
    args, fail_rate = command_line("Simulated order system", 5101)
    serve(args.host, args.port, args.data_dir, fail_rate)


if __name__ == "__main__":
    main()
