"""The resolve and approve forms explain themselves, in Chinese, in a real headless
Chromium against the real stack (tests/test_pages_browser.py's `live`, with an order
system of its own so the refunds here are the only ones): only the chosen type's fields
show, the form says before it is sent whether the refund waits for approval and what is
left on the order, a coupon the order system does not know is refused with nothing
changed, the flash says the case waits for approval, the clock table shows the pause,
the supervisor's approval card shows what there is to weigh, and after the refund the
order card shows it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from werkzeug.serving import make_server

from simulators.order_system import OrderSystem, create_app
from tests import test_pages_browser as pages

pytestmark = pytest.mark.slow
live = pages.live
browser = pages.browser
ZH = {"locale": "zh-CN", "extra_http_headers": {"Accept-Language": "zh-CN,zh;q=0.9"}}


@pytest.fixture(scope="module")
def order_system_url() -> Iterator[str]:
    """An order system for this module alone (`live` asks for it by this name)."""
    server = make_server("127.0.0.1", 0, create_app(OrderSystem(state_file=None)),
                         threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def sign_in(page, live, name: str) -> None:
    page.goto(f"{live.base}/login?lang=zh_CN")
    page.locator("#username").fill(name)
    page.locator("#password").fill(f"{name}-password")
    page.locator("main form button[type=submit]").click()


def test_resolve_and_approval_explain_themselves_in_chinese(live, browser, order_system_url):
    orders = httpx.get(f"{order_system_url}/orders", timeout=10).json()
    order = next(o for o in orders if o["status"] == "delivered" and len(o["lines"]) > 1
                 and sum(float(p["amount"]) for p in o["payments"]) > 800)
    paid = sum(float(p["amount"]) for p in order["payments"])
    case_id = live.open_case(order["id"])["id"]
    live.call("POST", f"/api/v1/cases/{case_id}/confirm", json={"note": "called"})
    live.call("POST", f"/api/v1/cases/{case_id}/analyze", json={
        "root_cause": "product_quality", "responsible_party": "supplier",
        "note": "屏幕有坏点"})

    context = browser.new_context(viewport={"width": 1280, "height": 900}, **ZH)
    page = context.new_page()
    sign_in(page, live, "hank")
    page.goto(f"{live.base}/desk/cases/{case_id}")
    form = page.locator("form#act-resolve")
    outcome = form.locator("#resolve-outcome")
    # Before anything is typed: what is left and the limit.
    assert f"¥{paid:,.2f}" in outcome.inner_text() and "¥500.00" in outcome.inner_text()

    # Only the chosen type's fields show.
    form.locator("#resolve-type").select_option("refund")
    assert form.locator("#resolve-amount").is_visible()
    for hidden in ("#resolve-coupon", "#resolve-points", "#resolve-quote",
                   "#resolve-replacement", "#qty-1"):
        assert form.locator(hidden).is_hidden(), hidden
    form.locator("#resolve-type").select_option("compensation")
    assert form.locator("#resolve-coupon").is_visible()
    assert form.locator("#resolve-points").is_visible()
    assert form.locator("#qty-1").is_hidden()
    form.locator("#resolve-type").select_option("exchange")
    assert form.locator("#resolve-replacement").is_visible()
    assert form.locator("#qty-1").is_visible() and form.locator("#resolve-amount").is_hidden()

    # A coupon the order system does not know: refused, in Chinese, nothing changed.
    form.locator("#resolve-type").select_option("compensation")
    form.locator("#resolve-coupon").fill("NOPE-1")
    assert "提交时会向订单系统核验优惠券码" in outcome.inner_text()
    form.locator("button[type=submit]").click()
    # Said once, beside the coupon field, which points at it.
    coupon = page.locator("form#act-resolve #resolve-coupon")
    error = page.locator("#" + coupon.get_attribute("aria-describedby")).inner_text()
    assert "订单系统中没有优惠券 NOPE-1" in error, error
    assert page.locator("form#act-resolve p.notice.error").count() == 0
    assert live.case(case_id)["resolution"] is None

    # What will happen, said live as the amount is typed.
    form = page.locator("form#act-resolve")
    outcome = form.locator("#resolve-outcome")
    form.locator("#resolve-type").select_option("refund")
    form.locator("#resolve-amount").fill("100.00")
    said = outcome.inner_text()
    assert "将立即支付" in said and f"¥{paid - 100:,.2f}" in said, said
    form.locator("#resolve-amount").fill(f"{paid + 1:.2f}")
    assert "将被拒绝" in outcome.inner_text()
    form.locator("#resolve-amount").fill("600.00")
    said = outcome.inner_text()
    assert "需等待主管审批" in said and "¥600.00" in said and "暂停" in said, said
    pages.shot(page, "handler-resolve-explained-zh")
    form.locator("button[type=submit]").click()
    flash = page.locator("p.notice.success").inner_text()
    assert "正在等待主管审批" in flash and "完成" not in flash, flash
    clocks = page.locator("section#deadlines-h, section[aria-labelledby=deadlines-h]").inner_text()
    assert "暂停 (等待主管审批)" in clocks, clocks
    context.close()

    # The supervisor's approval card: what there is to weigh.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **ZH)
    page = context.new_page()
    sign_in(page, live, "sam")
    page.goto(f"{live.base}/desk/cases/{case_id}")
    card = page.locator("form#act-approve")
    facts = card.locator("#approval-facts")
    assert facts.locator("dd.order-total").inner_text() == f"¥{float(order['total']):,.2f}"
    assert facts.locator("dd.refunded-so-far").inner_text() == "¥0.00"
    assert facts.locator("dd.asked").inner_text().startswith("¥600.00")
    assert "审批限额 ¥500.00" in facts.locator("dd.asked").inner_text()
    assert facts.locator("dd.analysis-note").inner_text() == "屏幕有坏点"
    assert "前" in facts.locator("dd.waited").inner_text()
    text = facts.inner_text()
    assert "产品质量" in text or "质量" in text, text
    assert "退款" in card.locator("#approval-remedies").inner_text()
    pages.shot(page, "supervisor-approval-card-zh")
    card.get_by_role("button").click()
    assert page.locator("p.notice.success").count() == 1
    context.close()

    # After the refund the order card shows it.
    live.wait(case_id, lambda c: c["stage"] == "feedback")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **ZH)
    page = context.new_page()
    sign_in(page, live, "hank")
    page.goto(f"{live.base}/desk/cases/{case_id}")
    refunded = page.locator("section[aria-labelledby=order-h] dt:text-is('已退款') + dd")
    assert refunded.inner_text() == "¥600.00"
    pages.shot(page, "handler-order-refunded-zh")
    context.close()
