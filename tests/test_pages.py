"""The pages through Flask's test client over a read model written by the projection,
on SQLite and PostgreSQL: what each list holds, the actions offered per stage and
role, due-time wording, the customer's page states, and both languages.

The journeys that change cases run in a real browser against the real stack
(tests/test_pages_browser.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from db import cases as case_store
from db.accounts import create_user
from db.models import User
from tests.conftest import make_settings
from tests.test_read_model import snapshot
from web import create_app
from web.caseview import available_actions
from workflows.case.contracts import Projection, Resolution, StageClock

NOW = datetime.now(UTC).replace(microsecond=0)
SHIPPED_POLICY = Path(__file__).resolve().parent.parent / "aftersales" / "sla_policy.toml"


@pytest.fixture(autouse=True)
def fresh_now() -> None:
    """Due times are relative to now: take it when the test starts, not at import."""
    global NOW  # noqa: PLW0603 - the tests read it as a module constant
    NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def app(database_url, tmp_path):
    # The shipped policy with the store in Shanghai: staff pages show its local time.
    policy = tmp_path / "policy.toml"
    policy.write_text(SHIPPED_POLICY.read_text(encoding="utf-8").replace(
        'timezone = "UTC"', 'timezone = "Asia/Shanghai"', 1), encoding="utf-8")
    settings = make_settings("127.0.0.1:9", database_url, "http://127.0.0.1:9",
                             sla_file=str(policy))
    app = create_app(settings)
    with app.extensions["aftersales"].sessions.begin() as session:
        for name, role in (("hank", "handler"), ("bob", "handler"), ("sam", "supervisor")):
            create_user(session, name, role, f"{name}-password")
    yield app
    app.extensions["aftersales"].engine.dispose()


def put(app, case_id: str, **changes) -> None:
    values = dict(created_at=NOW - timedelta(hours=2), updated_at=NOW,
                  stage_due_at=NOW + timedelta(hours=6), status_token=f"tok-{case_id}",
                  customer_url=f"http://testserver/s/tok-{case_id}")
    values.update(changes)
    case_store.write_projection(app.extensions["aftersales"].sessions,
                                Projection(snapshot(case_id, changes.pop("version", 1),
                                                    **values)))


def signed_in(app, name: str, lang: str = "en"):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"username": name, "password": f"{name}-password",
                                           "csrf_token": token})
    assert response.status_code == 302
    client.set_cookie("lang", lang)
    return client


def section(html: str, heading_id: str) -> str:
    start = html.index(f'id="{heading_id}"')
    end = html.find("</section>", start)
    return html[start:end]


def test_supervisor_console_lists_overdue_at_risk_and_approvals(app):
    breached = StageClock(name="confirm", target=8 * 3600, used=9 * 3600,
                          state="running", running_since=NOW - timedelta(hours=9),
                          breached_at=NOW - timedelta(hours=1), due_at=NOW - timedelta(hours=1))
    put(app, "AS-OVER", overdue=True, stage_due_at=NOW - timedelta(hours=1),
        clocks=[breached], assignee="hank",
        breaches=[{"clock": "confirm", "at": (NOW - timedelta(hours=1)).isoformat(),
                   "target_s": 8 * 3600, "priority": "P3"}])
    put(app, "AS-RISK", at_risk_at=NOW - timedelta(minutes=10),
        stage_due_at=NOW + timedelta(minutes=50))
    put(app, "AS-CALM", at_risk_at=NOW + timedelta(hours=3))
    put(app, "AS-DONE", stage="closed", status="closed", at_risk_at=NOW - timedelta(days=1),
        stage_due_at=None)
    put(app, "AS-APPR", stage="resolve", status="waiting_on_approval",
        resolution=Resolution(type="refund", amount="899.00", state="running",
                              awaiting="approval"))
    html = signed_in(app, "sam").get("/supervisor").get_data(as_text=True)
    overdue = section(html, "overdue-h")
    assert "AS-OVER" in overdue and "AS-RISK" not in overdue
    assert "confirmation target (8 hours for P3)" in overdue
    assert "overdue by 1 hour" in overdue
    risk = section(html, "risk-h")
    assert "AS-RISK" in risk and "in 50 minutes" in risk
    assert "AS-CALM" not in risk and "AS-DONE" not in risk and "AS-OVER" not in risk
    approvals = section(html, "approvals-h")
    assert "AS-APPR" in approvals and "899.00" in approvals


def test_handlers_cannot_open_the_console(app):
    response = signed_in(app, "hank").get("/supervisor")
    assert response.status_code == 403
    assert "This page is for supervisor, admin." in response.get_data(as_text=True)


def test_desk_shows_my_cases_and_the_unassigned_soonest_due_first(app):
    put(app, "AS-MINE-LATE", assignee="hank", stage_due_at=NOW + timedelta(hours=5))
    put(app, "AS-MINE-SOON", assignee="hank", stage_due_at=NOW + timedelta(minutes=65))
    put(app, "AS-BOBS", assignee="bob")
    put(app, "AS-FREE", kind="return")
    put(app, "AS-GONE", stage="closed", status="closed", stage_due_at=None)
    client = signed_in(app, "hank")
    html = client.get("/desk").get_data(as_text=True)
    mine = section(html, "mine-h")
    assert mine.index("AS-MINE-SOON") < mine.index("AS-MINE-LATE")
    assert "AS-BOBS" not in html and "AS-GONE" not in html
    assert "AS-FREE" in section(html, "team-h")
    assert "in 1 hour" in mine and 'class="due ok"' in mine
    filtered = client.get("/desk?kind=return").get_data(as_text=True)
    assert "AS-FREE" in filtered and "AS-MINE-SOON" not in filtered
    found = client.get("/desk?q=AS-MINE-LATE").get_data(as_text=True)
    assert "AS-MINE-LATE" in found and "AS-MINE-SOON" not in found


def test_the_case_page_offers_only_what_can_succeed(app):
    put(app, "AS-C1", stage="confirm")
    client = signed_in(app, "hank")
    html = client.get("/desk/cases/AS-C1").get_data(as_text=True)
    forms = set(re.findall(r'<form [^>]*id="act-([a-z-]+)"', html))
    assert forms == {"confirm", "reject", "request-info", "assign", "tag", "reply", "note",
                     "escalate", "merge", "cancel"}
    # A handler takes the case; only managers choose someone else.
    assert ">Take this case</button>" in html and 'id="assign-to"' not in html
    # The reply template fills the confirm note, with the customer's name, in the
    # page's language: a note stays on the case for staff (the customer's is Chinese).
    filled = client.get("/desk/cases/AS-C1?reply=confirm-apology").get_data(as_text=True)
    assert re.search(r'<textarea id="confirm-note"[^>]*>Called 王芳: apologised', filled)
    assert ">Acknowledge and apologise</a>" in filled
    # The customer's and the order's earlier cases are on the page.
    put(app, "AS-C0", stage="closed", status="closed", stage_due_at=None)
    html = client.get("/desk/cases/AS-C1").get_data(as_text=True)
    assert section(html, "earlier-h").count(">AS-C0</a>") == 2


def test_available_actions_follow_stage_role_and_what_the_saga_waits_for(app):
    put(app, "AS-R1", stage="resolve", status="waiting_on_approval", assignee="hank",
        resolution=Resolution(type="refund", amount="899.00", state="running",
                              awaiting="approval"))
    put(app, "AS-R2", stage="resolve", status="resolving", assignee="hank",
        resolution=Resolution(type="return_refund", state="running", awaiting="inspection"))
    put(app, "AS-R3", stage="closed", status="closed", closed_at=NOW - timedelta(days=40),
        stage_due_at=None)
    with app.extensions["aftersales"].sessions() as session:
        r1, r2, r3 = (case_store.get_case(session, i) for i in ("AS-R1", "AS-R2", "AS-R3"))
    handler = available_actions(r1, "handler", "hank", [], NOW)
    assert "approve" not in handler and "resolve" not in handler and "deny" not in handler
    # A refund awaiting approval can be withdrawn; a saga at a step cannot be cancelled.
    assert "cancel" in handler
    assert "assign" not in handler  # it is already hank's
    supervisor = available_actions(r1, "supervisor", "sam", [], NOW)
    assert "approve" in supervisor and "deny" in supervisor
    assert "inspect" in available_actions(r2, "handler", "hank", [], NOW)
    assert "cancel" not in available_actions(r2, "handler", "hank", [], NOW)
    assert "deny" not in available_actions(r2, "supervisor", "sam", [], NOW)
    assert "inspect" not in handler
    assert available_actions(r3, "supervisor", "sam", [], NOW) == []  # the workflow has ended


def test_a_refused_action_is_explained_on_the_page(app):
    put(app, "AS-X1", stage="confirm")
    client = signed_in(app, "hank")
    page = client.get("/desk/cases/AS-X1").get_data(as_text=True)
    token = re.search(r'type="hidden" name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/desk/cases/AS-X1/confirm", data={"csrf_token": token, "note": ""})
    # The page again, not a redirect: the form as it was sent, the reason at its head.
    assert response.status_code == 422
    shown = response.get_data(as_text=True)
    assert "Check “Note”: it is missing or not valid." in form_of(shown, "confirm")
    # Without the CSRF token nothing is even tried.
    assert client.post("/desk/cases/AS-X1/confirm", data={"note": "x"}).status_code == 400


def test_a_refusal_about_a_field_the_form_does_not_show_is_said_at_its_head(
        app, monkeypatch):
    """The workflow names the input it refused (`items`); the resolve form asks it as
    one box per order line, so the reason goes to the form's head, never nowhere."""
    from web import desk
    from web.gateway import ActionRefused

    def refuse(*_args, **_kwargs):
        raise ActionRefused("InvalidAction", "a return_refund needs the items that move",
                            code="needs_items", params={"type": "return_refund"},
                            field="items")

    monkeypatch.setattr(desk, "perform_action", refuse)
    put(app, "AS-X4", stage="resolve", assignee="hank")
    client = signed_in(app, "hank", "zh_CN")
    token = csrf_of(client.get("/desk/cases/AS-X4").get_data(as_text=True))
    response = client.post("/desk/cases/AS-X4/resolve", data={
        "csrf_token": token, "type": "refund", "amount": "10.00", "note": "退款"})
    assert response.status_code == 422
    form = form_of(response.get_data(as_text=True), "resolve")
    head = re.search(r'<p class="notice error form-error"[^>]*>([^<]*)</p>', form)
    assert head and "退货退款" in head.group(1) and "needs" not in head.group(1), form


