"""The desk's rows and refresh fragment, and the console's scope and handlers' load
(issue 21, items 5 and 7), through Flask's test client over a read model written by
the projection, on SQLite and PostgreSQL. The browser side is
tests/test_desk_console_browser.py."""

from __future__ import annotations

import re
from datetime import timedelta

from db import cases as case_store
from db import teams
from db.accounts import create_user
from tests import test_pages
from tests.test_pages import app, fresh_now, put, section, signed_in  # noqa: F401


def now():
    """The instant the test started (test_pages.fresh_now takes it)."""
    return test_pages.NOW


def add_users(app) -> None:  # noqa: F811
    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "tom", "handler", "tom-password", teams=["mail"])
        create_user(session, "sue", "supervisor", "sue-password", teams=["phone"])
        create_user(session, "pam", "handler", "pam-password", teams=["phone"])
        create_user(session, "ada", "admin", "ada-password")


def test_a_desk_row_says_what_changed_one_badge_per_fact(app):  # noqa: F811
    put(app, "AS-LATE", assignee="hank", overdue=True, order_id="SO-7788",
        description="盒子压坏了\n" + "杯子也碎了，" * 12 + "真的非常生气",
        stage_due_at=now() - timedelta(minutes=5),
        awaiting_reply_since=now() - timedelta(minutes=20))
    put(app, "AS-APPR", assignee="hank", stage="resolve", status="waiting_on_approval")
    put(app, "AS-RATED", assignee="hank", stage="revisit", rating=2)
    put(app, "AS-HAPPY", assignee="hank", stage="revisit", rating=5)
    html = signed_in(app, "hank").get("/desk").get_data(as_text=True)
    mine = section(html, "mine-h")
    late = mine[mine.index(">AS-LATE<"):mine.index("</tr>", mine.index(">AS-LATE<"))]
    assert "SO-7788" in late
    # The summary is the description on one line, cut at 60 characters.
    assert '<span class="summary">盒子压坏了 杯子也碎了' in late and "…</span>" in late
    assert "真的非常生气" not in late
    assert "overdue by 5 minutes" in late and ">Overdue<" not in late
    assert "customer replied · waiting 20 minutes" in late
    assert "awaiting approval" not in late and "rated" not in late
    assert mine.count('class="approval-flag"') == 1
    assert 'class="rating-flag low">rated 2/5<' in mine
    assert 'class="rating-flag">rated 5/5<' in mine
    # In Chinese: one "已超时" for the one fact.
    zh = section(signed_in(app, "hank", "zh_CN").get("/desk").get_data(as_text=True),
                 "mine-h")
    late = zh[zh.index(">AS-LATE<"):zh.index("</tr>", zh.index(">AS-LATE<"))]
    assert late.count("已超时") == 1 and "5分钟" in late
    assert "客户已回复" in late and "待审批" in zh and "评分 2/5" in zh


def test_an_overdue_case_whose_stage_is_not_yet_due_keeps_both_words(app):  # noqa: F811
    # Another target breached while the stage's own due time is ahead: "Overdue" and
    # "in 3 hours" are two facts, and both are said.
    put(app, "AS-ODD", assignee="hank", overdue=True, stage_due_at=now() + timedelta(hours=3))
    mine = section(signed_in(app, "hank").get("/desk").get_data(as_text=True), "mine-h")
    assert ">Overdue<" in mine and "in 3 hours" in mine


def test_the_lists_fragment_follows_the_filters_and_needs_a_sign_in(app):  # noqa: F811
    put(app, "AS-MINE", assignee="hank", kind="return")
    put(app, "AS-FREE")
    client = signed_in(app, "hank")
    page = client.get("/desk?kind=return").get_data(as_text=True)
    assert 'data-refresh-url="/desk/lists?kind=return"' in page
    assert 'data-refresh-seconds="30"' in page and "/static/desk.js" in page
    fragment = client.get("/desk/lists?kind=return")
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in body and "<form" not in body
    assert "AS-MINE" in section(body, "mine-h") and "AS-FREE" not in body
    assert "AS-FREE" in client.get("/desk/lists").get_data(as_text=True)
    # Filters the desk does not know are no filter, as on the page; nothing breaks.
    odd = client.get("/desk/lists?kind=<script>&overdue=maybe&q=" + "x" * 500)
    assert odd.status_code == 200 and "<script>" not in odd.get_data(as_text=True)
    # Signed out: the login page's redirect, never the lists.
    gone = app.test_client().get("/desk/lists")
    assert gone.status_code == 302 and "/login" in gone.headers["Location"]
    # The page's script may fetch from this site, and only from it.
    csp = client.get("/desk").headers["Content-Security-Policy"]
    assert "connect-src 'self'" in csp and "default-src 'none'" in csp


