"""The two intake doors in a real headless Chromium (Debian's, driven by Playwright),
against the real stack of tests/test_pages_browser.py (Temporal dev server, worker,
order simulator over HTTP, read model, the app over HTTP): the desk's new-case form
with a photo added on the new case, the customer's request page on a phone in Chinese
with a photo, and a file that is not a photo refused without losing what was typed.
The same journeys through Flask's test client are in tests/test_intake_pages.py.

Screenshots land in test-artifacts/pages/.
"""

from __future__ import annotations

import re

import pytest

from tests.test_intake import jpeg_with_gps, pick_line
from tests.test_pages_browser import browser, english_phrases, live, shot, sign_in

__all__ = ["browser", "live"]  # fixtures, used by name

# A real browser (a chromium subprocess per module): not for `make test-fast`.
pytestmark = pytest.mark.slow
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "locale": "zh-CN"}


def image_loaded(page, selector: str) -> bool:
    """The first image under `selector` has been fetched and decoded (lazy ones are
    scrolled to first)."""
    image = page.locator(selector).first
    image.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete", arg=image.element_handle())
    return image.evaluate("img => img.naturalWidth") > 0


def english_on(page) -> list[str]:
    text = page.locator("body").inner_text()
    return sorted(p for p in english_phrases() if p in text)