def test_a_coupon_refusal_is_said_once_beside_its_field(app, monkeypatch):
    """The order system's refusal of a coupon names `resolution.coupon_code`: said
    beside the coupon field (which points at it), not again at the form's head."""
    from web import desk
    from web.problems import Problem
    from workflows.case.refusals import refused

    def refuse(*_args, **_kwargs):
        why = refused("coupon_used", "coupon_code", coupon="SORRY20")
        raise Problem.refused(422, "Invalid request", why,
                              errors={"resolution.coupon_code": [why.message]})

    monkeypatch.setattr(desk, "perform_action", refuse)
    put(app, "AS-C1", stage="resolve", assignee="hank")
    client = signed_in(app, "hank", "zh_CN")
    token = csrf_of(client.get("/desk/cases/AS-C1").get_data(as_text=True))
    response = client.post("/desk/cases/AS-C1/resolve", data={
        "csrf_token": token, "type": "compensation", "coupon_code": "SORRY20"})
    assert response.status_code == 422
    form = form_of(response.get_data(as_text=True), "resolve")
    said = re.search(r'<p class="field-error" id="resolve-coupon_code-error">([^<]*)</p>',
                     form)
    assert said and "SORRY20" in said.group(1), form
    assert form.count(said.group(1)) == 1 and "form-error" not in form
    assert re.search(r'<input id="resolve-coupon" name="coupon_code" value="SORRY20" '
                     r'data-coupon aria-invalid="true" '
                     r'aria-describedby="resolve-coupon_code-error">', form), form


