"""What each line of an order may be asked for, and who may claim an order: the rules
the intake doors share, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from web.intake import OrderView, check_items, contact_matches
from workflows.case.contracts import Customer, OrderLine, OrderSnapshot
from workflows.case.eligibility import line_options
from workflows.sla import SlaPolicy

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def order(delivered_days_ago: float | None = 2, **changes) -> OrderSnapshot:
    values = dict(
        id="SO-1", customer_id="C-1", status="delivered", currency="CNY", total="500.00",
        placed_at=NOW - timedelta(days=10),
        delivered_at=(NOW - timedelta(days=delivered_days_ago)
                      if delivered_days_ago is not None else None),
        lines=[OrderLine("SKU-TEA", "Tea", 2, "100.00", "grocery"),
               OrderLine("SKU-MILK", "Milk", 1, "60.00", "fresh"),
               OrderLine("SKU-TEA", "Tea (gift)", 1, "0.00", "grocery")],
        customer=Customer("C-1", "王芳", email="Wang.Fang@Example.com", phone="13800000001"))
    values.update(changes)
    return OrderSnapshot(**values)


def options(snapshot: OrderSnapshot, returned: dict | None = None) -> dict:
    return {o.sku: o for o in line_options(snapshot, NOW, SlaPolicy(), returned)}


def test_lines_of_one_sku_count_together_and_excluded_categories_refuse_returns():
    lines = options(order())
    assert lines["SKU-TEA"].bought == 3 and lines["SKU-TEA"].left == 3
    assert set(lines["SKU-TEA"].kinds) == {"return", "refund", "exchange", "repair",
                                           "complaint"}
    milk = lines["SKU-MILK"]
    assert milk.refused == {"return": "excluded", "exchange": "excluded"}
    assert "refund" in milk.kinds and "complaint" in milk.kinds


def test_a_line_returned_in_full_allows_only_a_complaint():
    tea = options(order(), returned={"SKU-TEA": 3})["SKU-TEA"]
    assert tea.left == 0 and tea.kinds == ["complaint"]
    assert set(tea.refused.values()) == {"nothing_left"}


def test_the_window_and_the_delivery_decide_returns_and_exchanges():
    late = options(order(delivered_days_ago=30))["SKU-TEA"]
    assert late.refused == {"return": "window_passed", "exchange": "window_passed"}
    on_its_way = options(order(delivered_days_ago=None))["SKU-TEA"]
    assert on_its_way.refused == {"return": "not_delivered", "exchange": "not_delivered"}


def view(returned: dict | None = None) -> OrderView:
    snapshot = order()
    return OrderView(snapshot, line_options(snapshot, NOW, SlaPolicy(), returned), [])


def test_check_items_names_each_bad_line():
    errors = check_items(view({"SKU-TEA": 2}), "return", [
        {"sku": "SKU-TEA", "quantity": 2}, {"sku": "SKU-NONE", "quantity": 1},
        {"sku": "SKU-MILK", "quantity": 1}, {"sku": "SKU-TEA", "quantity": 1}], strict=True)
    assert "1 not yet returned" in errors["items.0.quantity"][0]
    assert "not on order" in errors["items.1.sku"][0]
    assert "without a reason" in errors["items.2"][0]
    assert "twice" in errors["items.3.sku"][0]


def test_staff_may_open_an_ineligible_case_but_not_claim_more_than_was_bought():
    assert check_items(view(), "return", [{"sku": "SKU-MILK", "quantity": 1}],
                       strict=False) == {}
    assert "items.0.quantity" in check_items(view(), "return",
                                             [{"sku": "SKU-MILK", "quantity": 2}],
                                             strict=False)


@pytest.mark.parametrize("contact,matches", [
    ("13800000001", True), ("+86 138 0000 0001", True), ("138-0000-0001", True),
    ("wang.fang@example.com", True), (" WANG.FANG@EXAMPLE.COM ", True),
    ("13800000002", False), ("0001", False), ("", False), ("wang@example.com", False),
    ("3800000001", True),  # a country code's worth shorter, and still 10 digits
    ("00001", False), ("800000001", False), ("00000001", False),
])
def test_the_contact_on_the_order(contact, matches):
    assert contact_matches(order(), contact) is matches
