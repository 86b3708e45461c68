"""One language per page in a real headless Chromium: a handler opens a case with a
full day's timeline (an escalation risk, an assignment, warnings, a breach, the second
escalation) in zh-CN, and the text the browser shows holds no English sentence and no
raw key (tests/test_one_language.py has the check and the seeded data set).

Screenshots land in test-artifacts/pages/.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from db.accounts import create_user
from tests.conftest import make_settings
from tests.test_one_language import foreign_in, seed
from tests.test_pages_browser import _browser_or_skip, browser, shot  # noqa: F401 - fixture
from web import create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Iterator[str]:
    _browser_or_skip()
    folder = tmp_path_factory.mktemp("one-language")
    server = make_server("127.0.0.1", 0, None, threaded=True)  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{server.server_port}"
    settings = make_settings("127.0.0.1:9", f"sqlite:///{folder / 'aftersales.db'}",
                             "http://127.0.0.1:9", public_url=url)
    app = create_app(settings)
    server.app = app  # type: ignore[attr-defined]
    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "hank", "handler", "hank-password")
    seed(app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=5)
        app.extensions["aftersales"].engine.dispose()


def test_the_case_page_in_chinese_shows_no_english_sentence_or_raw_key(base, browser):  # noqa: F811
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 720})
    page = context.new_page()
    try:
        page.goto(f"{base}/login")
        page.locator("#username").fill("hank")
        page.locator("#password").fill("hank-password")
        page.locator("form button[type=submit]").click()
        page.wait_for_url(f"{base}/desk")
        page.goto(f"{base}/desk/cases/AS-ZH2")
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        # What a reader sees, with every <details> opened.
        for summary in page.locator("details > summary").all():
            summary.click()
        page.locator("code").evaluate_all("els => els.forEach(e => e.remove())")
        text = page.locator("body").inner_text()
        timeline = page.locator("#timeline-h + ol").inner_text()
        assert "发现客户可能进一步投诉" in timeline and "分派 — 给 hank" in timeline
        assert "确认时限（8h）已用 150%" in timeline
        assert "工单" in text and "服务单" not in text and "售后单" not in text
        shot(page, "case-zh-one-language")
        found = foreign_in(text.splitlines(), names=("hank", "sam", "admin", "bob"))
        assert not found, found
    finally:
        context.close()