def test_a_refusal_about_a_later_remedy_row_lands_on_that_row(app, monkeypatch):
    """Row 2 left empty, row 3 filled: the body's `resolutions.1` is row 3, and its
    refusal is said beside row 3's field."""
    from web import desk
    from web.problems import Problem
    from workflows.case.refusals import refused

    def refuse(*_args, **_kwargs):
        why = refused("coupon_unknown", "coupon_code", coupon="NOPE")
        raise Problem.refused(422, "Invalid request", why,
                              errors={"resolutions.1.coupon_code": [why.message]})

    monkeypatch.setattr(desk, "perform_action", refuse)
    put(app, "AS-C3", stage="resolve", assignee="hank")
    client = signed_in(app, "hank", "zh_CN")
    token = csrf_of(client.get("/desk/cases/AS-C3").get_data(as_text=True))
    response = client.post("/desk/cases/AS-C3/resolve", data={
        "csrf_token": token, "type": "apology", "type-3": "compensation",
        "coupon_code-3": "NOPE"})
    assert response.status_code == 422
    form = form_of(response.get_data(as_text=True), "resolve")
    assert 'id="resolve-coupon_code-3-error"' in form, form
    assert 'aria-describedby="resolve-coupon_code-3-error"' in form
    assert "coupon_code-2-error" not in form and "form-error" not in form
    assert re.search(r'<details class="remedy-row" id="remedy-3" open>', form)
    assert desk.form_field("resolutions.1.amount", [1, 3]) == "amount-3"
    assert desk.form_field("resolutions.1.amount") == "amount-2"  # no rows known