def no_sideways_scroll(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_a_handler_opens_a_case_from_the_desk_and_adds_a_photo(live, browser, tmp_path,
                                                               order_system_url):
    order, line = pick_line(order_system_url, "return")
    photo = tmp_path / "box.jpg"
    photo.write_bytes(jpeg_with_gps())
    description = "Customer called: the tea box arrived crushed, wants it sorted today"

    context = browser.new_context(locale="en-GB", viewport={"width": 1400, "height": 900})
    page = context.new_page()
    sign_in(page, live, "hank")
    assert page.url.endswith("/desk")
    page.locator("header.top").get_by_role("link", name="New case").click()
    assert page.locator("h1").inner_text() == "New case"

    by_phone = page.locator("form#by-phone")
    by_phone.locator("input[name=phone]").fill(order["customer"]["phone"])
    by_phone.get_by_role("button", name="Search").click()
    found = page.locator("table#found")
    assert order["id"] in found.inner_text()
    found.get_by_role("link", name=order["id"], exact=True).click()
    assert page.get_by_role("heading", name=f"Order {order['id']}").count() == 1

    form = page.locator("form#new-case")
    form.locator(f"input[name='qty_{line.sku}']").fill("1")
    form.locator(f"input[name='reason_{line.sku}']").fill("box crushed")
    form.get_by_label("Kind").select_option("complaint")
    form.get_by_label("Channel").select_option("phone")
    form.get_by_label("What the customer says").fill(description)
    form.locator("button[name=intent][value=preview]").click()
    triage = page.locator("#triage")
    assert triage.get_by_role("heading", name="Suggestion").count() == 1
    assert re.search(r"Priority\s+P[1-4]", triage.inner_text())
    # Everything typed is still there after Check.
    assert page.locator("#description").input_value() == description
    assert page.locator(f"input[name='qty_{line.sku}']").input_value() == "1"
    assert page.locator("#kind").input_value() == "complaint"
    shot(page, "desk-new-checked")

    page.get_by_role("button", name="Open the case").click()
    page.wait_for_url(re.compile(r"/desk/cases/AS-[\w-]+$"))
    case_id = page.url.rsplit("/", 1)[1]
    assert case_id in page.locator("h1").inner_text()
    files = page.locator("section#files")
    assert "No files yet." in files.inner_text()

    upload = page.locator("form#upload")
    upload.locator("input[name=file]").set_input_files(str(photo))
    upload.get_by_role("button", name="Add the file").click()
    page.wait_for_url(re.compile(rf"/desk/cases/{case_id}#files$"))
    assert page.locator("p.notice.success").inner_text() == "The file was added."
    assert page.locator("section#files img").count() == 1
    assert image_loaded(page, "section#files img"), "the thumbnail did not load"
    assert "box.jpg" in files.inner_text()
    shot(page, "desk-case-with-photo")

    # The same form in Chinese, switched by the header's language link.
    page.goto(f"{live.base}/desk/new?order_id={order['id']}")
    page.locator("nav.langs").get_by_role("link", name="简体中文").click()
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "新建工单"
    assert case_id in page.locator("#open-cases").inner_text()
    page.locator(f"input[name='qty_{line.sku}']").fill("1")
    page.locator("#description").fill("茶叶盒子压坏了，再不处理就去12315投诉")
    page.get_by_role("button", name="检查").click()
    assert page.locator("#triage").get_by_role("heading", name="智能建议").count() == 1
    shot(page, "desk-new-zh")
    assert not english_on(page), english_on(page)
    context.close()

    case = live.case(case_id)
    assert case["kind"] == "complaint" and case["channel"] == "phone"
    assert case["description"] == description
    assert case["items"] == [{"sku": line.sku, "quantity": 1, "reason": "box crushed"}]
    assert [a["filename"] for a in case["attachments"]] == ["box.jpg"]


def prove_order(page, live, order: dict) -> None:
    """Step one of /request: the order number and the phone on the order."""
    page.goto(f"{live.base}/request")
    page.get_by_label("订单号").fill(order["id"])
    page.get_by_label("订单上的手机号或邮箱").fill(order["customer"]["phone"])
    page.get_by_role("button", name="继续").click()
    page.wait_for_url(re.compile(r"/request/lines$"))


def test_the_customer_asks_for_a_return_with_a_photo_on_a_phone(live, browser, tmp_path,
                                                                order_system_url):
    order, line = pick_line(order_system_url, "return")
    photo = tmp_path / "箱子.jpg"
    photo.write_bytes(jpeg_with_gps())

    context = browser.new_context(**PHONE)
    context.add_cookies([{"name": "lang", "value": "zh_CN", "url": live.base}])
    page = context.new_page()
    page.goto(f"{live.base}/request")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "申请售后"
    assert no_sideways_scroll(page) <= 390
    shot(page, "request-zh")
    assert not english_on(page), english_on(page)

    prove_order(page, live, order)
    assert order["id"] in page.locator("main").inner_text()
    ask = page.locator("form#ask")
    ask.get_by_label("退货").check()
    ask.locator(f"#qty_{line.sku}").fill("1")
    ask.get_by_label("原因").select_option("damaged")
    ask.locator("#description").fill("收到的时候盒子压坏了，茶叶撒了一半")
    ask.locator("input[name=photos]").set_input_files(str(photo))
    assert no_sideways_scroll(page) <= 390
    shot(page, "request-lines-zh")
    assert not english_on(page), english_on(page)

    ask.get_by_role("button", name="提交申请").click()
    page.wait_for_url(re.compile(r"/s/[\w-]+$"))
    files = page.locator("section#files")
    assert files.get_by_role("heading", name="照片和文件").count() == 1
    assert "箱子.jpg" in files.inner_text()
    assert image_loaded(page, "section#files img"), "the thumbnail did not load"
    assert no_sideways_scroll(page) <= 390
    shot(page, "status-with-photo-zh")
    assert not english_on(page), english_on(page)
    token = page.url.rsplit("/", 1)[1]
    context.close()

    view = live.api.get(f"/api/v1/status/{token}").json()
    case = live.case(view["case_id"])
    assert case["kind"] == "return" and case["channel"] == "web"
    assert case["items"] == [{"sku": line.sku, "quantity": 1, "reason": "damaged"}]
    assert [a["filename"] for a in case["attachments"]] == ["箱子.jpg"]


def test_a_program_named_photo_jpg_is_refused_and_the_words_stay(live, browser, tmp_path,
                                                                order_system_url):
    order, line = pick_line(order_system_url, "return")
    exe = tmp_path / "photo.jpg"
    exe.write_bytes(b"MZ" + b"\0" * 1022)
    description = "盒子压坏了，这段话不能丢"

    context = browser.new_context(**PHONE)
    context.add_cookies([{"name": "lang", "value": "zh_CN", "url": live.base}])
    page = context.new_page()
    prove_order(page, live, order)
    ask = page.locator("form#ask")
    ask.get_by_label("退货").check()
    ask.locator(f"#qty_{line.sku}").fill("1")
    ask.locator("#description").fill(description)
    ask.locator("input[name=photos]").set_input_files(str(exe))
    ask.get_by_role("button", name="提交申请").click()

    error = page.locator("p.notice.error")
    assert error.inner_text() == "有文件不是照片（JPEG、PNG、WebP、HEIC）、MP4 视频或 PDF。"
    assert page.url.endswith("/request/lines")
    assert page.locator("#description").input_value() == description
    assert page.locator(f"#qty_{line.sku}").input_value() == "1"
    assert page.get_by_label("退货").is_checked()
    shot(page, "request-refused-file-zh")
    context.close()
