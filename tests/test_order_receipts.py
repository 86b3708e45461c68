"""What the order system tells the customer's page: the shop's name on the order, when a
refund arrives and where, until when a coupon lasts. The simulator over real HTTP and
the real client of activities/order_system.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from activities.order_system import OrderSystemClient, working_days
from simulators.order_system import (
    COUPON_LIFETIME,
    REFUND_ARRIVAL_DAYS,
    STORE_NAMES,
    OrderSystem,
    create_app,
)
from tests.test_simulators import serving
from workflows.case.contracts import CompensationRequest, RefundRequest


def test_receipts_say_where_the_money_goes_when_it_arrives_and_until_when_a_coupon_lasts():
    system = OrderSystem(state_file=None)
    with serving(create_app(system)) as url:
        async def run():
            client = OrderSystemClient(url)
            try:
                order = await client.get_order("SO-10002")
                refund = await client.refund(RefundRequest(
                    order_id="SO-10002", case_id="AS-R1", amount="10.00",
                    idempotency_key="AS-R1:1:refund"))
                again = await client.refund(RefundRequest(
                    order_id="SO-10002", case_id="AS-R1", amount="10.00",
                    idempotency_key="AS-R1:1:refund"))
                coupon = await client.grant_compensation(CompensationRequest(
                    order_id="SO-10002", case_id="AS-C1", idempotency_key="AS-C1:1:c",
                    coupon_code="SORRY20", amount="20.00"))
                points = await client.grant_compensation(CompensationRequest(
                    order_id="SO-10002", case_id="AS-P1", idempotency_key="AS-P1:1:c",
                    points=200))
            finally:
                await client.aclose()
            return order, refund, again, coupon, points

        before = datetime.now(UTC)
        order, refund, again, coupon, points = asyncio.run(run())

    assert order.store_id == "sh-nanjing-rd" and order.store_name == STORE_NAMES[order.store_id]
    method = system.orders["SO-10002"]["payments"][0]["method"]
    assert refund.method == method
    assert refund.arrives_in_working_days == list(REFUND_ARRIVAL_DAYS[method])
    assert refund.refunded_at is not None and refund.refunded_at >= before.replace(
        microsecond=0)
    assert again == refund  # the replay answers the same receipt
    assert Decimal(system.orders["SO-10002"]["refunded"]) == Decimal("10.00")
    assert coupon.kind == "coupon" and coupon.amount == "20.00"
    assert coupon.expires_at is not None
    assert abs(coupon.expires_at - (before + COUPON_LIFETIME)) < timedelta(seconds=5)
    assert points.kind == "points" and points.expires_at is None


@pytest.mark.parametrize("answer", [
    None, "1-3", [3, 1], [1], [1, 2, 3], ["1", "3"], [1.5, 3], [True, 3], [-1, 3],
    [1, 61], {"first": 1, "last": 3},
])
def test_an_arrival_the_page_cannot_say_truly_is_dropped(answer):
    assert working_days(answer) == []


@pytest.mark.parametrize("answer", [[0, 0], [1, 3], [3, 7], [60, 60]])
def test_an_arrival_in_whole_working_days_is_kept(answer):
    assert working_days(answer) == answer


def test_an_order_system_without_the_new_fields_still_answers_receipts():
    """Receipts of order systems that say nothing of arrival or expiry (and recorded
    histories) decode with the fields empty."""
    from temporalio.converter import DataConverter

    from workflows.case.contracts import CompensationReceipt, RefundReceipt

    converter = DataConverter.default
    old_refund = converter.payload_converter.to_payloads(
        [{"id": "RF-1", "order_id": "SO-1", "amount": "1.00"}])
    old_coupon = converter.payload_converter.to_payloads(
        [{"id": "CMP-1", "order_id": "SO-1", "kind": "coupon", "coupon_code": "X"}])
    refund = converter.payload_converter.from_payloads(old_refund, [RefundReceipt])[0]
    coupon = converter.payload_converter.from_payloads(old_coupon, [CompensationReceipt])[0]
    assert (refund.method, refund.arrives_in_working_days, refund.refunded_at) == ("", [], None)
    assert coupon.expires_at is None