def test_a_form_sent_again_after_no_answer_sends_the_same_update(app, monkeypatch):
    """Each form shown carries its own update key; a form shown again (here after the
    case service did not answer) keeps it, so the second submit is the same update."""
    from web import commands
    from web.gateway import OutcomeUnknown

    sent = []

    def no_answer(case_id, update, arg, update_id=None):
        sent.append(update_id)
        raise OutcomeUnknown("no answer")

    monkeypatch.setattr(app.extensions["aftersales"].gateway, "act", no_answer)
    monkeypatch.setattr(commands, "check_access", lambda *_args: None)
    put(app, "AS-K1", stage="analyze", assignee="hank")
    client = signed_in(app, "hank", "zh_CN")
    html = client.get("/desk/cases/AS-K1").get_data(as_text=True)
    key = re.search(r'name="update_key" value="([0-9a-f]{32})"', form_of(html, "note"))
    assert key
    # Another form, and the same form shown again, have other keys.
    assert key.group(1) not in form_of(html, "analyze")
    again = client.get("/desk/cases/AS-K1").get_data(as_text=True)
    assert key.group(1) not in again
    body = {"csrf_token": csrf_of(html), "text": "顾客来电", "update_key": key.group(1)}
    first = client.post("/desk/cases/AS-K1/note", data=body)
    assert first.status_code == 504
    shown = form_of(first.get_data(as_text=True), "note")
    assert f'name="update_key" value="{key.group(1)}"' in shown
    assert client.post("/desk/cases/AS-K1/note", data=body).status_code == 504
    assert len(sent) == 2 and sent[0] == sent[1] and sent[0].startswith("form-")
    # A refusal is a known outcome: the form comes back with a new key.
    refused = client.post("/desk/cases/AS-K1/note", data={**body, "text": "   "})
    assert refused.status_code == 422
    fresh = re.search(r'name="update_key" value="([0-9a-f]{32})"',
                      form_of(refused.get_data(as_text=True), "note"))
    assert fresh and fresh.group(1) != key.group(1) and len(sent) == 2
    # Another user's same key is another update; a key that is not one sends none.
    client = signed_in(app, "sam", "zh_CN")
    client.post("/desk/cases/AS-K1/note", data={**body, "csrf_token": csrf_of(
        client.get("/desk/cases/AS-K1").get_data(as_text=True))})
    client.post("/desk/cases/AS-K1/note", data={**body, "update_key": "x" * 32,
        "csrf_token": csrf_of(client.get("/desk/cases/AS-K1").get_data(as_text=True))})
    assert sent[2] not in (sent[0], None) and sent[3] is None


def form_of(html: str, action: str) -> str:
    return re.search(rf'<form [^>]*id="act-{action}".*?</form>', html, re.S).group(0)


def csrf_of(html: str) -> str:
    return re.search(r'type="hidden" name="csrf_token" value="([^"]+)"', html).group(1)


def test_a_refused_form_comes_back_as_typed_with_the_reason_beside_its_field(app):
    put(app, "AS-X2", stage="analyze", assignee="hank")
    client = signed_in(app, "hank", "zh_CN")
    token = csrf_of(client.get("/desk/cases/AS-X2").get_data(as_text=True))
    # A note of blanks passes the browser's `required` and is no note.
    response = client.post("/desk/cases/AS-X2/analyze", data={
        "csrf_token": token, "root_cause": "wrong_item", "responsible_party": "merchant",
        "note": "   "})
    assert response.status_code == 422
    form = form_of(response.get_data(as_text=True), "analyze")
    assert '<option value="wrong_item" selected>' in form
    assert '<option value="merchant" selected>' in form
    assert re.search(r'<textarea id="analyze-note" name="note" required rows="3" '
                     r'aria-invalid="true" aria-describedby="analyze-note-error">', form)
    assert re.search(r'<p class="field-error" id="analyze-note-error">[^<]*必填', form)
    # The language switch of the page shown again leads to the case, not the form's
    # POST address.
    assert 'href="/desk/cases/AS-X2?lang=en"' in response.get_data(as_text=True)
    # What was typed in another form is the form's own: a refused note keeps its text.
    put(app, "AS-X3", stage="confirm", assignee="hank")
    response = client.post("/desk/cases/AS-X3/note", data={
        "csrf_token": token, "text": "x" * 5000})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert '<details class="more" id="more" open>' in html
    assert re.search(r'<details class="more-action" id="more-note" open>', html)
    assert "x" * 5000 in form_of(html, "note")
    assert 'aria-describedby="note-text-error"' in form_of(html, "note")


def test_destructive_actions_need_their_box_ticked_and_nothing_is_sent_without(app):
    put(app, "AS-D1", stage="confirm", assignee="hank")
    client = signed_in(app, "hank", "zh_CN")
    html = client.get("/desk/cases/AS-D1").get_data(as_text=True)
    for action in ("reject", "cancel", "merge"):
        form = form_of(html, action)
        assert re.search(r'<input type="checkbox" id="[a-z]+-confirmed" name="confirmed" '
                         r'value="yes" required>', form), action
    # Reject and cancel are no longer two red buttons side by side: each is its own
    # entry behind "more", after the main action.
    assert html.index('id="act-confirm"') < html.index('id="more"') < html.index(
        'id="more-reject"') < html.index('id="more-cancel"')
    # Sent without the tick (the app's Temporal is unreachable: a send would be 503).
    response = client.post("/desk/cases/AS-D1/cancel", data={
        "csrf_token": csrf_of(html), "reason": "客户撤回"})
    assert response.status_code == 422
    form = form_of(response.get_data(as_text=True), "cancel")
    assert ">客户撤回</textarea>" in form
    assert 'aria-describedby="cancel-confirmed-error"' in form
    assert re.search(r'id="cancel-confirmed-error">[^<]*勾选', form)


