"""The access lifecycle's pages in a real headless Chromium, in English and Chinese: the
admin page (users, deactivation, tokens with their last use and revocation, the audit
log's filters and its CSV export) and the password pages (one's own change ends one's
other sessions, a copied cookie too; an admin's reset). Against the real stack of
tests/test_pages_browser.py; screenshots land in test-artifacts/pages/ with theirs."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import httpx
import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from db.accounts import create_token, create_user, find_token
from tests import test_pages_browser
from tests.test_pages_browser import ARTIFACTS, Live, shot

pytestmark = pytest.mark.slow
# The stack and the browser of the pages' tests, a module's own.
browser = test_pages_browser.browser
live = test_pages_browser.live
PO = Path(__file__).resolve().parent.parent / "web" / "translations" / "zh_Hans_CN" / \
    "LC_MESSAGES" / "messages.po"
LANGS = [pytest.param("en", "en-GB", id="en"), pytest.param("zh_CN", "zh-CN", id="zh")]


@cache
def zh_catalog() -> Catalog:
    with PO.open("rb") as f:
        return read_po(f)


def say(lang: str, msgid: str, plural: str | None = None, n: int = 1, **values) -> str:
    """What the page shows for `msgid` in `lang`: the Chinese catalog's translation
    (which must exist), or the English source."""
    if lang == "en":
        text = plural if plural is not None and n != 1 else msgid
    else:
        message = zh_catalog().get(msgid)
        assert message is not None and message.string, f"untranslated: {msgid}"
        text = message.string[0] if isinstance(message.string, tuple) else message.string
    return text % values if values else text


def context_for(browser, html_lang: str):
    return browser.new_context(locale=html_lang, viewport={"width": 1280, "height": 900},
                               extra_http_headers={"Accept-Language": html_lang})


def sign_in(page, live: Live, lang: str, name: str,
            password: str | None = None) -> None:
    page.goto(f"{live.base}/login?lang={lang}")
    page.locator("#username").fill(name)
    page.locator("#password").fill(password or f"{name}-password")
    page.locator("main form button[type=submit]").click()


def notices(page) -> str:
    return " ".join(page.locator("p.notice").all_inner_texts())


def api_status(live: Live, token: str) -> int:
    return httpx.get(f"{live.base}/api/v1/cases", timeout=10,
                     headers={"Authorization": f"Bearer {token}"}).status_code


def audit_rows(page) -> list[dict[str, str]]:
    """The audit table as the admin sees it: user, case and action of each row."""
    rows = []
    for row in page.locator("table.audit tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        rows.append({"actor": cells[1], "case": cells[4], "action": cells[5]})
    return rows


def filter_audit(page, **fields: str) -> list[dict[str, str]]:
    for name, selector in (("actor", "#a-actor"), ("case_id", "#a-case"),
                           ("action", "#a-action"), ("start", "#a-from"), ("end", "#a-to")):
        page.locator(selector).fill(fields.get(name, ""))
    page.locator("form.filters button[type=submit]").click()
    page.wait_for_load_state()
    return audit_rows(page)


@pytest.mark.parametrize(("lang", "html_lang"), LANGS)
def test_the_admin_page(live, browser, lang, html_lang):
    admin, leo = f"ada-{lang}", f"leo-{lang}"
    with live.sessions.begin() as session:
        create_user(session, admin, "admin", f"{admin}-password")
        create_user(session, leo, "handler", f"{leo}-password")
        used, spare = create_token(session, leo), create_token(session, leo)
        used_id, spare_id = find_token(session, used).id, find_token(session, spare).id
    live.tokens[leo] = used
    case_id = live.open_case("SO-10007")["id"]
    live.call("POST", f"/api/v1/cases/{case_id}/assign", who="sam", json={"assignee": leo})
    live.call("POST", f"/api/v1/cases/{case_id}/note", who=leo, json={"text": "called"})

    context = context_for(browser, html_lang)
    page = context.new_page()
    sign_in(page, live, lang, admin)
    page.goto(f"{live.base}/admin?lang={lang}")
    assert page.locator("p.notice.error").count() == 0  # the language switch is no filter
    assert page.locator("html").get_attribute("lang") == {"en": "en", "zh_CN": "zh-CN"}[lang]
    # The users, each with their tokens: the one leo used says when, the other never.
    row = page.locator(f"#user-{leo}")
    assert say(lang, "handler") in row.inner_text()
    assert say(lang, "active") in row.inner_text()
    used_item = row.locator("li", has_text=used_id)
    spare_item = row.locator("li", has_text=spare_id)
    assert say(lang, "last used %(when)s").split("%(when)s")[0].strip() in \
        used_item.inner_text()
    assert say(lang, "never used") in spare_item.inner_text()
    shot(page, f"admin-users-{lang}")

    used_item.get_by_role("button", name=say(lang, "Revoke")).click()
    assert say(lang, "Token %(id)s of %(who)s is revoked.", id=used_id, who=leo) in \
        notices(page)
    assert say(lang, "revoked") in page.locator(f"#user-{leo} li",
                                                has_text=used_id).inner_text()
    assert api_status(live, used) == 401 and api_status(live, spare) == 200

    page.locator(f"#user-{leo}").get_by_role("button", name=say(lang, "Deactivate")).click()
    assert say(lang, "%(who)s is deactivated; %(num)d open case is back in the queue.",
               "%(who)s is deactivated; %(num)d open cases are back in the queue.", 1,
               who=leo, num=1) in notices(page)
    assert say(lang, "deactivated") in page.locator(f"#user-{leo}").inner_text()
    assert page.locator(f"#user-{leo}").get_by_role(
        "button", name=say(lang, "Activate")).count() == 1
    assert api_status(live, spare) == 401
    assert live.case(case_id)["assignee"] is None
    shot(page, f"admin-deactivated-{lang}")

    # The audit log, by user, case, action and time.
    by_user = filter_audit(page, actor=leo)
    assert by_user and {r["actor"] for r in by_user} == {leo}
    assert any(r["case"] == case_id and r["action"] == "note" for r in by_user)
    by_case = filter_audit(page, case_id=case_id)
    assert {r["case"] for r in by_case} == {case_id}
    assert {r["action"] for r in by_case} >= {"assign", "note"}
    by_action = filter_audit(page, action="users.deactivate", actor=admin)
    assert [(r["actor"], r["action"]) for r in by_action] == [(admin, "users.deactivate")]
    today = datetime.now(UTC).date()
    assert filter_audit(page, actor=leo, start=today.isoformat(), end=today.isoformat()) \
        == by_user
    later = (today + timedelta(days=1)).isoformat()
    assert filter_audit(page, actor=leo, start=later) == []
    assert say(lang, "No entry matches.") in page.locator("main").inner_text()
    filter_audit(page, actor=leo)
    shot(page, f"admin-audit-{lang}")

    # The export holds what the filter shows, and is itself in the log.
    with page.expect_download() as download:
        page.get_by_role("link", name=say(lang, "Download CSV")).click()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    saved = ARTIFACTS / f"admin-audit-{lang}.csv"
    download.value.save_as(saved)
    exported = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert len(exported) == len(by_user)
    assert {r["actor"] for r in exported} == {leo}
    assert [r["action"] for r in exported] == [r["action"] for r in reversed(by_user)]
    assert [(r["actor"], r["action"]) for r in filter_audit(page, action="audit-export",
                                                                 actor=admin)] \
        == [(admin, "audit-export")]
    # The language switch keeps the filter; a refused filter says so.
    page.goto(f"{live.base}/admin?actor={leo}&lang={lang}")
    assert page.locator("p.notice.error").count() == 0
    assert audit_rows(page) == by_user
    page.goto(f"{live.base}/admin?lang={lang}&from=yesterday")
    assert say(lang, "Filters not understood: %(fields)s.", fields="from") in notices(page)
    context.close()


@pytest.mark.parametrize(("lang", "html_lang"), LANGS)
def test_the_password_pages(live, browser, lang, html_lang):
    pat, admin = f"pat-{lang}", f"ida-{lang}"
    with live.sessions.begin() as session:
        create_user(session, pat, "handler", f"{pat}-password")
        create_user(session, admin, "admin", f"{admin}-password")
    here, there, copied = (context_for(browser, html_lang) for _ in range(3))
    page = here.new_page()
    sign_in(page, live, lang, pat)
    assert page.url.endswith("/desk")
    other = there.new_page()
    sign_in(other, live, lang, pat)
    assert other.url.endswith("/desk")
    # A copy of the other session's cookie, as a thief would hold it: it works, for now.
    copied.add_cookies(there.cookies())
    thief = copied.new_page()
    thief.goto(f"{live.base}/desk")
    assert thief.url.endswith("/desk")

    page.get_by_role("link", name=say(lang, "Password"), exact=True).click()
    assert page.url.endswith("/account/password")
    new = f"{pat}-new-password"
    page.locator("#current").fill("not-my-password")
    page.locator("#new").fill(new)
    page.locator("#repeat").fill(new)
    page.locator("main form button[type=submit]").click()
    assert say(lang, "The current password is wrong.") in page.get_by_role("alert").inner_text()
    shot(page, f"password-wrong-{lang}")
    page.locator("#current").fill(f"{pat}-password")
    page.locator("#new").fill(new)
    page.locator("#repeat").fill(new)
    page.locator("main form button[type=submit]").click()
    assert page.url.endswith("/desk")
    assert say(lang, "Password changed. You are signed out everywhere else.") in \
        notices(page)
    shot(page, f"password-changed-{lang}")

    # Their other session and its copied cookie have ended; this one goes on.
    for ended in (other, thief):
        ended.goto(f"{live.base}/desk")
        assert "/login" in ended.url
    page.goto(f"{live.base}/desk")
    assert page.url.endswith("/desk")
    sign_in(other, live, lang, pat)
    assert "/login" in other.url  # the old password no longer signs in
    sign_in(other, live, lang, pat, new)
    assert other.url.endswith("/desk")

    # An admin resets it: every session of the user ends, the new password signs in.
    desk = copied.new_page()
    copied.clear_cookies()
    sign_in(desk, live, lang, admin)
    desk.goto(f"{live.base}/admin?lang={lang}")
    row = desk.locator(f"#user-{pat}")
    row.locator("summary", has_text=say(lang, "Reset the password")).click()
    reset = f"{pat}-reset-by-admin"
    row.locator(f"#new-{pat}").fill(reset)
    row.locator(f"#repeat-{pat}").fill(reset)
    shot(desk, f"admin-reset-{lang}")
    row.get_by_role("button", name=say(lang, "Set the password")).click()
    assert say(lang, "The password of %(who)s is set; their sessions have ended.",
               who=pat) in notices(desk)
    for ended in (page, other):
        ended.goto(f"{live.base}/desk")
        assert "/login" in ended.url
    sign_in(page, live, lang, pat, reset)
    assert page.url.endswith("/desk")
    shot(page, f"password-reset-signed-in-{lang}")
    for context in (here, there, copied):
        context.close()


@pytest.mark.parametrize(("lang", "html_lang"), LANGS)
def test_a_colleagues_case_page_offers_nothing_and_says_whose_it_is(live, browser, lang,
                                                                    html_lang):
    """What the desk shows a handler on bob's case: no form, no upload, and who can hand
    it over; the supervisor sees the forms, and reassigns it to the handler."""
    case_id = live.open_case("SO-10008")["id"]
    live.call("POST", f"/api/v1/cases/{case_id}/assign", who="sam", json={"assignee": "bob"})
    context = context_for(browser, html_lang)
    page = context.new_page()
    sign_in(page, live, lang, "hank")
    page.goto(f"{live.base}/desk/cases/{case_id}?lang={lang}")
    assert page.locator("form.action").count() == 0
    notice = page.locator("#not-yours")
    assert say(lang, "This case is %(who)s's (team %(team)s): only they work on it.",
               who="bob", team="complaints") in notice.inner_text()
    assert say(lang, "To take it over, ask a supervisor of the team to reassign it to "
                     "you.") in notice.inner_text()
    assert say(lang, "Nothing for you to do: the case is not yours (see above).") in \
        page.locator("section.actions").inner_text()
    shot(page, f"case-not-yours-{lang}")

    boss = context_for(browser, html_lang)
    console = boss.new_page()
    sign_in(console, live, lang, "sam")
    console.goto(f"{live.base}/desk/cases/{case_id}?lang={lang}")
    assert console.locator("#not-yours").count() == 0
    console.locator("#more > summary").click()
    console.locator("#more-assign > summary").click()
    form = console.locator("form#act-assign")
    form.locator("select[name=assignee]").select_option("hank")
    form.locator("button[type=submit]").click()
    assert live.case(case_id)["assignee"] == "hank"
    boss.close()

    page.reload()
    assert page.locator("#not-yours").count() == 0
    assert page.locator("form#act-confirm").count() == 1
    assert page.locator("form#upload").count() == 1
    context.close()
