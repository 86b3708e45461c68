"""The three journeys of the pages in a real headless Chromium (Debian's, driven by
Playwright), against the real stack: the Temporal dev server, a worker, the order
simulator over HTTP, the read model, and the web app served over HTTP.

Screenshots land in test-artifacts/pages/. On a developer's machine without
/usr/bin/chromium these tests skip and say how to install it; in CI (CI=true) a
missing browser is a failure.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from werkzeug.serving import make_server

from db.accounts import create_token, create_user
from tests.conftest import BackgroundWorker, make_settings
from web import create_app

# A real browser (a chromium subprocess per module): not for `make test-fast`.
pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "pages"
# Short confirm target at P4, so a real deadline fires during the test.
POLICY = """
[calendar]
timezone = "Asia/Shanghai"
hours = "24x7"
workdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

[targets.default]
P1 = { confirm = "30m", analyze = "4h",  resolution = "24h", revisit_after = "1d" }
P2 = { confirm = "2h",  analyze = "12h", resolution = "48h", revisit_after = "2d" }
P3 = { confirm = "8h",  analyze = "24h", resolution = "72h", revisit_after = "3d" }
P4 = { confirm = "3s",  analyze = "48h", resolution = "7d",  revisit_after = "7d" }
"""


def _browser_or_skip():
    if not Path(CHROMIUM).exists():
        message = ("Debian's chromium is not installed: run `apt-get install chromium` "
                   "(never a downloaded browser) to run the page tests")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


class Live:
    """The stack, with the app served over real HTTP, and an API client for setup."""

    def __init__(self, base: str, api: httpx.Client, tokens: dict[str, str],
                 sessions=None) -> None:
        self.base = base
        self.api = api
        self.tokens = tokens
        self.sessions = sessions  # the read model, for set-up the API does not offer

    def call(self, method: str, path: str, who: str = "hank", **kwargs) -> dict:
        response = self.api.request(method, path, headers={
            "Authorization": f"Bearer {self.tokens[who]}"}, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    def open_case(self, order_id: str, **extra) -> dict:
        body = {"kind": "complaint", "channel": "phone", "order_id": order_id,
                "customer": {"id": f"C-{order_id}", "name": "王芳"}, "items": [],
                "description": "Box crushed on arrival / 盒子到货时压坏了", **extra}
        return self.call("POST", "/api/v1/cases", json=body)

    def case(self, case_id: str) -> dict:
        return self.call("GET", f"/api/v1/cases/{case_id}")

    def wait(self, case_id: str, predicate, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        case = self.case(case_id)
        while not predicate(case):
            if time.monotonic() > deadline:
                raise AssertionError(f"case {case_id} never got there: {case['stage']}")
            time.sleep(0.2)
            case = self.case(case_id)
        return case


@pytest.fixture(scope="module")
def live(temporal_address, order_system_url, tmp_path_factory) -> Iterator[Live]:
    _browser_or_skip()
    folder = tmp_path_factory.mktemp("pages")
    policy = folder / "policy.toml"
    policy.write_text(POLICY, encoding="utf-8")
    database_url = f"sqlite:///{folder / 'aftersales.db'}"
    server = make_server("127.0.0.1", 0, None, threaded=True)  # type: ignore[arg-type]
    base = f"http://127.0.0.1:{server.server_port}"
    settings = make_settings(temporal_address, database_url, order_system_url,
                             public_url=base, sla_file=str(policy))
    app = create_app(settings)
    server.app = app  # type: ignore[attr-defined]
    tokens = {}
    with app.extensions["aftersales"].sessions.begin() as session:
        for name, role in (("hank", "handler"), ("bob", "handler"), ("sam", "supervisor")):
            create_user(session, name, role, f"{name}-password")
            tokens[name] = create_token(session, name)
    worker = BackgroundWorker(settings)
    worker.start()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api = httpx.Client(base_url=base, timeout=30)
    try:
        yield Live(base, api, tokens, app.extensions["aftersales"].sessions)
    finally:
        api.close()
        server.shutdown()
        thread.join(timeout=5)
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()
        worker.stop()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, live: Live, name: str) -> None:
    page.goto(f"{live.base}/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(f"{name}-password")
    page.get_by_role("button", name="Sign in").click()


def test_customer_opens_the_link_in_chinese_and_rates_the_case(live, browser):
    case = live.open_case("SO-10003")
    case_id = case["id"]
    live.call("POST", f"/api/v1/cases/{case_id}/confirm", json={"note": "called"})
    live.call("POST", f"/api/v1/cases/{case_id}/analyze", json={
        "root_cause": "damaged_in_transit", "responsible_party": "courier", "note": "box"})
    live.call("POST", f"/api/v1/cases/{case_id}/resolve", json={
        "resolution": {"type": "apology"}, "note": "sorry"})
    case = live.wait(case_id, lambda c: c["stage"] == "feedback")

    # A phone in Berlin whose language is Chinese: the page speaks Chinese and shows
    # the rating deadline in Berlin time.
    context = browser.new_context(locale="zh-CN", timezone_id="Europe/Berlin",
                                  viewport={"width": 390, "height": 844},
                                  extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    page = context.new_page()
    page.goto(case["customer_url"])
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("ol.progress .word").all_inner_texts() == \
        ["受理", "确认", "分析", "处理", "评价", "回访"]
    assert page.locator("ol.progress li[aria-current=step] .word").inner_text() == "评价"
    assert "请为本次服务评分" in page.locator("section.next").inner_text()
    due = datetime.fromisoformat(case["deadlines"]["stage_due_at"].replace("Z", "+00:00"))
    berlin = due.astimezone(ZoneInfo("Europe/Berlin"))
    shown = page.locator("section.next time")
    assert shown.get_attribute("title") == "Europe/Berlin"
    assert f"{berlin.hour:02d}:{berlin.minute:02d}" in shown.inner_text()
    shot(page, "customer-zh-before-rating")

    page.get_by_label("4 分（满分 5 分）").check()
    page.get_by_label("评价内容（选填）").fill("处理很快，谢谢")
    page.get_by_role("button", name="提交评价").click()
    assert "感谢您的评价" in page.get_by_role("status").first.inner_text()
    assert "您给了我们 4 分" in page.locator("main").inner_text()
    shot(page, "customer-zh-rated")
    context.close()

    case = live.case(case_id)
    assert case["rating"] == 4 and case["rating_comment"] == "处理很快，谢谢"
    assert case["stage"] == "revisit"


def test_handler_finds_the_case_confirms_and_analyses_it(live, browser):
    # A customer written to in English: the reply templates are in English.
    case_id = live.open_case("SO-10004", customer={
        "id": "C-SO-10004", "name": "王芳", "locale": "en"})["id"]
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, live, "hank")
    assert page.url.endswith("/desk")
    unassigned = page.locator("section", has=page.get_by_role("heading", name="Unassigned"))
    unassigned.get_by_role("link", name=case_id).click()
    assert case_id in page.locator("h1").inner_text()
    assert page.locator("ol.progress li[aria-current=step] .word").inner_text() == "Confirm"
    # Triage's suggestions for the customer's words are on the page, with confidence.
    triage = page.locator("section.triage")
    assert triage.get_by_role("heading", name="Triage suggestions").count() == 1
    assert "%" in triage.inner_text()
    # Only this stage's actions are offered: no analysis form before confirming.
    assert page.locator("form#act-analyze").count() == 0
    shot(page, "handler-case-confirm")

    page.get_by_role("link", name="Acknowledge and apologise").click()
    assert "apologised" in page.locator("#confirm-note").input_value()
    page.locator("form#act-confirm").get_by_role("button", name="Confirm").click()
    assert "Done: Confirm." in page.locator("p.notice.success").inner_text()
    assert page.locator("ol.progress li[aria-current=step] .word").inner_text() == "Analyse"

    form = page.locator("form#act-analyze")
    form.get_by_label("Root cause").select_option("damaged_in_transit")
    form.get_by_label("Responsible party").select_option("courier")
    form.get_by_label("Note").fill("Outer carton torn; courier claim opened.")
    form.get_by_role("button", name="Record the analysis").click()
    assert "Done: Record the analysis." in page.locator("p.notice.success").inner_text()
    assert page.locator("ol.progress li[aria-current=step] .word").inner_text() == "Resolve"
    assert page.locator("form#act-resolve").count() == 1
    shot(page, "handler-case-analysed")

    page.get_by_role("link", name="Desk").click()
    mine = page.locator("section", has=page.get_by_role("heading", name="My cases"))
    assert mine.get_by_role("link", name=case_id).count() == 1
    context.close()

    case = live.case(case_id)
    assert case["stage"] == "resolve" and case["assignee"] == "hank"
    assert case["analysis"]["root_cause"] == "damaged_in_transit"


def test_a_duplicate_merged_on_the_desk_sends_its_customer_to_the_survivor(live, browser):
    survivor = live.open_case("SO-10006")
    duplicate = live.open_case("SO-10006", description="Second mail: the box is crushed")
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, live, "hank")
    page.goto(f"{live.base}/desk/cases/{duplicate['id']}")
    page.locator("#more > summary").click()
    page.locator("#more-merge > summary").click()
    form = page.locator("form#act-merge")
    # The customer's other open cases are offered.
    assert form.locator(f'datalist option[value="{survivor["id"]}"]').count() == 1
    form.get_by_label("The customer's case this one duplicates (case id)").fill(survivor["id"])
    form.get_by_label("I understand that this cannot be undone.").check()
    form.get_by_role("button", name="Merge into another case").click()
    assert "Done: Merge into another case." in page.locator("p.notice.success").inner_text()
    notice = page.locator("#merged-into")
    assert "Closed as a duplicate" in notice.inner_text()
    assert page.locator("form#act-merge").count() == 0
    shot(page, "handler-duplicate-merged")
    notice.get_by_role("link", name=survivor["id"]).click()
    assert survivor["id"] in page.locator("h1").inner_text()
    live.wait(survivor["id"], lambda c: c["merged_from"] == [duplicate["id"]])
    page.reload()
    merged = page.locator("section#merged")
    assert merged.get_by_role("link", name=duplicate["id"]).count() == 1
    shot(page, "handler-survivor-with-duplicate")
    context.close()

    # The customer opens the link of the case they wrote first... and sees the survivor.
    context = browser.new_context(locale="en-GB", viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(duplicate["customer_url"])
    assert page.url == survivor["customer_url"]
    assert survivor["id"] in page.locator("h1").inner_text()
    assert duplicate["id"] not in page.locator("main").inner_text()
    shot(page, "customer-duplicate-link-shows-survivor")
    context.close()
    assert live.case(duplicate["id"])["close_reason"] == "duplicate"


def test_supervisor_reassigns_an_overdue_case(live, browser):
    case_id = live.open_case("SO-10005", priority="P4")["id"]  # confirm within 3 s
    live.call("POST", f"/api/v1/cases/{case_id}/assign", json={"assignee": "hank"})
    live.wait(case_id, lambda c: c["deadlines"]["overdue"], timeout=30)

    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, live, "sam")
    assert page.url.endswith("/supervisor")
    overdue = page.locator("section", has=page.get_by_role("heading", name="Overdue"))
    row = overdue.locator("tr", has=page.get_by_role("link", name=case_id))
    assert "confirmation target" in row.inner_text()
    assert "overdue by" in row.inner_text()
    shot(page, "supervisor-overdue")

    row.get_by_role("checkbox").check()
    page.get_by_label("Give to").select_option("bob")
    page.get_by_role("button", name="Reassign", exact=True).click()
    assert "1 case reassigned to bob." in page.locator("p.notice.success").inner_text()
    shot(page, "supervisor-reassigned")
    context.close()

    case = live.case(case_id)
    assert case["assignee"] == "bob"
    assert any(e["type"] == "assigned" and e["detail"]["to"] == "bob" and e["actor"] == "sam"
               for e in case["timeline"])


def test_supervisor_denies_a_refund_on_the_case_page(live, browser):
    case_id = live.open_case("SO-10036")["id"]  # 2999.00 paid
    live.call("POST", f"/api/v1/cases/{case_id}/confirm", json={"note": "ok"})
    live.call("POST", f"/api/v1/cases/{case_id}/analyze", json={
        "root_cause": "product_quality", "responsible_party": "supplier", "note": "x"})
    live.call("POST", f"/api/v1/cases/{case_id}/resolve",
              json={"resolution": {"type": "refund", "amount": "700.00"}})
    live.wait(case_id, lambda c: (c["resolution"] or {}).get("awaiting") == "approval")

    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, live, "hank")  # the handler may withdraw it (cancel), not deny it
    page.goto(f"{live.base}/desk/cases/{case_id}")
    assert page.locator("form#act-deny").count() == 0
    assert page.locator("form#act-cancel").count() == 1
    context.close()

    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, live, "sam")
    page.goto(f"{live.base}/desk/cases/{case_id}")
    form = page.locator("form#act-deny")
    assert form.count() == 1 and page.locator("form#act-approve").count() == 1
    page.locator("#more > summary").click()
    page.locator("#more-deny > summary").click()
    form.get_by_label("Reason").fill("The photos show no defect.")
    form.get_by_role("button", name="Deny the refund").click()
    assert "Done: Deny the refund." in page.locator("p.notice.success").inner_text()
    assert page.locator("ol.progress li[aria-current=step] .word").inner_text() == "Analyse"
    assert page.locator("form#act-deny").count() == 0
    timeline = page.locator("body").inner_text()
    assert "denied the refund" in timeline and "The photos show no defect." in timeline
    shot(page, "supervisor-denied")
    context.close()

    case = live.case(case_id)
    assert case["stage"] == "analyze" and case["resolution"]["denied_by"] == "sam"


def english_phrases() -> set[str]:
    """The page strings of several words, as English: none may show on a Chinese page."""
    from babel.messages.pofile import read_po

    po = Path(__file__).resolve().parent.parent / "web" / "translations" / "zh_Hans_CN" / \
        "LC_MESSAGES" / "messages.po"
    with po.open("rb") as f:
        catalog = read_po(f)
    return {m.id for m in catalog if isinstance(m.id, str) and " " in m.id
            and "%(" not in m.id}


def test_every_page_in_both_languages(live, browser):
    case = live.open_case("SO-10006")
    case_id = case["id"]
    pages = {
        "desk": "/desk",
        "case": f"/desk/cases/{case_id}",
        "supervisor": "/supervisor",
        "reports": "/supervisor/reports",
        "customer": case["customer_url"].replace(live.base, ""),
        "unknown-link": "/s/not-a-real-token",
    }
    phrases = english_phrases()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, live, "sam")
    for lang, html_lang, word in (("zh_CN", "zh-CN", "售后服务"), ("en", "en", "Aftersales")):
        for name, path in pages.items():
            response = page.goto(f"{live.base}{path}{'&' if '?' in path else '?'}lang={lang}")
            assert response is not None and response.status < 500
            assert response.status == (404 if name == "unknown-link" else 200), name
            assert page.locator("html").get_attribute("lang") == html_lang
            text = page.locator("body").inner_text()
            if name != "customer" and name != "unknown-link":
                assert word in text, (lang, name)
            if lang == "zh_CN":
                leaked = sorted(p for p in phrases if p in text)
                assert not leaked, f"untranslated on {name}: {leaked}"
            shot(page, f"all-{name}-{lang}")
    # The choice is remembered: a page without ?lang= stays in English.
    page.goto(f"{live.base}/desk")
    assert page.locator("html").get_attribute("lang") == "en"
    context.close()