def test_the_main_action_comes_first_and_the_others_behind_more(app):
    put(app, "AS-M1", stage="analyze", assignee="hank")
    client = signed_in(app, "hank")
    html = client.get("/desk/cases/AS-M1").get_data(as_text=True)
    more = html[html.index('<details class="more" id="more">'):]
    assert 'id="act-analyze"' not in more and 'id="act-analyze"' in html
    assert {"request-info", "tag", "reply", "note", "escalate", "merge", "cancel"} == set(
        re.findall(r'<form [^>]*id="act-([a-z-]+)"', more))
    # The request, the customer and the order come before the actions.
    assert html.index('id="request-h"') < html.index('id="who-what"') < html.index(
        'id="actions-h"') < html.index('id="deadlines-h"')
    # In the feedback stage no main action: the list is all there is.
    put(app, "AS-M2", stage="feedback", assignee="hank")
    html = client.get("/desk/cases/AS-M2").get_data(as_text=True)
    assert ">Actions (" in html and "More actions" not in html


def test_after_an_action_the_next_case_of_the_queue_is_offered(app):
    put(app, "AS-N1", stage="confirm", assignee="hank", stage_due_at=NOW + timedelta(hours=1))
    put(app, "AS-N2", stage="analyze", assignee="hank", stage_due_at=NOW + timedelta(hours=2))
    put(app, "AS-N3", stage="analyze", assignee="hank", stage_due_at=NOW + timedelta(hours=3))
    put(app, "AS-NB", stage="analyze", assignee="bob", stage_due_at=NOW)
    client = signed_in(app, "hank", "zh_CN")

    def after_done(case_id: str) -> str:
        with client.session_transaction() as session:
            session["_flashes"] = [("done", "confirm")]
        return client.get(f"/desk/cases/{case_id}").get_data(as_text=True)

    html = after_done("AS-N1")
    done = re.search(r'<div id="done" role="status">.*?</div>', html, re.S).group(0)
    assert "已完成：确认。" in done
    # The first of "my cases" (soonest due first) that is not this one; never bob's.
    assert 'href="/desk/cases/AS-N2"' in done
    assert 'href="/desk/cases/AS-N1"' in after_done("AS-N2").split('id="done"')[1]
    # Without a submit nothing is offered.
    assert 'id="done"' not in client.get("/desk/cases/AS-N1").get_data(as_text=True)
    # bob's queue holds only this case: nothing to go on to.
    client = signed_in(app, "bob", "zh_CN")
    alone = after_done("AS-NB").split('id="done"')[1].split("</div>")[0]
    assert "/desk/cases/" not in alone and "队列中没有其他工单" in alone


def test_reply_templates_set_fields_and_are_written_in_the_language_of_who_reads_them(
        app):
    """A question to the customer is written in the customer's language (English here);
    an analysis note stays on the case for staff, in the page's (Chinese)."""
    from workflows.case.contracts import Customer

    put(app, "AS-T1", stage="analyze", assignee="hank",
        customer=Customer(id="C-9", name="Anna", locale="en"))
    client = signed_in(app, "hank", "zh_CN")
    html = client.get("/desk/cases/AS-T1").get_data(as_text=True)
    link = re.search(r'<a class="template"[^>]*>物流原因</a>', html).group(0)
    assert 'data-field="note"' in link and 'data-text="物流轨迹显示' in link
    assert ('data-set="{&#34;responsible_party&#34;: &#34;courier&#34;, &#34;root_cause&#34;:'
            ' &#34;damaged_in_transit&#34;}"') in link
    analyze = form_of(html, "analyze")
    assert '<p class="templates">话术：' in analyze and "客户的语言" not in analyze
    ask = form_of(html, "request-info")
    assert '<p class="templates">话术（按客户的语言：英文）：' in ask
    assert re.search(r'<a class="template"[^>]*data-text="Dear Anna, could you tell us[^>]*>'
                     r'请客户补充说明</a>', ask), ask
    # Without the script the link fills the form on the server, fields included.
    filled = form_of(client.get("/desk/cases/AS-T1?reply=analyze-courier").get_data(
        as_text=True), "analyze")
    assert '<option value="damaged_in_transit" selected>' in filled
    assert '<option value="courier" selected>' in filled and ">物流轨迹显示" in filled


