"""Client of the retailer's order and payment system, and the activities that use it.

The HTTP contract is in docs/integrations.md. Business refusals (unknown order,
refund above what is left, compensation refused) are non-retryable
`ApplicationError`s the workflow handles; timeouts, connection errors and 5xx
answers stay retryable.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from temporalio import activity

from activities.http import SystemClient
from workflows.case.contracts import (
    CANCEL_PAYMENT_LINK,
    CHECK_PAYMENT_LINK,
    CREATE_PAYMENT_LINK,
    GRANT_COMPENSATION,
    LOOKUP_ORDER,
    LOOKUP_PRODUCT,
    REFUND_PAYMENT,
    CompensationReceipt,
    CompensationRequest,
    Customer,
    OrderLine,
    OrderLookup,
    OrderSnapshot,
    Payment,
    PaymentLink,
    PaymentLinkRequest,
    Product,
    ProductLookup,
    RefundReceipt,
    RefundRequest,
)


class OrderSystemClient(SystemClient):
    system = "order system"

    async def get_order(self, order_id: str) -> OrderSnapshot:
        response = await self.call("GET", f"/orders/{quote(order_id, safe='')}")
        if response.status_code == 404:
            raise self.refuse(response, "OrderNotFound")
        return order_from_json(self.expect(response, 200))

    async def get_product(self, sku: str) -> Product:
        response = await self.call("GET", f"/products/{quote(sku, safe='')}")
        if response.status_code == 404:
            raise self.refuse(response, "UnknownSku")
        return product_from_json(self.expect(response, 200))

    async def create_payment_link(self, req: PaymentLinkRequest) -> PaymentLink:
        response = await self.call(
            "POST", f"/orders/{quote(req.order_id, safe='')}/payment-links",
            {"amount": req.amount, "case_id": req.case_id,
             "expires_at": req.expires_at.isoformat()}, req.idempotency_key)
        if response.status_code == 404:
            raise self.refuse(response, "OrderNotFound")
        if response.status_code in (409, 422):
            raise self.refuse(response, "OrderSystemRefused")
        return payment_link_from_json(self.expect(response, 200, 201))

    async def check_payment_link(self, link_id: str) -> PaymentLink:
        response = await self.call("GET", f"/payment-links/{quote(link_id, safe='')}")
        return payment_link_from_json(self.expect(response, 200))

    async def cancel_payment_link(self, link_id: str) -> PaymentLink:
        """Close a link nobody paid; one paid meanwhile answers 409 `already_paid`."""
        response = await self.call("POST", f"/payment-links/{quote(link_id, safe='')}/cancel")
        if response.status_code == 409:
            raise self.refuse(response, "AlreadyPaid")
        return payment_link_from_json(self.expect(response, 200))

    async def grant_compensation(self, req: CompensationRequest) -> CompensationReceipt:
        body: dict = {"case_id": req.case_id}
        if req.coupon_code:
            body["coupon_code"] = req.coupon_code
        if req.points:
            body["points"] = req.points
        if req.amount:
            body["amount"] = req.amount
        # A case without an order is compensated on the customer's account.
        path = (f"/orders/{quote(req.order_id, safe='')}/compensations" if req.order_id
                else f"/customers/{quote(req.customer_id, safe='')}/compensations")
        response = await self.call("POST", path, body, req.idempotency_key)
        if response.status_code == 404:
            raise self.refuse(response, "OrderNotFound")
        if response.status_code in (409, 422):
            raise self.refuse(response, "CompensationRefused")
        data = self.expect(response, 200, 201)
        return CompensationReceipt(
            id=data["id"], order_id=data.get("order_id") or "", kind=data["kind"],
            coupon_code=data.get("coupon_code"), points=data.get("points"),
            amount=data.get("amount"),
            expires_at=_dt(data["expires_at"]) if data.get("expires_at") else None,
        )

    async def refund(self, req: RefundRequest) -> RefundReceipt:
        response = await self.call("POST", f"/orders/{quote(req.order_id, safe='')}/refunds",
                                   {"amount": req.amount, "case_id": req.case_id},
                                   req.idempotency_key)
        if response.status_code == 404:
            raise self.refuse(response, "OrderNotFound")
        if response.status_code in (409, 422):
            raise self.refuse(response, "RefundRefused")
        data = self.expect(response, 200, 201)
        return RefundReceipt(
            id=data["id"], order_id=data["order_id"], amount=data["amount"],
            method=str(data.get("method") or ""),
            arrives_in_working_days=working_days(data.get("arrives_in_working_days")),
            refunded_at=_dt(data["refunded_at"]) if data.get("refunded_at") else None)


class OrderActivities:
    def __init__(self, client: OrderSystemClient) -> None:
        self._client = client

    @activity.defn(name=LOOKUP_ORDER.name)
    async def lookup_order(self, req: OrderLookup) -> OrderSnapshot:
        return await self._client.get_order(req.order_id)

    @activity.defn(name=LOOKUP_PRODUCT.name)
    async def lookup_product(self, req: ProductLookup) -> Product:
        return await self._client.get_product(req.sku)

    @activity.defn(name=CREATE_PAYMENT_LINK.name)
    async def create_payment_link(self, req: PaymentLinkRequest) -> PaymentLink:
        return await self._client.create_payment_link(req)

    @activity.defn(name=CHECK_PAYMENT_LINK.name)
    async def check_payment_link(self, link: PaymentLink) -> PaymentLink:
        return await self._client.check_payment_link(link.id)

    @activity.defn(name=CANCEL_PAYMENT_LINK.name)
    async def cancel_payment_link(self, link: PaymentLink) -> PaymentLink:
        return await self._client.cancel_payment_link(link.id)

    @activity.defn(name=GRANT_COMPENSATION.name)
    async def grant_compensation(self, req: CompensationRequest) -> CompensationReceipt:
        return await self._client.grant_compensation(req)

    @activity.defn(name=REFUND_PAYMENT.name)
    async def refund_payment(self, req: RefundRequest) -> RefundReceipt:
        return await self._client.refund(req)


def order_from_json(data: dict) -> OrderSnapshot:
    return OrderSnapshot(
        id=data["id"],
        customer_id=data["customer_id"],
        status=data["status"],
        currency=data["currency"],
        total=data["total"],
        placed_at=_dt(data["placed_at"]),
        delivered_at=_dt(data["delivered_at"]) if data.get("delivered_at") else None,
        lines=[OrderLine(sku=line["sku"], name=line["name"], quantity=int(line["quantity"]),
                         unit_price=line["unit_price"], category=line.get("category", ""),
                         warranty_days=_days(line.get("warranty_days")))
               for line in data.get("lines", [])],
        payments=[Payment(id=p["id"], method=p["method"], amount=p["amount"],
                          paid_at=_dt(p["paid_at"])) for p in data.get("payments", [])],
        refunded=data.get("refunded", "0.00"),
        customer=Customer(id=str(c.get("id", "")), name=str(c.get("name", "")),
                          phone=str(c.get("phone", "")), email=str(c.get("email", "")),
                          tier=str(c.get("tier", "regular")))
        if (c := data.get("customer")) else None,
        waybill_no=data.get("waybill_no", ""),
        store_id=str(data.get("store_id") or ""),
        store_name=str(data.get("store_name") or ""),
    )


def _days(value: object) -> int | None:
    """A line's `warranty_days`: a whole number of days, or None when the order system
    gives none or something else than a whole number of days (a repair is then free)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def working_days(value) -> list[int]:
    """[first, last] working days, or [] when the answer does not say (or says nonsense)."""
    if (isinstance(value, list) and len(value) == 2
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 60
                    for d in value) and value[0] <= value[1]):
        return [value[0], value[1]]
    return []
def product_from_json(data: dict) -> Product:
    return Product(sku=data["sku"], name=data["name"], unit_price=data["unit_price"],
                   category=data.get("category", ""))


def payment_link_from_json(data: dict) -> PaymentLink:
    return PaymentLink(id=data["id"], url=data["url"], amount=data["amount"],
                       status=data["status"],
                       expires_at=_dt(data["expires_at"]) if data.get("expires_at") else None,
                       paid_at=_dt(data["paid_at"]) if data.get("paid_at") else None)


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
