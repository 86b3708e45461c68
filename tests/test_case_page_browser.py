"""The case page built around the next action, and input that is never lost (issue 21,
items 2 and 3), in a real headless Chromium, in Chinese at 1280×720, against the real
stack (tests/test_pages_browser.py's): the request, the customer, the order and the
stage's main action in the first screen, the other actions behind one "more", a
destructive one confirmed; a reply template inserted in place (what was typed elsewhere
stays) and setting fields; a refused submit with the values back and the reason beside
the field; after a submit the page stays at the actions and offers the next case.
Screenshots land in test-artifacts/pages/.
"""

from __future__ import annotations

import pytest

from tests.test_pages_browser import ARTIFACTS, browser, live, shot  # noqa: F401

pytestmark = pytest.mark.slow

ZH = {"locale": "zh-CN", "extra_http_headers": {"Accept-Language": "zh-CN,zh;q=0.9"},
      "viewport": {"width": 1280, "height": 720}}


def sign_in(page, stack, name: str) -> None:
    page.goto(f"{stack.base}/login")
    page.locator("#username").fill(name)
    page.locator("#password").fill(f"{name}-password")
    page.locator("#password").press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)


def hanks_case(stack, order_id: str) -> str:
    case_id = stack.open_case(order_id)["id"]
    stack.call("POST", f"/api/v1/cases/{case_id}/assign", json={"assignee": "hank"})
    return case_id


def in_first_screen(locator) -> bool:
    """Whole within the 1280×720 viewport, with the page not scrolled."""
    box = locator.bounding_box()
    return (box is not None and locator.page.evaluate("window.scrollY") == 0
            and box["y"] >= 0 and box["y"] + box["height"] <= 720)


def in_view(locator) -> bool:
    box = locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 720


def first_screen_shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_the_main_action_is_in_the_first_screen_and_the_rest_behind_more(live, browser):  # noqa: F811
    case_id = hanks_case(live, "SO-10018")
    context = browser.new_context(**ZH)
    page = context.new_page()
    sign_in(page, live, "hank")
    page.goto(f"{live.base}/desk/cases/{case_id}")
    # The request, the customer and the order, and the stage's main action: all of it
    # without scrolling.
    for part in ("h1", ".case-head .facts", "p.description", "#who-what",
                 "form#act-confirm", "form#act-confirm button[type=submit]", "#more"):
        assert in_first_screen(page.locator(part)), part
    summary = page.locator("#who-what").inner_text()
    assert "王芳" in summary and "SO-10018" in summary
    first_screen_shot(page, "case-first-screen-zh")

    # The other actions are behind one "more", each opening its own form.
    more = page.locator("#more > summary")
    assert more.inner_text().startswith("更多操作")
    note = page.locator("form#act-note")
    assert not note.is_visible()
    more.click()
    assert not note.is_visible()
    page.locator("#more-note > summary").click()
    assert note.is_visible()

    # A destructive one is sent only once its box is ticked.
    page.locator("#more-cancel > summary").click()
    cancel = page.locator("form#act-cancel")
    cancel.get_by_label("原因").fill("客户已撤回")
    cancel.get_by_role("button", name="取消工单").click()
    page.wait_for_timeout(500)
    assert page.evaluate(
        "document.getElementById('cancel-confirmed').validity.valueMissing") is True
    assert cancel.get_by_label("原因").input_value() == "客户已撤回"
    assert live.case(case_id)["stage"] == "confirm"
    shot(page, "case-more-destructive-zh")
    cancel.get_by_label("我了解此操作无法撤销。").check()
    cancel.get_by_role("button", name="取消工单").click()
    assert "已完成：取消工单。" in page.locator("#done").inner_text()
    assert live.case(case_id)["stage"] == "cancelled"
    context.close()


def test_a_malformed_address_breaks_no_script_and_a_named_form_still_opens(
        live, browser):  # noqa: F811
    case_id = hanks_case(live, "SO-10020")
    context = browser.new_context(**ZH)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    sign_in(page, live, "hank")
    page.goto(f"{live.base}/desk/cases/{case_id}#%E4%")
    page.wait_for_load_state("load")
    assert errors == []
    page.evaluate("window.location.hash = 'act-note'")
    page.locator("form#act-note").wait_for(state="visible")
    assert errors == []
    context.close()