def test_what_a_template_may_set_is_what_the_action_s_schema_takes():
    from web.caseview import LOCALE_NAMES
    from web.desk import template_fields
    from workflows.case.vocabulary import (
        GRADES,
        KINDS,
        LOCALES,
        PRIORITIES,
        RESOLUTION_TYPES,
        RESPONSIBLE_PARTIES,
        REVISIT_OUTCOMES,
        ROOT_CAUSES,
    )

    assert template_fields("confirm") == {"priority": PRIORITIES, "kind": KINDS}
    assert template_fields("analyze") == {"root_cause": ROOT_CAUSES,
                                          "responsible_party": RESPONSIBLE_PARTIES}
    assert template_fields("resolve") == {"type": RESOLUTION_TYPES}
    assert template_fields("inspect") == {"grade": GRADES}
    assert template_fields("revisit") == {"outcome": REVISIT_OUTCOMES}
    assert template_fields("note") == {}
    assert set(LOCALE_NAMES) == set(LOCALES)  # every customer's language has a name


@pytest.mark.parametrize(("fields", "said"), [
    ('fields = { colour = "red" }', "'colour' is not a field of the analyze form"),
    ('fields = { root_cause = "aliens" }', "'aliens' is not a value of 'root_cause'"),
])
def test_a_reply_template_setting_what_its_form_does_not_take_is_refused_at_load(
        tmp_path, fields, said):
    from web.desk import ReplyTemplateError, load_replies

    path = tmp_path / "replies.toml"
    path.write_text(f"""[[template]]
key = "odd-one"
action = "analyze"
kinds = ["*"]
title = {{ en = "Odd", zh_CN = "怪" }}
text = {{ en = "Odd", zh_CN = "怪" }}
{fields}
""", encoding="utf-8")
    with pytest.raises(ReplyTemplateError) as refused:
        load_replies(path)
    assert "reply template 'odd-one'" in str(refused.value) and said in str(refused.value)


def test_customer_page_states_and_links_that_do_not_work(app):
    put(app, "AS-Q", stage="analyze", pending_question="哪一件有问题？",
        status="waiting_on_customer")
    put(app, "AS-F", stage="feedback", stage_due_at=NOW + timedelta(days=3))
    put(app, "AS-OLD", stage="closed", status="closed", closed_at=NOW - timedelta(days=31),
        stage_due_at=None)
    client = app.test_client()
    question = client.get("/s/tok-AS-Q", headers={"Accept-Language": "zh-CN"})
    html = question.get_data(as_text=True)
    assert question.status_code == 200 and 'lang="zh-CN"' in html
    assert "我们需要向您确认" in html and "哪一件有问题？" in html
    assert 'name="message"' in html and 'name="rating"' not in html
    rating = client.get("/s/tok-AS-F", headers={"Accept-Language": "en"}).get_data(as_text=True)
    # No question pending: the message form is there to write, not to answer.
    assert 'name="rating"' in rating and ">Write to us</label>" in rating
    assert "Please rate how we handled your case." in rating
    unknown = client.get("/s/no-such-link", headers={"Accept-Language": "zh-CN"})
    assert unknown.status_code == 404 and "无法识别此链接" in unknown.get_data(as_text=True)
    expired = client.get("/s/tok-AS-OLD", headers={"Accept-Language": "en"})
    assert expired.status_code == 410 and "This link has expired" in expired.get_data(
        as_text=True)


def test_language_from_the_browser_switchable_and_remembered(app):
    client = app.test_client()
    zh = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert 'lang="zh-CN"' in zh.get_data(as_text=True) and "登录" in zh.get_data(as_text=True)
    switched = client.get("/login?lang=en", headers={"Accept-Language": "zh-CN"})
    assert 'lang="en"' in switched.get_data(as_text=True)
    assert "lang=en" in switched.headers["Set-Cookie"]
    again = client.get("/login", headers={"Accept-Language": "zh-CN"})
    assert 'lang="en"' in again.get_data(as_text=True)
    assert client.get("/login?lang=xx").status_code == 200  # unknown: ignored


def test_money_and_dates_follow_the_locale(app):
    order_total = "1234.50"
    from workflows.case.contracts import OrderSnapshot

    put(app, "AS-M", order=OrderSnapshot(id="SO-10001", customer_id="C-1", status="delivered",
                                         currency="CNY", total=order_total,
                                         placed_at=datetime(2026, 11, 1, 2, 0, tzinfo=UTC)))
    en = signed_in(app, "hank", "en").get("/desk/cases/AS-M").get_data(as_text=True)
    zh = signed_in(app, "hank", "zh_CN").get("/desk/cases/AS-M").get_data(as_text=True)
    assert "CN¥1,234.50" in en and "¥1,234.50" in zh
    # 02:00 UTC is 10:00 in the store's zone; the machine-readable value stays UTC.
    assert 'datetime="2026-11-01T02:00:00Z">Nov 1, 2026, 10:00:00' in en.replace("\u202f", " ")
    assert 'datetime="2026-11-01T02:00:00Z">2026年11月1日 10:00:00' in zh


