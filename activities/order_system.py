"""Client of the retailer's order system and the activities that use it.

The HTTP contract is in docs/integrations.md. Business refusals (unknown order,
compensation refused) are non-retryable `ApplicationError`s the workflow handles;
timeouts, connection errors and 5xx answers stay retryable.
"""

from __future__ import annotations

from datetime import datetime

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.domain import (
    CompensationReceipt,
    CompensationRequest,
    OrderLine,
    OrderLookup,
    OrderSnapshot,
    Payment,
)

DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=2.0)


class OrderSystemClient:
    """Talks HTTP to the order system; one pooled client per worker process."""

    def __init__(self, base_url: str, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_order(self, order_id: str) -> OrderSnapshot:
        response = await self._http.get(f"/orders/{order_id}")
        if response.status_code == 404:
            raise ApplicationError(f"order {order_id} not found", type="OrderNotFound",
                                   non_retryable=True)
        _raise_for_infrastructure(response)
        return order_from_json(response.json())

    async def grant_compensation(self, req: CompensationRequest) -> CompensationReceipt:
        body = {"case_id": req.case_id}
        if req.coupon_code:
            body["coupon_code"] = req.coupon_code
        if req.points:
            body["points"] = req.points
        if req.amount:
            body["amount"] = req.amount
        response = await self._http.post(
            f"/orders/{req.order_id}/compensations",
            json=body,
            headers={"Idempotency-Key": req.idempotency_key},
        )
        if response.status_code == 404:
            raise ApplicationError(f"order {req.order_id} not found", type="OrderNotFound",
                                   non_retryable=True)
        if response.status_code in (409, 422):
            raise ApplicationError(_detail(response), type="CompensationRefused",
                                   non_retryable=True)
        _raise_for_infrastructure(response)
        data = response.json()
        return CompensationReceipt(
            id=data["id"], order_id=data["order_id"], kind=data["kind"],
            coupon_code=data.get("coupon_code"), points=data.get("points"),
            amount=data.get("amount"),
        )


class OrderActivities:
    def __init__(self, client: OrderSystemClient) -> None:
        self._client = client

    @activity.defn(name="lookup_order")
    async def lookup_order(self, req: OrderLookup) -> OrderSnapshot:
        return await self._client.get_order(req.order_id)

    @activity.defn(name="grant_compensation")
    async def grant_compensation(self, req: CompensationRequest) -> CompensationReceipt:
        return await self._client.grant_compensation(req)


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
                         unit_price=line["unit_price"]) for line in data.get("lines", [])],
        payments=[Payment(id=p["id"], method=p["method"], amount=p["amount"],
                          paid_at=_dt(p["paid_at"])) for p in data.get("payments", [])],
    )


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail") or response.text)
    except ValueError:
        return response.text


def _raise_for_infrastructure(response: httpx.Response) -> None:
    if response.status_code >= 500 or response.status_code == 429:
        raise RuntimeError(f"order system answered {response.status_code}")
    if response.status_code >= 400:
        raise ApplicationError(
            f"order system refused the call ({response.status_code}): {_detail(response)}",
            type="OrderSystemRefused", non_retryable=True)
