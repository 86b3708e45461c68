"""The case conversation in a real headless Chromium (Debian's, driven by Playwright),
against the real stack of tests/test_pages_browser.py (Temporal dev server, worker,
order simulator over HTTP, read model, the app over HTTP): a customer on a phone in
Chinese writes on the status page, the handler sees the customer waiting on the case
page, replies and adds an internal note, and the customer sees the reply signed with
the handler's display name and never the note; the form in English; a blank message
refused. The same conversation through Flask's test client is in
tests/test_conversation.py.

Screenshots land in test-artifacts/pages/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from db.accounts import create_user
from tests.test_intake_browser import PHONE, english_on, no_sideways_scroll
from tests.test_pages_browser import browser, live, shot, sign_in

__all__ = ["browser", "live"]  # fixtures, used by name

# A real browser (a chromium subprocess per module): not for `make test-fast`.
pytestmark = pytest.mark.slow
DESK_ZH = {"viewport": {"width": 1400, "height": 900}, "locale": "zh-CN"}
HANDLER, SHOWN_AS = "xiaoai", "客服小艾"


@pytest.fixture(scope="module")
def handler(live) -> str:
    """A handler with a display name in the live stack's read model."""
    with live.sessions.begin() as session:
        create_user(session, HANDLER, "handler", f"{HANDLER}-password",
                    display_name=SHOWN_AS)
    return HANDLER


def customer_page(browser, live, lang: str = "zh_CN", **context):
    options = {**PHONE, **context}
    ctx = browser.new_context(**options)
    ctx.add_cookies([{"name": "lang", "value": lang, "url": live.base}])
    return ctx, ctx.new_page()


def write(page, token: str, text: str, button: str) -> None:
    """Send `text` with the status page's form and wait for the page it comes back to."""
    form = page.locator("section#messages form")
    form.locator("textarea[name=message]").fill(text)
    form.get_by_role("button", name=button).click()
    page.wait_for_url(re.compile(rf"/s/{re.escape(token)}#messages$"))


def test_customer_and_handler_hold_a_conversation_in_chinese(live, browser, handler):
    case = live.open_case("SO-10007", description="茶叶盒子到货时压坏了，请尽快处理")
    case_id, token = case["id"], case["customer_url"].rsplit("/", 1)[1]
    live.call("POST", f"/api/v1/cases/{case_id}/assign", who="sam",
              json={"assignee": handler})
    question = "请问什么时候能给我换一盒？我下周要送人。"
    answer = "您好，我们今天就给您补发一盒，明天能到。"
    note = "老客户，补发走顺丰，运费我们承担"

    # The customer, on a phone, writes to us.
    customer_ctx, phone = customer_page(browser, live)
    phone.goto(case["customer_url"])
    assert phone.locator("html").get_attribute("lang") == "zh-CN"
    messages = phone.locator("section#messages")
    assert messages.locator("p.empty").inner_text() == "暂无留言。"
    assert messages.locator("label[for=answer]").inner_text() == "给我们留言"
    write(phone, token, question, "发送留言")
    expect(phone.locator("p.notice.success")).to_have_text("谢谢，我们已收到您的留言。")
    mine = messages.locator("ol.thread > li")
    expect(mine).to_have_count(1)
    assert mine.first.get_attribute("class") == "mine"
    assert mine.first.locator("p.who strong").inner_text() == "您"
    assert mine.first.locator("p.text").inner_text() == question
    assert no_sideways_scroll(phone) <= 390
    assert not english_on(phone), english_on(phone)

    # The handler's case page, in Chinese: the customer is waiting, the message is there.
    desk_ctx = browser.new_context(**DESK_ZH)
    desk_ctx.add_cookies([{"name": "lang", "value": "en", "url": live.base}])
    desk = desk_ctx.new_page()
    sign_in(desk, live, handler)
    assert desk.url.endswith("/desk")
    desk.locator("nav.langs").get_by_role("link", name="简体中文").click()
    expect(desk.locator("html")).to_have_attribute("lang", "zh-CN")
    mine_row = desk.locator("tr", has=desk.get_by_role("link", name=case_id))
    expect(mine_row.locator(".waiting-flag")).to_contain_text("客户已等待")
    mine_row.get_by_role("link", name=case_id).click()
    desk.wait_for_url(re.compile(rf"/desk/cases/{case_id}$"))
    waiting = desk.locator("p.notice.waiting")
    expect(waiting).to_contain_text("客户自")
    assert "起等待回复" in waiting.inner_text()
    thread = desk.locator("section#thread")
    entries = thread.locator("ol.thread > li")
    expect(entries).to_have_count(1)
    assert entries.first.locator("p.who strong").inner_text() == "客户"
    assert entries.first.locator("p.text").inner_text() == question
    assert not english_on(desk), english_on(desk)

    # The reply, then an internal note.
    # Both behind "more" (the stage's main action comes first).
    desk.locator("#more > summary").click()
    desk.locator("#more-reply > summary").click()
    reply = desk.locator("form#act-reply")
    reply.locator("textarea[name=message]").fill(answer)
    reply.get_by_role("button", name="回复客户").click()
    expect(desk.locator("p.notice.success")).to_have_text("已完成：回复客户。")
    expect(desk.locator("p.notice.waiting")).to_have_count(0)
    expect(entries).to_have_count(2)
    staff = entries.nth(1)
    assert staff.get_attribute("class") == "mine"
    assert staff.locator("p.who").inner_text().startswith(f"{handler} (对客户显示为 {SHOWN_AS})")
    assert staff.locator("p.text").inner_text() == answer

    desk.locator("#more-note > summary").click()
    noted = desk.locator("form#act-note")
    noted.locator("textarea[name=text]").fill(note)
    noted.get_by_role("button", name="添加备注").click()
    expect(desk.locator("p.notice.success")).to_have_text("已完成：添加备注。")
    expect(entries).to_have_count(3)
    internal = entries.nth(2)
    assert internal.get_attribute("class") == "note"
    assert internal.locator(".badge").inner_text() == "内部备注"
    assert internal.locator("p.text").inner_text() == note
    shot(desk, "conversation-desk-zh")
    assert not english_on(desk), english_on(desk)
    desk_ctx.close()

    # The customer reloads: the reply signed 客服小艾, never the user name; no note.
    phone.reload()
    entries = phone.locator("section#messages ol.thread > li")
    expect(entries).to_have_count(2)
    theirs = entries.nth(1)
    assert theirs.get_attribute("class") == "theirs"
    assert theirs.locator("p.who strong").inner_text() == SHOWN_AS
    assert theirs.locator("p.text").inner_text() == answer
    body = phone.locator("body").inner_text()
    assert handler not in body
    assert note not in body
    assert no_sideways_scroll(phone) <= 390
    shot(phone, "conversation-status-zh")
    assert not english_on(phone), english_on(phone)
    customer_ctx.close()

    case = live.case(case_id)
    assert case["awaiting_reply_since"] is None
    assert [(m["author"], m["text"], m["internal"]) for m in case["messages"]] == [
        ("customer", question, False), ("staff", answer, False), ("staff", note, True)]
    assert case["messages"][1]["by"] == handler
    assert case["messages"][1]["display_name"] == SHOWN_AS
    status = live.api.get(f"/api/v1/status/{token}").json()
    assert [m["text"] for m in status["messages"]] == [question, answer]