def test_the_language_switch_keeps_the_query_and_works(app):
    client = app.test_client()
    html = client.get("/login?next=/desk%3Fq%3Da%26b", headers={
        "Accept-Language": "en"}).get_data(as_text=True)
    link = re.search(r'<a href="([^"]+)" lang="zh-CN"', html).group(1)
    assert link == "/login?next=%2Fdesk%3Fq%3Da%26b&amp;lang=zh_CN"
    switched = client.get(link.replace("&amp;", "&"))
    assert 'lang="zh-CN"' in switched.get_data(as_text=True)


def test_every_explanation_the_workflow_writes_is_said_in_chinese(app):
    """Run the generators of priority, eligibility and SLA-rule sentences and check
    that each one has a translation: a reworded sentence fails here."""
    from decimal import Decimal

    from web.reasons import say
    from workflows.case.contracts import CaseItem, OrderLine, OrderSnapshot
    from workflows.case.eligibility import check_eligibility
    from workflows.case.priority import score_priority
    from workflows.sla import SlaPolicy, format_duration

    policy = SlaPolicy()
    sentences: list[str] = []
    sentences += score_priority(policy.priority, None, "vip", "再不处理我就投诉到12315",
                                ["AS-1", "AS-2"], "2600.00")[1]
    sentences += score_priority(policy.priority, "P2", "regular", "", [], None)[1]
    sentences += score_priority(policy.priority, None, "regular", "", [], None,
                                escalation_risk=["rule: 12315", "“投诉”"])[1]
    order = OrderSnapshot(id="SO-1", customer_id="C-1", status="delivered", currency="CNY",
                          total="10.00", placed_at=NOW - timedelta(days=30),
                          delivered_at=NOW - timedelta(days=20),
                          lines=[OrderLine("SKU-1", "Milk", 1, "10.00", "fresh")])
    sentences += check_eligibility("return", [CaseItem("SKU-1", 2), CaseItem("SKU-9", 1)],
                                   order, NOW, policy, {"SKU-1": 0})["reasons"]
    undelivered = OrderSnapshot(id="SO-2", customer_id="C-1", status="shipped",
                                currency="CNY", total="1.00", placed_at=NOW)
    sentences += check_eligibility("exchange", [], undelivered, NOW, policy)["reasons"]
    sentences.append(f"75% of the confirm target ({format_duration(8 * 3600)}) for P3")
    sentences.append("parcel SF123 lost")
    assert any(s.startswith("triage: ") for s in sentences)
    assert len(sentences) >= 12 and Decimal("2600.00")
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        said = {s: say(s) for s in sentences}
    untranslated = [s for s, z in said.items() if z == s or re.search(r"[a-z]{4,}", z)]
    assert not untranslated, untranslated


def test_tags_show_on_the_case_page_and_filter_the_desk(app):
    put(app, "AS-TAG1", stage="analyze", tags=["破损", "vip"])
    put(app, "AS-TAG2", stage="analyze")
    client = signed_in(app, "hank")
    page = client.get("/desk/cases/AS-TAG1").get_data(as_text=True)
    tags = re.search(r'<ul class="tags"[^>]*>(.*?)</ul>', page).group(1)
    assert ">破损</a>" in tags and ">vip</a>" in tags
    # The tag form offers to remove each tag the case has.
    form = re.search(r'<form [^>]*id="act-tag".*?</form>', page, re.S).group(0)
    assert 'name="remove" value="vip"' in form and 'name="add"' in form
    listed = client.get("/desk?tag=vip").get_data(as_text=True)
    assert "AS-TAG1" in listed and "AS-TAG2" not in listed


def test_the_desk_reads_list_fields_from_repeated_or_comma_separated_inputs():
    from werkzeug.datastructures import MultiDict

    from web.desk import form_body

    form = MultiDict([("add", "破损, vip ,"), ("remove", "old"), ("remove", "older")])
    assert form_body("tag", form) == {"add": ["破损", "vip"], "remove": ["old", "older"]}
    assert form_body("note", MultiDict([("text", "  called  ")])) == {"text": "called"}


def test_the_desk_and_console_filter_by_team_and_store(app):
    put(app, "AS-TEAM1", stage="analyze", team="returns", store="online", overdue=True)
    put(app, "AS-TEAM2", stage="analyze", team="complaints", store="hz-westlake",
        overdue=True)
    desk = signed_in(app, "hank")
    by_team = desk.get("/desk?team=returns").get_data(as_text=True)
    assert "AS-TEAM1" in by_team and "AS-TEAM2" not in by_team
    assert '<option value="returns" selected>' in by_team
    by_store = desk.get("/desk?store=hz-westlake").get_data(as_text=True)
    assert "AS-TEAM2" in by_store and "AS-TEAM1" not in by_store
    console = signed_in(app, "sam").get("/supervisor?team=complaints").get_data(as_text=True)
    overdue = section(console, "overdue-h")
    assert "AS-TEAM2" in overdue and "AS-TEAM1" not in overdue


