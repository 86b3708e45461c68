"""Client of the warehouse's inventory system and the activities that use it.

Contract in docs/integrations.md. Not enough stock is a business refusal
(`InsufficientStock`), which the exchange saga turns into "offer a refund instead".
"""

from __future__ import annotations

from temporalio import activity

from activities.http import SystemClient, problem_type
from workflows.case.contracts import (
    RELEASE_RESERVATION,
    RESERVE_STOCK,
    RESTOCK,
    SHIP_RESERVATION,
    WRITE_OFF,
    Reservation,
    ReservationRequest,
    StockMovement,
)


class InventoryClient(SystemClient):
    system = "inventory system"

    async def reserve(self, req: ReservationRequest) -> Reservation:
        response = await self.call("POST", "/reservations", {
            "sku": req.sku, "quantity": req.quantity, "reference": req.reference,
        }, req.idempotency_key)
        if response.status_code == 409 and problem_type(response) == "insufficient_stock":
            raise self.refuse(response, "InsufficientStock")
        if response.status_code == 404:
            raise self.refuse(response, "UnknownSku")
        return _reservation(self.expect(response, 200, 201))

    async def release(self, reservation_id: str) -> Reservation:
        response = await self.call("POST", f"/reservations/{reservation_id}/release")
        return _reservation(self.expect(response, 200))

    async def ship(self, reservation_id: str) -> Reservation:
        response = await self.call("POST", f"/reservations/{reservation_id}/ship")
        return _reservation(self.expect(response, 200))

    async def restock(self, movement: StockMovement) -> str:
        response = await self.call("POST", "/restocks", {
            "sku": movement.sku, "quantity": movement.quantity,
            "reference": movement.reference, "location": movement.location,
        }, movement.idempotency_key)
        return str(self.expect(response, 200, 201)["id"])

    async def write_off(self, movement: StockMovement) -> str:
        response = await self.call("POST", "/write-offs", {
            "sku": movement.sku, "quantity": movement.quantity,
            "reference": movement.reference, "reason": movement.reason,
        }, movement.idempotency_key)
        return str(self.expect(response, 200, 201)["id"])


def _reservation(data: dict) -> Reservation:
    return Reservation(id=str(data["id"]), sku=data["sku"], quantity=int(data["quantity"]),
                       state=data["state"])


class InventoryActivities:
    def __init__(self, client: InventoryClient) -> None:
        self._client = client

    @activity.defn(name=RESERVE_STOCK.name)
    async def reserve(self, req: ReservationRequest) -> Reservation:
        return await self._client.reserve(req)

    @activity.defn(name=RELEASE_RESERVATION.name)
    async def release(self, reservation: Reservation) -> Reservation:
        return await self._client.release(reservation.id)

    @activity.defn(name=SHIP_RESERVATION.name)
    async def ship(self, reservation: Reservation) -> Reservation:
        return await self._client.ship(reservation.id)

    @activity.defn(name=RESTOCK.name)
    async def restock(self, movement: StockMovement) -> str:
        return await self._client.restock(movement)

    @activity.defn(name=WRITE_OFF.name)
    async def write_off(self, movement: StockMovement) -> str:
        return await self._client.write_off(movement)