def test_the_console_shows_the_supervisors_teams_and_each_handlers_load(app):  # noqa: F811
    add_users(app)
    late = {"overdue": True, "stage_due_at": now() - timedelta(hours=1)}
    put(app, "AS-PHONE", team="phone", assignee="pam", **late)
    put(app, "AS-PHONE2", team="phone", assignee="pam", stage="analyze")
    put(app, "AS-NOTEAM", assignee="hank", **late)
    put(app, "AS-MAIL", team="mail", assignee="tom", **late)
    put(app, "AS-MAILRISK", team="mail", at_risk_at=now() - timedelta(minutes=5))
    put(app, "AS-MAILAPPR", team="mail", stage="resolve", status="waiting_on_approval")
    put(app, "AS-SHUT", team="phone", assignee="pam", stage="closed", status="closed",
        stage_due_at=None)
    html = signed_in(app, "sue").get("/supervisor").get_data(as_text=True)
    overdue = section(html, "overdue-h")
    assert "AS-PHONE" in overdue and "AS-NOTEAM" in overdue
    # Another team's cases: sue may not act on them (web/auth.OWNERSHIP), so they are
    # not on her console to be picked for a bulk reassign.
    for other in ("AS-MAIL", "AS-MAILRISK", "AS-MAILAPPR"):
        assert other not in html
    assert "王芳" in overdue  # the customer's name
    load = section(html, "load-h")
    assert "<th scope=\"row\">pam</th>" in load and "<th scope=\"row\">tom</th>" not in load
    assert "<th scope=\"row\">hank</th>" in load  # in no team: works across all
    pam = load[load.index(">pam<"):load.index("</tr>", load.index(">pam<"))]
    assert '<td class="num">2</td>' in pam and '<td class="num late">1</td>' in pam
    assert '<option value="pam">pam (2)</option>' in html
    assert '<option value="tom">' not in html
    assert 'class="select-all" hidden' in html and "/static/console.js" in html
    # Her CSV export has the same scope as her page.
    csv = signed_in(app, "sue").get("/supervisor/export.csv?list=overdue").get_data(
        as_text=True)
    assert "AS-PHONE" in csv and "AS-MAIL" not in csv
    # An admin's console: every team.
    html = signed_in(app, "ada").get("/supervisor").get_data(as_text=True)
    assert "AS-MAIL" in section(html, "overdue-h") and "AS-MAILRISK" in section(html, "risk-h")
    assert '<option value="tom">tom (1)</option>' in html
    # A crafted post naming another team's case is still refused, and changes nothing.
    client = signed_in(app, "sue")
    page = client.get("/supervisor").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    refused = client.post("/supervisor/reassign", data={
        "csrf_token": token, "case_id": ["AS-MAIL"], "assignee": "pam"},
        follow_redirects=True).get_data(as_text=True)
    assert "Not reassigned: AS-MAIL: case AS-MAIL is assigned to tom" in refused
    with app.extensions["aftersales"].sessions() as session:
        assert case_store.get_case(session, "AS-MAIL").assignee == "tom"
    # A supervisor in no team works across all teams, as the ownership table says.
    html = signed_in(app, "sam").get("/supervisor").get_data(as_text=True)
    assert "AS-MAIL" in section(html, "overdue-h")


def test_workloads_count_open_and_overdue_cases_per_person(app):  # noqa: F811
    add_users(app)
    put(app, "AS-W1", team="phone", assignee="pam", overdue=True)
    put(app, "AS-W2", team="phone", assignee="pam")
    put(app, "AS-W3", team="phone", assignee="pam", stage="cancelled", status="cancelled",
        stage_due_at=None)
    with app.extensions["aftersales"].sessions() as session:
        phone = {w.name: w for w in teams.workloads(session, ["phone"])}
        every = {w.name for w in teams.workloads(session, [])}
        assert teams.open_cases(session, []) == {}
        assert teams.open_cases(session, ["pam", "tom"]) == {"pam": (2, 1)}
    assert set(phone) == {"pam", "sue", "hank", "bob", "sam"}  # the team and the teamless
    assert (phone["pam"].open, phone["pam"].overdue, phone["pam"].teams) == (2, 1, ("phone",))
    assert (phone["hank"].open, phone["hank"].teams) == (0, ())
    assert every == {"pam", "sue", "hank", "bob", "sam", "tom"}  # never an admin