def test_the_status_page_form_in_english(live, browser):
    case = live.open_case("SO-10009")
    case_id, token = case["id"], case["customer_url"].rsplit("/", 1)[1]
    text = "When can I expect the replacement box?"

    context, page = customer_page(browser, live, lang="en", locale="en-GB")
    page.goto(case["customer_url"])
    assert page.locator("html").get_attribute("lang") == "en"
    messages = page.locator("section#messages")
    messages.get_by_label("Write to us").fill(text)
    messages.get_by_role("button", name="Send message").click()
    page.wait_for_url(re.compile(rf"/s/{re.escape(token)}#messages$"))
    expect(page.locator("p.notice.success")).to_have_text("Thank you, we have your message.")
    entries = messages.locator("ol.thread > li")
    expect(entries).to_have_count(1)
    assert entries.first.locator("p.who strong").inner_text() == "You"
    assert entries.first.locator("p.text").inner_text() == text

    # A reply by a user without a display name is signed by the service, not the user.
    live.call("POST", f"/api/v1/cases/{case_id}/reply", json={"message": "Tomorrow."})
    page.reload()
    expect(entries).to_have_count(2)
    assert entries.nth(1).locator("p.who strong").inner_text() == "Customer service"
    assert "hank" not in page.locator("body").inner_text()
    assert no_sideways_scroll(page) <= 390
    shot(page, "conversation-status-en")
    context.close()


def test_a_blank_message_is_refused_and_adds_nothing(live, browser):
    case = live.open_case("SO-10010", description="盒子压坏了")
    case_id, token = case["id"], case["customer_url"].rsplit("/", 1)[1]

    context, page = customer_page(browser, live)
    page.goto(case["customer_url"])
    # `required` lets spaces through: the server is the one to refuse them.
    write(page, token, "   ", "发送留言")
    error = page.locator("p.notice.error")
    expect(error).to_have_count(1)
    assert error.get_attribute("role") == "alert"
    assert error.inner_text().startswith("请检查")
    assert page.locator("p.notice.success").count() == 0
    messages = page.locator("section#messages")
    assert messages.locator("p.empty").inner_text() == "暂无留言。"
    assert messages.locator("ol.thread").count() == 0
    assert not english_on(page), english_on(page)
    shot(page, "conversation-blank-refused-zh")
    context.close()

    case = live.case(case_id)
    assert case["messages"] == [] and case["awaiting_reply_since"] is None
    assert not any(e["type"] == "customer_replied" for e in case["timeline"])
