"""A refusal the workflow gives says itself in Chinese on the desk, from its code, in a
real headless Chromium against the real stack (the fixtures of
tests/test_pages_browser.py, fresh for this module)."""

from __future__ import annotations

import pytest

from tests import test_pages_browser as pages
from tests.test_one_language import foreign

pytestmark = pytest.mark.slow
live = pages.live
browser = pages.browser


def test_a_refusal_the_old_sentence_list_did_not_know_is_said_in_chinese(live, browser):
    """The page offered a question to the customer; before it was sent, a colleague's
    question went out (here: the API). The workflow refuses the second one with
    `question_pending`, a refusal the desk used to show in English."""
    case_id = live.open_case("SO-10004")["id"]
    live.call("POST", f"/api/v1/cases/{case_id}/confirm", json={"note": "called"})
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    pages.sign_in(page, live, "hank")
    page.goto(f"{live.base}/desk/cases/{case_id}?lang=zh_CN")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.locator("#more > summary").click()
    page.locator("#more-request-info > summary").click()
    form = page.locator("form#act-request-info")
    form.locator("textarea[name=question]").fill("请问是哪一件商品有问题？")

    live.call("POST", f"/api/v1/cases/{case_id}/request-info",
              json={"question": "Which item is damaged?"})
    before = live.case(case_id)
    form.locator("button[type=submit]").click()

    # The page again, the form as typed with the reason at its head.
    error = page.locator("#act-request-info-error")
    assert error.inner_text() == "操作被拒绝：客户尚未答复上一个问题"
    assert not foreign(f"<p>{error.inner_text()}</p>")
    assert page.locator("form#act-request-info textarea[name=question]").input_value() == (
        "请问是哪一件商品有问题？")
    pages.shot(page, "refusal-question-pending-zh")
    # Refused: nothing changed, and the API still says it in English, with the code.
    assert live.case(case_id)["version"] == before["version"]
    refused = live.api.post(f"/api/v1/cases/{case_id}/request-info",
                            json={"question": "again?"},
                            headers={"Authorization": f"Bearer {live.tokens['hank']}"})
    assert refused.status_code == 409
    assert refused.json()["detail"] == "the customer has not answered the previous question yet"
    assert refused.json()["code"] == "question_pending"
    context.close()
