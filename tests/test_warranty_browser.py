"""The repair quote on the customer's status page, in a real headless Chromium against
the real stack (the stack of tests/test_warranty.py and the browser of
tests/test_pages_browser.py, fresh for this module): the quote is shown with its
answer-by time, Accept and Decline send the answer, and a second press is refused."""

from __future__ import annotations

import pytest

from tests import test_pages_browser as pages
from tests import test_warranty as warranty
from tests.test_resolutions import awaiting, call, move, wait_for, waybill

pytestmark = pytest.mark.slow
systems = warranty.systems
browser = pages.browser


def quoted_case(systems, amount: str) -> dict:
    case, line = warranty.repair_case(systems)
    response = warranty.resolve(systems, case, {
        "type": "repair", "items": [{"sku": line["sku"], "quantity": 1}],
        "quote_amount": amount})
    assert response.status_code == 200, response.text
    return warranty.at_the_quote(systems, case)


def status_page(systems, case: dict) -> str:
    """The case's status page on the served app (the link's host is the test setting)."""
    return f"{systems['web']}/s/{warranty.token_of(case)}"


def test_the_customer_accepts_the_quote_on_the_status_page(systems, browser):
    case = quoted_case(systems, "120.00")
    context = browser.new_context(locale="en-GB", viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(status_page(systems, case))
    section = page.locator("section#quote")
    said = section.inner_text()
    assert "A quote for your repair" in said and "120.00" in said
    assert "Please answer by" in said
    assert "please accept or decline the repair quote" in page.locator("main").inner_text()
    # A second tab keeps the old page: its press comes after the answer.
    stale = context.new_page()
    stale.goto(status_page(systems, case))
    section.get_by_role("button", name="Accept and repair").click()
    assert "we will repair your item" in page.locator("p.notice.success").first.inner_text()
    assert "You accepted the quote" in page.locator("section#quote").inner_text()
    assert page.locator("section#quote button").count() == 0
    pages.shot(page, "customer-quote-accepted")
    stale.locator("section#quote").get_by_role("button", name="Decline and send it back"
                                                ).click()
    assert "not waiting for this any more" in stale.locator("p.notice.error").inner_text()
    context.close()
    case = wait_for(systems, case["id"], awaiting("inspection"))
    assert case["resolution"]["refs"]["quote"]["answer"] == "accepted"
    assert case["resolution"]["refs"]["owed"] == "120.00"


def test_the_customer_declines_in_chinese_and_the_item_comes_back(systems, browser):
    case = quoted_case(systems, "88.00")
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844},
                                  extra_http_headers={"Accept-Language": "zh-CN"})
    page = context.new_page()
    page.goto(status_page(systems, case))
    section = page.locator("section#quote")
    assert "维修报价" in section.inner_text() and "88.00" in section.inner_text()
    section.get_by_role("button", name="拒绝并寄回").click()
    assert page.locator("p.notice.success").count() == 1
    case = wait_for(systems, case["id"], lambda c: "return_unrepaired" in (
        c["resolution"]["refs"].get("waybills", {})))
    move(systems, waybill(case, "return_unrepaired"), 3)
    case = wait_for(systems, case["id"], lambda c: c["stage"] == "closed")
    assert case["close_reason"] == "quote_declined"
    page.reload()
    assert "原样寄回" in page.locator("section#quote").inner_text()
    pages.shot(page, "customer-quote-declined-zh")
    context.close()
    assert call(systems, "GET", f"/api/v1/cases/{case['id']}").json()["stage"] == "closed"
