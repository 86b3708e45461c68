"""The customer's status page on a phone (390×844) in a real headless Chromium, against
the real stack (tests/test_pages_browser.py's): it says what the case is about (order,
products, shop), what happens next and by when in the reader's own time, named, what a
refund's approval means and how long it takes, when refunded money arrives and its
reference, what a coupon is worth, until when and how to use it, and it shows the
rating buttons on one line. Screenshots land in test-artifacts/pages/."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.test_pages_browser import browser, live, shot  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow
PHONE = {"width": 390, "height": 844}
SHANGHAI = ZoneInfo("Asia/Shanghai")


def order_of(order_system_url: str, order_id: str) -> dict:
    return httpx.get(f"{order_system_url}/orders/{order_id}", timeout=10).json()


def unrefunded_order(order_system_url: str, at_least: str, not_store: str = "") -> dict:
    """A demo order with this much paid and nothing refunded yet (other tests refund
    some of the same simulator's orders)."""
    for order in httpx.get(f"{order_system_url}/orders", timeout=10).json():
        if (Decimal(order["total"]) >= Decimal(at_least) and order["refunded"] == "0.00"
                and order["store_id"] != not_store and order["status"] == "delivered"):
            return order
    raise AssertionError(f"no demo order of {at_least} or more left")


def to_resolve(stack, order_id: str) -> str:
    case_id = stack.open_case(order_id)["id"]
    stack.call("POST", f"/api/v1/cases/{case_id}/confirm", json={"note": "called"})
    stack.call("POST", f"/api/v1/cases/{case_id}/analyze", json={
        "root_cause": "product_quality", "responsible_party": "supplier", "note": "x"})
    return case_id


def phone(chromium, lang: str, zone: str):
    accept = "zh-CN,zh;q=0.9" if lang == "zh-CN" else "en-GB,en;q=0.9"
    context = chromium.new_context(locale=lang, timezone_id=zone, viewport=PHONE,
                                  extra_http_headers={"Accept-Language": accept})
    return context, context.new_page()


def one_line_of_five(page) -> None:
    """The five rating buttons side by side, inside the screen, nothing scrolls sideways."""
    boxes = [page.locator("label.star").nth(n).bounding_box() for n in range(5)]
    assert all(box is not None for box in boxes)
    tops = {round(box["y"]) for box in boxes if box}
    assert len(tops) == 1, f"the rating buttons wrap: {boxes}"
    assert all(box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
               for box in boxes if box)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_refund_waits_for_approval_then_says_when_the_money_arrives_in_chinese(
        live, browser, order_system_url):  # noqa: F811
    order = unrefunded_order(order_system_url, "700.00", not_store="online")
    case_id = to_resolve(live, order["id"])
    case = live.case(case_id)

    # A phone in China, in Chinese.
    context, page = phone(browser, "zh-CN", "Asia/Shanghai")
    page.goto(case["customer_url"])
    card = page.locator("section.order")
    assert order["id"] in card.locator("dd.order-id").inner_text()
    assert card.locator("dd.store").inner_text() == order["store_name"]
    shown = card.locator("ul.products").inner_text()
    assert all(line["name"] in shown for line in order["lines"])
    assert "订单号" in card.inner_text() and "店铺" in card.inner_text()

    # The promise in plain words and Beijing time, never an internal UTC deadline.
    due = datetime.fromisoformat(case["deadlines"]["stage_due_at"].replace("Z", "+00:00"))
    local = due.astimezone(SHANGHAI)
    by = page.locator("section.next p.by").inner_text()
    assert "北京时间" in by and "UTC" not in by and "GMT" not in by, by
    assert f"{local.month}月{local.day}日" in by and f"{local.hour:02d}:{local.minute:02d}" in by

    live.call("POST", f"/api/v1/cases/{case_id}/resolve",
              json={"resolution": {"type": "refund", "amount": "600.00"}})
    case = live.wait(case_id, lambda c: (c["resolution"] or {}).get("awaiting") == "approval")
    page.reload()
    # The resolution clock is paused while the supervisor decides: no deadline to promise.
    assert case["deadlines"]["stage_due_at"] is None
    assert page.locator("section.next p.by").count() == 0

    # What the approval means, and how long it usually takes (the policy's 4 hours).
    waiting = page.locator("section.resolution .approval").inner_text()
    assert "¥600.00" in waiting and "主管" in waiting and "4小时" in waiting, waiting
    assert page.locator("section.resolution .refund").count() == 0
    shot(page, "customer-zh-refund-awaits-approval")

    live.call("POST", f"/api/v1/cases/{case_id}/approve", who="sam", json={"note": "ok"})
    case = live.wait(case_id, lambda c: c["stage"] == "feedback")
    receipt = next(r for r in httpx.get(f"{order_system_url}/refunds", timeout=10).json()
                   if r["case_id"] == case_id)
    first, last = receipt["arrives_in_working_days"]
    method = {"alipay": "支付宝", "wechat_pay": "微信支付", "card": "银行卡"}[receipt["method"]]

    page.reload()
    refund = page.locator("section.resolution .refund").inner_text()
    assert f"{first}–{last} 个工作日" in refund and method in refund, refund
    assert "原支付" in refund and "¥600.00" in refund and receipt["id"] in refund, refund
    refunded = datetime.fromisoformat(receipt["refunded_at"].replace("Z", "+00:00"))
    assert f"{refunded.astimezone(SHANGHAI).day}日" in refund and "北京时间" in refund
    assert page.locator("section.resolution .approval").count() == 0
    one_line_of_five(page)
    shot(page, "customer-zh-refunded")
    context.close()

    # The same page for an English reader in London: their own time, named.
    context, page = phone(browser, "en-GB", "Europe/London")
    page.goto(case["customer_url"])
    assert page.locator("html").get_attribute("lang") == "en"
    text = page.locator("main").inner_text()
    assert "Order number" in text and order["id"] in text and order["store_name"] in text
    refund = page.locator("section.resolution .refund").inner_text()
    assert f"{first}–{last} working days" in refund and receipt["id"] in refund, refund
    by = page.locator("section.next p.by").inner_text()
    london = datetime.fromisoformat(case["deadlines"]["stage_due_at"].replace("Z", "+00:00")
                                    ).astimezone(ZoneInfo("Europe/London"))
    assert "Greenwich Mean Time" in by or "British Summer Time" in by, by
    assert f"{london.hour:02d}:{london.minute:02d}" in by
    one_line_of_five(page)
    shot(page, "customer-en-refunded")
    context.close()


def test_a_coupon_says_its_value_its_expiry_and_how_to_use_it(
        live, browser, order_system_url):  # noqa: F811
    case_id = to_resolve(live, "SO-10005")
    live.call("POST", f"/api/v1/cases/{case_id}/resolve", json={
        "resolution": {"type": "compensation", "coupon_code": "SORRY20", "amount": "20.00"}})
    case = live.wait(case_id, lambda c: c["stage"] == "feedback")
    grant = next(c for c in httpx.get(f"{order_system_url}/compensations", timeout=10).json()
                 if c["case_id"] == case_id)
    expires = datetime.fromisoformat(grant["expires_at"].replace("Z", "+00:00"))

    context, page = phone(browser, "zh-CN", "Asia/Shanghai")
    page.goto(case["customer_url"])
    coupon = page.locator("section.resolution .coupon").inner_text()
    local = expires.astimezone(SHANGHAI)
    assert "SORRY20" in coupon and "¥20.00" in coupon, coupon
    assert f"{local.month}月{local.day}日" in coupon and "北京时间" in coupon, coupon
    if local.year != datetime.now(SHANGHAI).year:  # a coupon into next year says which
        assert f"{local.year}年" in coupon, coupon
    assert "结账" in coupon, coupon  # how to use it
    assert order_of(order_system_url, "SO-10005")["store_name"] == \
        page.locator("section.order dd.store").inner_text()
    one_line_of_five(page)
    shot(page, "customer-zh-coupon")
    context.close()

    context, page = phone(browser, "en-GB", "Europe/London")
    page.goto(case["customer_url"])
    coupon = page.locator("section.resolution .coupon").inner_text()
    assert "SORRY20" in coupon and "worth" in coupon and "checkout" in coupon, coupon
    london = expires.astimezone(ZoneInfo("Europe/London"))
    assert f"{london.day}" in coupon and "Greenwich Mean Time" in coupon, coupon
    if london.year != datetime.now(UTC).year:  # a coupon into next year says which
        assert str(london.year) in coupon, coupon
    shot(page, "customer-en-coupon")
    context.close()

