"""Client of the courier system: waybills for pickups and shipments.

Contract in docs/integrations.md. Tracking comes back the other way, as HMAC-signed
webhooks to `POST /webhooks/courier`, which signal the case workflow.
"""

from __future__ import annotations

from temporalio import activity

from activities.http import SystemClient, problem_type
from workflows.case.contracts import (
    CANCEL_WAYBILL,
    CREATE_WAYBILL,
    Waybill,
    WaybillRequest,
)


class CourierClient(SystemClient):
    system = "courier system"

    async def create_waybill(self, req: WaybillRequest) -> Waybill:
        response = await self.call("POST", "/waybills", {
            "type": req.type,
            "reference": req.reference,
            "sender": {"name": req.sender.name, "address": req.sender.address},
            "recipient": {"name": req.recipient.name, "address": req.recipient.address},
            "items": [{"sku": i.sku, "quantity": i.quantity} for i in req.items],
        }, req.idempotency_key)
        data = self.expect(response, 200, 201)
        return Waybill(waybill_no=data["waybill_no"], type=data["type"], status=data["status"])

    async def cancel(self, waybill_no: str) -> Waybill:
        response = await self.call("POST", f"/waybills/{waybill_no}/cancel")
        if response.status_code == 409 and problem_type(response) == "already_picked_up":
            raise self.refuse(response, "AlreadyPickedUp")
        data = self.expect(response, 200)
        return Waybill(waybill_no=data["waybill_no"], type=data["type"], status=data["status"])


class CourierActivities:
    def __init__(self, client: CourierClient) -> None:
        self._client = client

    @activity.defn(name=CREATE_WAYBILL.name)
    async def create_waybill(self, req: WaybillRequest) -> Waybill:
        return await self._client.create_waybill(req)

    @activity.defn(name=CANCEL_WAYBILL.name)
    async def cancel_waybill(self, waybill: Waybill) -> Waybill:
        return await self._client.cancel(waybill.waybill_no)
