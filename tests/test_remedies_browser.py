"""The desk's resolve form with several remedies, in a real headless Chromium against
the real stack (the fixtures of tests/test_pages_browser.py, fresh for this module)."""

from __future__ import annotations

import pytest

from tests import test_pages_browser as pages

pytestmark = pytest.mark.slow
live = pages.live
browser = pages.browser


def test_handler_settles_with_an_apology_a_coupon_and_a_refund(live, browser):
    case_id = live.open_case("SO-10007")["id"]
    live.call("POST", f"/api/v1/cases/{case_id}/confirm", json={"note": "called"})
    live.call("POST", f"/api/v1/cases/{case_id}/analyze", json={
        "root_cause": "late_delivery", "responsible_party": "courier", "note": "a week late"})
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    pages.sign_in(page, live, "hank")
    page.goto(f"{live.base}/desk/cases/{case_id}")
    form = page.locator("form#act-resolve")

    # Two apologies make no sense: refused, and nothing changes.
    form.get_by_label("Resolution").first.select_option("apology")
    form.locator("#remedy-2 summary").click()
    form.locator("#remedy-2").get_by_label("Resolution").select_option("apology")
    form.get_by_role("button", name="Resolve").click()
    # The page again, the form as typed (row 2 open with its apology) and the reason in it.
    refused = page.locator("form#act-resolve .notice.error, form#act-resolve .field-error")
    assert "Remedies" in refused.first.inner_text()
    assert live.case(case_id)["resolution"] is None

    form = page.locator("form#act-resolve")
    row2 = form.locator("#remedy-2")
    assert row2.get_attribute("open") is not None
    assert row2.get_by_label("Resolution").input_value() == "apology"
    row2.get_by_label("Resolution").select_option("compensation")
    row2.get_by_label("Coupon code (compensation)").fill("SORRY-30")
    row3 = form.locator("#remedy-3")
    row3.locator("summary").click()
    row3.get_by_label("Resolution").select_option("refund")
    row3.get_by_label("Amount (refunds, money compensation)").fill("25.00")
    form.get_by_label("Note").fill("Sorry for the week's wait.")
    form.get_by_role("button", name="Resolve").click()
    assert "Done: Resolve." in page.locator("p.notice.success").inner_text()

    case = live.wait(case_id, lambda c: c["stage"] == "feedback")
    assert [(r["type"], r["state"]) for r in case["resolution"]["remedies"]] == [
        ("apology", "done"), ("compensation", "done"), ("refund", "done")]
    assert case["resolution"]["remedies"][1]["coupon_code"] == "SORRY-30"
    assert case["resolution"]["remedies"][2]["amount"] == "25.00"
    page.reload()
    remedies = page.locator("ol.remedies > li")
    assert remedies.count() == 3
    texts = remedies.all_inner_texts()
    assert "Apology" in texts[0] and "done" in texts[0]
    assert "Compensation" in texts[1] and "SORRY-30" in texts[1]
    assert "Refund" in texts[2] and "25.00" in texts[2] and "done" in texts[2]
    assert "Several remedies" in page.locator("main").inner_text()
    timeline = page.locator("ol.timeline").first.inner_text()
    assert "remedy 3: refund" in timeline
    pages.shot(page, "handler-case-remedies")
    context.close()

    # The customer's page lists each remedy, in Chinese.
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844},
                                  extra_http_headers={"Accept-Language": "zh-CN"})
    page = context.new_page()
    page.goto(case["customer_url"])
    section = page.locator("section", has=page.locator("#res-h"))
    said = section.inner_text()
    assert "SORRY-30" in said and "25.00" in said
    assert section.locator("p > strong").count() == 3
    context.close()
