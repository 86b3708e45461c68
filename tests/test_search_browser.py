"""The search box and the customer page in a real headless Chromium, in Chinese: a
handler finds a colleague's closed case by a phone typed with spaces and dashes, opens
the customer's page from the results and from the case, and is told plainly when the
search cannot be run. The read model is written by the projection, as the workers
write it, and the app is served over real HTTP.

Screenshots land in test-artifacts/pages/.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from werkzeug.serving import make_server

from db import cases as case_store
from db.accounts import create_user
from tests.conftest import make_settings
from tests.test_pages_browser import _browser_or_skip, browser, shot  # noqa: F401 - fixture
from tests.test_read_model import snapshot
from web import create_app
from workflows.case.contracts import Customer, Projection

pytestmark = pytest.mark.slow
NOW = datetime.now(UTC).replace(microsecond=0)


def put(sessions, case_id: str, **changes) -> None:
    values = dict(created_at=NOW - timedelta(hours=2), updated_at=NOW,
                  stage_due_at=NOW + timedelta(hours=6), status_token=f"tok-{case_id}",
                  customer_url=f"http://testserver/s/tok-{case_id}")
    values.update(changes)
    case_store.write_projection(sessions, Projection(snapshot(case_id, 1, **values)))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Iterator[str]:
    _browser_or_skip()
    folder = tmp_path_factory.mktemp("search")
    server = make_server("127.0.0.1", 0, None, threaded=True)  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{server.server_port}"
    settings = make_settings("127.0.0.1:9", f"sqlite:///{folder / 'aftersales.db'}",
                             "http://127.0.0.1:9", public_url=url)
    app = create_app(settings)
    server.app = app  # type: ignore[attr-defined]
    sessions = app.extensions["aftersales"].sessions
    with sessions.begin() as session:
        for name, role in (("hank", "handler"), ("bob", "handler")):
            create_user(session, name, role, f"{name}-password")
    wang = Customer(id="C-WANG", name="王芳", phone="13800138000")
    put(sessions, "AS-23456789AB", customer=wang, order_id="SO-90001", assignee="bob",
        team="returns", stage="closed", status="closed", stage_due_at=None,
        created_at=NOW - timedelta(days=20), rating=2, rating_comment="太慢了",
        description="屏幕碎了，要求换货")
    put(sessions, "AS-3456789ABC", customer=wang, order_id="SO-90002", assignee="hank",
        description="漏发了一个配件")
    put(sessions, "AS-456789ABCD", customer=Customer(id="C-LI", name="李雷",
                                                    phone="13900000000"),
        order_id="SO-90003")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=5)
        app.extensions["aftersales"].engine.dispose()


def chinese_page(browser, base: str, width: int = 1280, height: int = 720):  # noqa: F811
    context = browser.new_context(locale="zh-CN", viewport={"width": width, "height": height})
    context.add_cookies([{"name": "lang", "value": "zh_CN", "url": base}])
    page = context.new_page()
    page.goto(f"{base}/login")
    page.locator("#username").fill("hank")
    page.locator("#password").fill("hank-password")
    page.locator("form button[type=submit]").click()
    page.wait_for_url(f"{base}/desk")
    return context, page


def test_a_handler_finds_a_colleagues_closed_case_by_phone_in_chinese(base, browser):  # noqa: F811
    context, page = chinese_page(browser, base)
    # The desk's own lists do not hold bob's closed case; the search box does.
    assert page.locator("a", has_text="AS-23456789AB").count() == 0
    page.get_by_label("搜索全部工单").fill("+86 138-0013-8000")
    page.get_by_role("button", name="搜索", exact=True).click()
    found = page.locator("section", has=page.locator("#found-h"))
    assert "+86 138-0013-8000" in page.locator("#found-h").inner_text()
    row = found.locator("tr", has=page.get_by_role("link", name="AS-23456789AB"))
    text = row.inner_text()
    for shown in ("已结案", "bob", "returns", "SO-90001", "屏幕碎了，要求换货", "王芳"):
        assert shown in text, shown
    assert found.get_by_role("link", name="AS-3456789ABC").count() == 1
    assert found.get_by_role("link", name="AS-456789ABCD").count() == 0
    shot(page, "search-results-zh")

    # A case id read over the phone, in lower case with spaces, finds the case.
    page.get_by_label("搜索全部工单").fill("as 4567 89ab cd")
    page.get_by_role("button", name="搜索", exact=True).click()
    assert found.get_by_role("link", name="AS-456789ABCD").count() == 1

    # From the results to the customer, and from a case page to the customer.
    page.get_by_label("搜索全部工单").fill("王芳")
    page.get_by_role("button", name="搜索", exact=True).click()
    found.get_by_role("link", name="王芳").first.click()
    assert page.locator("h1").inner_text() == "客户 王芳"
    opened = page.locator("section", has=page.locator("#open-h"))
    ended = page.locator("section", has=page.locator("#closed-h"))
    assert opened.get_by_role("link", name="AS-3456789ABC").count() == 1
    assert ended.get_by_role("link", name="AS-23456789AB").count() == 1
    assert "2/5" in page.locator("section", has=page.locator("#ratings-h")).inner_text()
    shot(page, "customer-page-zh")
    opened.get_by_role("link", name="AS-3456789ABC").click()
    page.get_by_role("link", name="该客户的全部工单").click()
    assert page.url.endswith("/desk/customers/C-WANG")
    context.close()


@pytest.mark.parametrize(("query", "words"), [
    ("", "请输入要找的内容"),
    ("x" * 10_000, "搜索内容太长"),  # (a real server takes a URL up to 64 KiB)
    ("王芳\x7f", "搜索内容含有控制字符"),
])
def test_a_search_that_cannot_run_says_why_in_chinese(base, browser, query, words):  # noqa: F811
    context, page = chinese_page(browser, base)
    response = page.goto(f"{base}/desk?q={quote(query)}")
    assert response is not None and response.status == 400
    error = page.locator("#q-error")
    assert words in error.inner_text()
    assert page.get_by_label("搜索全部工单").get_attribute("aria-invalid") == "true"
    assert page.locator("#found-h").count() == 0
    if not query:
        shot(page, "search-empty-zh")
    context.close()


def test_percent_and_underscore_match_themselves_in_the_browser(base, browser):  # noqa: F811
    context, page = chinese_page(browser, base)
    for query in ("%", "_", "王%"):
        page.get_by_label("搜索全部工单").fill(query)
        page.get_by_role("button", name="搜索", exact=True).click()
        assert page.locator("table.found").count() == 0, query
        assert "没有与" in page.locator("p.empty").inner_text()
    context.close()