def test_the_desk_switches_its_user_away_and_back_on_duty(app):
    client = signed_in(app, "hank")
    page = client.get("/desk").get_data(as_text=True)
    assert "You are on duty" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/desk/duty", data={"csrf_token": token, "on_duty": "0"})
    assert response.status_code == 302
    page = client.get("/desk").get_data(as_text=True)
    assert "You are away" in page and "Set me on duty" in page
    with app.extensions["aftersales"].sessions() as session:
        assert session.get(User, "hank").on_duty is False
    client.post("/desk/duty", data={"csrf_token": token, "on_duty": "1"})
    with app.extensions["aftersales"].sessions() as session:
        assert session.get(User, "hank").on_duty is True


def test_a_handler_acting_on_a_colleague_s_case_from_the_desk_is_told_whose_it_is(app):
    put(app, "AS-BOBS1", stage="analyze", assignee="bob")
    client = signed_in(app, "hank")
    page = client.get("/desk/cases/AS-BOBS1").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/desk/cases/AS-BOBS1/note",
                           data={"csrf_token": token, "text": "mine now"},
                           follow_redirects=True)
    assert "taking it over is a supervisor" in response.get_data(as_text=True)


def forms_on(html: str) -> list[str]:
    """The action forms and the upload form a case page offers, by id."""
    return re.findall(r'<form [^>]*id="(act-[a-z-]+|upload)"', html)


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_a_case_that_is_not_yours_offers_nothing_and_says_whose_it_is(app, lang):
    """The case page offers exactly what the API would let the user do (OWNERSHIP): no
    form at all on a colleague's case or on another team's queue, and it says whose the
    case is and who can hand it over."""
    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "rita", "handler", "rita-password", teams=["returns"])
        create_user(session, "rex", "supervisor", "rex-password", teams=["returns"])
    put(app, "AS-BOBS2", stage="confirm", assignee="bob", team="returns")
    put(app, "AS-CPL1", stage="confirm", team="complaints")
    put(app, "AS-RET1", stage="confirm", team="returns")
    words = {"en": ("This case is bob's (team returns): only they work on it.",
                    "ask a supervisor of the team to reassign it to you",
                    "waits in the queue of team complaints, which is not yours"),
             "zh_CN": ("此工单属于 bob（returns 团队）", "请该团队的主管将它重新分配给您",
                       "此工单在 complaints 团队的队列中")}[lang]

    hank = signed_in(app, "hank", lang)  # in no team: every team's queue is his
    colleague = hank.get("/desk/cases/AS-BOBS2").get_data(as_text=True)
    assert forms_on(colleague) == []
    assert 'id="not-yours"' in colleague
    assert words[0] in colleague and words[1] in colleague
    assert "act-assign" in forms_on(hank.get("/desk/cases/AS-CPL1").get_data(as_text=True))

    rita = signed_in(app, "rita", lang)
    other_team = rita.get("/desk/cases/AS-CPL1").get_data(as_text=True)
    assert forms_on(other_team) == [] and words[2] in other_team
    own_team = rita.get("/desk/cases/AS-RET1").get_data(as_text=True)
    assert 'id="not-yours"' not in own_team
    assert {"act-confirm", "act-assign", "act-note", "upload"} <= set(forms_on(own_team))

    # The supervisor of the team may act on bob's case: reassign it among the rest.
    rex = signed_in(app, "rex", lang)
    supervised = rex.get("/desk/cases/AS-BOBS2").get_data(as_text=True)
    assert 'id="not-yours"' not in supervised
    assert {"act-assign", "act-confirm", "upload"} <= set(forms_on(supervised))
    # …but not on a case of another team: that is an admin's.
    assert forms_on(rex.get("/desk/cases/AS-CPL1").get_data(as_text=True)) == []


def test_the_desk_queue_holds_the_user_s_teams_cases_and_those_of_no_team(app):
    with app.extensions["aftersales"].sessions.begin() as session:
        create_user(session, "tess", "handler", "tess-password", teams=["returns"])
    put(app, "AS-QUEUE1", stage="confirm", team="returns")
    put(app, "AS-QUEUE2", stage="confirm", team="complaints")
    put(app, "AS-QUEUE3", stage="confirm")
    queue = section(signed_in(app, "tess").get("/desk").get_data(as_text=True),
                    "team-h")
    assert "AS-QUEUE1" in queue and "AS-QUEUE3" in queue and "AS-QUEUE2" not in queue
    # A user in no team takes from every queue.
    queue = section(signed_in(app, "hank").get("/desk").get_data(as_text=True),
                    "team-h")
    assert all(f"AS-QUEUE{n}" in queue for n in (1, 2, 3))