def test_nothing_typed_is_lost_and_the_page_stays_at_the_actions(live, browser):  # noqa: F811
    case_id = hanks_case(live, "SO-10019")
    other = hanks_case(live, "SO-10022")
    context = browser.new_context(**ZH)
    page = context.new_page()
    sign_in(page, live, "hank")
    page.goto(f"{live.base}/desk")
    queue = [link.inner_text() for link in page.locator(
        "section:has(#mine-h) tbody tr td:first-child a").all()]
    expected_next = next(c for c in queue if c != case_id)
    assert other in queue

    page.goto(f"{live.base}/desk/cases/{case_id}")
    page.evaluate("window.notReloaded = true")
    note = page.locator("#confirm-note")
    note.fill("客户来电：盒子压坏了")
    # A template in another form goes in at the caret, with no reload: the note stays.
    page.locator("#more > summary").click()
    page.locator("#more-request-info > summary").click()
    question = page.locator("#request-info-question")
    question.fill("您好，")
    page.locator("form#act-request-info").get_by_role("link", name="请客户补充说明").click()
    assert page.evaluate("window.notReloaded") is True
    assert note.input_value() == "客户来电：盒子压坏了"
    asked = question.input_value()
    assert asked.startswith("您好，王芳您好，请问您是什么时候发现问题的")
    shot(page, "case-template-inserted-zh")

    # The main action done: back at the actions, with the next case of the queue.
    page.locator("form#act-confirm").get_by_role("button", name="确认").click()
    page.wait_for_url(lambda url: url.endswith("#actions"))
    done = page.locator("#done")
    assert "已完成：确认。" in done.inner_text()
    assert in_view(done)
    nxt = done.locator("a.next-case")
    assert nxt.inner_text() == f"你的队列中的下一个工单：{expected_next}"
    assert in_view(page.locator("form#act-analyze"))
    first_screen_shot(page, "case-done-next-zh")
    assert nxt.get_attribute("href") == f"/desk/cases/{expected_next}"

    # A template that sets fields, like a macro; then a refused submit (a note of
    # blanks): the page comes back with the choices made and the reason beside the note.
    analyze = page.locator("form#act-analyze")
    analyze.get_by_role("link", name="物流原因").click()
    assert analyze.get_by_label("问题原因").input_value() == "damaged_in_transit"
    assert analyze.get_by_label("责任方").input_value() == "courier"
    assert "向快递公司发起索赔" in analyze.get_by_label("备注").input_value()
    analyze.get_by_label("备注").fill("   ")
    with page.expect_response(lambda r: r.request.method == "POST") as sent:
        analyze.get_by_role("button", name="记录分析结果").click()
    assert sent.value.status == 422
    analyze = page.locator("form#act-analyze")
    assert analyze.get_by_label("问题原因").input_value() == "damaged_in_transit"
    assert analyze.get_by_label("责任方").input_value() == "courier"
    field = analyze.get_by_label("备注")
    assert field.get_attribute("aria-invalid") == "true"
    said = page.locator("#" + field.get_attribute("aria-describedby"))
    assert said.inner_text() == "请填写：此项必填。"
    shot(page, "case-refused-field-zh")

    # Typed text comes back too: a tag too long for a tag, in the form behind "more".
    page.locator("#more > summary").click()
    page.locator("#more-tag > summary").click()
    long_tag = "非常长的标签" * 8
    page.locator("#tag-add").fill(f"破损, {long_tag}")
    with page.expect_response(lambda r: r.request.method == "POST") as sent:
        page.locator("form#act-tag").get_by_role("button", name="标签").click()
    assert sent.value.status == 422
    tag = page.locator("#tag-add")
    assert tag.is_visible() and tag.input_value() == f"破损, {long_tag}"
    assert tag.get_attribute("aria-invalid") == "true"
    assert page.locator("#tag-add-error").inner_text() == "此项无效，请检查。"
    assert live.case(case_id)["tags"] == []
    shot(page, "case-refused-typed-zh")

    context.close()


def test_a_case_that_moved_meanwhile_keeps_the_refused_form_as_typed(live, browser):  # noqa: F811
    case_id = hanks_case(live, "SO-10023")
    context = browser.new_context(**ZH)
    page = context.new_page()
    sign_in(page, live, "hank")
    page.goto(f"{live.base}/desk/cases/{case_id}")
    page.locator("#confirm-note").fill("已电话联系客户，确认盒子破损")
    # Meanwhile the case is confirmed elsewhere (the API): the workflow refuses this one.
    live.call("POST", f"/api/v1/cases/{case_id}/confirm", json={"note": "phone"})
    with page.expect_response(lambda r: r.request.method == "POST") as sent:
        page.locator("form#act-confirm").get_by_role("button", name="确认").click()
    assert sent.value.status == 409
    # The stage's new main action first; the refused form open behind "more", as typed,
    # with the workflow's reason in Chinese at its head.
    assert in_first_screen(page.locator("form#act-analyze"))
    form = page.locator("form#act-confirm")
    assert form.is_visible()
    assert page.locator("#confirm-note").input_value() == "已电话联系客户，确认盒子破损"
    said = form.locator("#act-confirm-error").inner_text()
    assert said == "操作被拒绝：工单处于“待分析”阶段，不能“确认”", said
    shot(page, "case-moved-meanwhile-zh")
    context.close()
