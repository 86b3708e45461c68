"""The desk's preference for the SLA warning digest, in a real headless Chromium in
Chinese, against the real stack of tests/test_pages_browser.py: a handler chooses how
often their warnings come, the choice is kept and shown, and what a crafted form posts
instead of an offered interval changes nothing. Screenshots land in
test-artifacts/pages/ with the others."""

from __future__ import annotations

import pytest

from db.models import User
from tests import test_pages_browser
from tests.test_pages_browser import Live, shot

pytestmark = pytest.mark.slow
browser = test_pages_browser.browser
live = test_pages_browser.live


def interval_of(live: Live, name: str) -> int | None:
    with live.sessions() as session:
        user = session.get(User, name)
        assert user is not None
        return user.digest_interval


def test_a_handler_chooses_how_often_warnings_come_in_chinese(live, browser):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 720},
                                  extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    page = context.new_page()
    page.goto(f"{live.base}/login?lang=zh_CN")
    page.locator("#username").fill("bob")
    page.locator("#password").fill("bob-password")
    page.locator("main form button[type=submit]").click()
    assert page.url.endswith("/desk")
    assert page.locator("html").get_attribute("lang") == "zh-CN"

    form = page.locator("form.digest")
    choice = form.get_by_label("即将超时提醒合并为一封邮件发送，频率：")
    assert choice.locator("option").all_inner_texts() == [
        "按系统设置（每 30 分钟）", "每 15 分钟", "每 30 分钟", "每 1 小时", "每 2 小时",
        "每 4 小时"]
    assert choice.input_value() == ""  # nothing chosen yet: the settings' interval
    assert interval_of(live, "bob") is None

    choice.select_option(label="每 1 小时")
    form.get_by_role("button", name="保存").click()
    assert page.url.endswith("/desk")
    assert "即将超时提醒今后最多每 1 小时发送一封汇总邮件。" in \
        page.locator("p.notice").first.inner_text()
    assert page.locator("form.digest select").input_value() == "3600"
    assert interval_of(live, "bob") == 3600
    shot(page, "desk-digest-preference-zh")

    # What a crafted form sends instead of an offered interval changes nothing: a
    # Chinese page says so, with 400.
    token = page.locator("form.digest input[name=csrf_token]").input_value()
    for value in ("60", "-1", "0", "3600 ", "abc", "1e3", "99999999999999999999", "３６００"):
        answer = page.request.post(f"{live.base}/desk/digest", form={
            "csrf_token": token, "digest_interval": value}, max_redirects=0)
        assert answer.status == 400, value
        assert "请从提供的间隔中选择超时提醒汇总的发送频率。" in answer.text()
        assert interval_of(live, "bob") == 3600, value
    # Without the form's token, nothing either; and no form field names another user.
    answer = page.request.post(f"{live.base}/desk/digest",
                               form={"digest_interval": "900"}, max_redirects=0)
    assert answer.status == 400 and interval_of(live, "bob") == 3600
    answer = page.request.post(f"{live.base}/desk/digest", form={
        "csrf_token": token, "digest_interval": "900", "user": "hank", "name": "hank"},
        max_redirects=0)
    assert answer.status == 302
    assert interval_of(live, "bob") == 900 and interval_of(live, "hank") is None

    # Back to the settings' interval.
    page.goto(f"{live.base}/desk")
    page.locator("form.digest select").select_option(value="")
    page.locator("form.digest").get_by_role("button", name="保存").click()
    assert "即将超时提醒今后最多每 30 分钟发送一封汇总邮件。" in \
        page.locator("p.notice").first.inner_text()
    assert interval_of(live, "bob") is None
    context.close()
