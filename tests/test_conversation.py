"""The conversation on a case: the customer writes on the status page and over the API,
handlers reply (the customer sees it and is told on their channel), notes stay inside;
a customer's message waits for a reply under the SLA policy's `reply` target.

Through Flask's test client against a real Temporal dev server and worker, and on the
time-skipping test server for the reply clock."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import ClassVar

import pytest
from sqlalchemy import select

from activities.senders import PermanentDeliveryError
from db.accounts import create_user
from db.models import OutboxMessage
from tests import test_intake
from tests.conftest import record_history_sync
from tests.test_case_workflow import (
    ALICE,
    HOUR,
    case_input,
    case_worker,
    events_of,
    skipping_env,  # noqa: F401 (a fixture)
    start_case,
)
from tests.test_intake import WALK_IN, CapturingSender, auth
from tests.test_pages import signed_in
from workflows.case.contracts import ReplyInput, StaffReplyInput
from workflows.case.lifecycle import BY_NAME
from workflows.case.workflow import CaseWorkflow

stack = test_intake.stack  # the fixture: dev server, worker, app, users alice and sam
SMS = {"message_sender": "tests.test_intake:CapturingSender"}


def open_walk_in(client, tokens, **customer) -> tuple[str, str]:
    body = {**WALK_IN, "customer": {**WALK_IN["customer"], **customer}}
    created = client.post("/api/v1/cases", json=body, headers=auth(tokens["alice"]))
    assert created.status_code == 201, created.get_json()
    case = created.get_json()
    return case["id"], case["customer_url"].rsplit("/", 1)[1]


def sent_to(sessions, case_id: str, template: str) -> list[OutboxMessage]:
    with sessions() as session:
        return list(session.scalars(select(OutboxMessage).where(
            OutboxMessage.case_id == case_id, OutboxMessage.template == template)))


def wait_until(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return found


@pytest.mark.parametrize("stack", [SMS], indirect=True)
def test_customer_and_handler_hold_a_conversation(stack, temporal_address):
    _, client, tokens, sessions = stack
    with sessions.begin() as session:
        create_user(session, "xiaoai", "handler", "xiaoai-password", display_name="客服小艾")
    case_id, token = open_walk_in(client, tokens)
    headers = auth(tokens["alice"])
    assert client.post(f"/api/v1/cases/{case_id}/assign", json={"assignee": "alice"},
                       headers=headers).status_code == 200

    # The customer writes first: the case waits for a reply, the assignee is told.
    wrote = client.post(f"/api/v1/status/{token}/messages", json={"message": "请尽快处理"})
    assert wrote.status_code == 201
    assert [m["text"] for m in wrote.get_json()["messages"]] == ["请尽快处理"]
    case = client.get(f"/api/v1/cases/{case_id}", headers=headers).get_json()
    assert case["awaiting_reply_since"] is not None
    reply_clock = next(c for c in case["deadlines"]["clocks"] if c["name"] == "reply")
    assert reply_clock["state"] == "running" and reply_clock["target"] == 4 * 3600  # P3
    assert wait_until(lambda: sent_to(sessions, case_id, "customer_replied"))[0].recipient \
        == "alice"

    # An internal note, then the supervisor hands the case to a handler with a display
    # name (a colleague's case is not another handler's to answer), who replies.
    client.post(f"/api/v1/cases/{case_id}/note", json={"text": "顾客是常客"}, headers=headers)
    assert client.post(f"/api/v1/cases/{case_id}/assign", json={"assignee": "xiaoai"},
                       headers=auth(tokens["sam"])).status_code == 200
    page = signed_in(stack[0], "xiaoai")
    html = page.get(f"/desk/cases/{case_id}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    answered = page.post(f"/desk/cases/{case_id}/reply",
                         data={"csrf_token": csrf, "message": "您好，已安排专人跟进。"})
    assert answered.status_code == 302
    case = client.get(f"/api/v1/cases/{case_id}", headers=headers).get_json()
    assert case["awaiting_reply_since"] is None
    assert next(c for c in case["deadlines"]["clocks"] if c["name"] == "reply")["state"] \
        == "met"
    staff = [(m["author"], m["by"], m["internal"], m["channel"]) for m in case["messages"]]
    assert staff == [("customer", "", False, "web"), ("staff", "alice", True, "api"),
                     ("staff", "xiaoai", False, "desk")]

    # The customer sees the reply signed with the display name, never the note or a
    # user name; the reply reached their phone.
    view = client.get(f"/api/v1/status/{token}").get_json()
    assert [(m["author"], m["display_name"], m["text"]) for m in view["messages"]] == [
        ("customer", "", "请尽快处理"), ("staff", "客服小艾", "您好，已安排专人跟进。")]
    assert "xiaoai" not in str(view) and "顾客是常客" not in str(view)
    sms = wait_until(lambda: [m for m in CapturingSender.sent
                              if m.template == "staff_reply" and m.case_id == case_id])
    assert "您好，已安排专人跟进。" in sms[0].body and sms[0].to == "13700000007"
    status_page = client.get(f"/s/{token}", headers={"Accept-Language": "zh-CN"})
    shown = status_page.get_data(as_text=True)
    assert "客服小艾" in shown and "顾客是常客" not in shown and "xiaoai" not in shown
    # The case ends; its history is the replay test's `conversation` path.
    assert client.post(f"/api/v1/cases/{case_id}/cancel", json={"reason": "已解决"},
                       headers=auth(tokens["sam"])).status_code == 200
    wait_until(lambda: sent_to(sessions, case_id, "case_cancelled"))
    record_history_sync(temporal_address, case_id, "conversation")


def test_a_desk_note_sent_again_after_no_answer_is_written_once(stack, monkeypatch):
    """The note reaches the case but its answer is lost (the page says the outcome is
    unknown, 504, and shows the form again); the handler sends the same form again: the
    case runs that update once and answers with its first outcome."""
    from web.gateway import OutcomeUnknown

    app, client, tokens, _sessions = stack
    case_id, _token = open_walk_in(client, tokens)
    assert client.post(f"/api/v1/cases/{case_id}/assign", json={"assignee": "alice"},
                       headers=auth(tokens["alice"])).status_code == 200
    gateway = app.extensions["aftersales"].gateway
    real_act = gateway.act
    lost: list[str | None] = []

    def answer_lost(case_id, update, arg, update_id=None):
        result = real_act(case_id, update, arg, update_id=update_id)
        if not lost:
            lost.append(update_id)
            raise OutcomeUnknown("the answer was lost")
        return result

    monkeypatch.setattr(gateway, "act", answer_lost)
    page = signed_in(app, "alice")
    html = page.get(f"/desk/cases/{case_id}").get_data(as_text=True)
    form = re.search(r'<form [^>]*id="act-note".*?</form>', html, re.S).group(0)
    body = {name: value for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)}
    assert "update_key" in body
    first = page.post(f"/desk/cases/{case_id}/note", data={**body, "text": "顾客来电两次"})
    assert first.status_code == 504 and lost and lost[0] is not None
    shown = re.search(r'<form [^>]*id="act-note".*?</form>', first.get_data(as_text=True),
                      re.S).group(0)
    again = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', shown))
    assert again["update_key"] == body["update_key"] and "顾客来电两次" in shown
    assert page.post(f"/desk/cases/{case_id}/note",
                     data={**again, "text": "顾客来电两次"}).status_code == 302
    case = client.get(f"/api/v1/cases/{case_id}", headers=auth(tokens["alice"])).get_json()
    assert [m["text"] for m in case["messages"]].count("顾客来电两次") == 1


def test_a_message_answers_the_pending_question(stack):
    _, client, tokens, _ = stack
    case_id, token = open_walk_in(client, tokens)
    headers = auth(tokens["alice"])
    asked = client.post(f"/api/v1/cases/{case_id}/request-info",
                        json={"question": "请问是哪一家门店？"}, headers=headers)
    assert asked.status_code == 200
    view = client.get(f"/api/v1/status/{token}").get_json()
    assert view["can_reply"] and view["messages"][-1]["text"] == "请问是哪一家门店？"
    answered = client.post(f"/api/v1/status/{token}/messages", json={"message": "南京路店"})
    assert answered.status_code == 201 and answered.get_json()["can_reply"] is False
    case = client.get(f"/api/v1/cases/{case_id}", headers=headers).get_json()
    assert case["status"] == "open" and case["pending_question"] is None
    answer = case["messages"][-1]
    assert answer["text"] == "南京路店" and answer["author"] == "customer"
    # The first address of the endpoint still answers, with 200.
    again = client.post(f"/api/v1/status/{token}/reply", json={"message": "二楼"})
    assert again.status_code == 200 and len(again.get_json()["messages"]) == 3


@pytest.mark.parametrize("body", [
    {"message": ""}, {"message": "   \n "}, {"message": "字" * 4001},
    {"message": "x" * 10_000}, {"message": 42}, {}, {"message": "hi", "channel": "email"},
])
def test_bad_messages_are_refused_and_change_nothing(stack, body):
    _, client, tokens, _ = stack
    case_id, token = open_walk_in(client, tokens)
    refused = client.post(f"/api/v1/status/{token}/messages", json=body)
    assert refused.status_code in (400, 422)
    assert refused.headers["Content-Type"] == "application/problem+json"
    staff = client.post(f"/api/v1/cases/{case_id}/reply", json=body,
                        headers=auth(tokens["alice"]))
    assert staff.status_code in (400, 422)
    case = client.get(f"/api/v1/cases/{case_id}", headers=auth(tokens["alice"])).get_json()
    assert case["messages"] == []


def test_the_limit_is_4000_characters(stack):
    _, client, tokens, _ = stack
    _case_id, token = open_walk_in(client, tokens)
    longest = client.post(f"/api/v1/status/{token}/messages", json={"message": "字" * 4000})
    assert longest.status_code == 201


def test_no_messages_on_a_cancelled_case_nor_through_another_link(stack):
    _, client, tokens, _ = stack
    case_id, token = open_walk_in(client, tokens)
    cancelled = client.post(f"/api/v1/cases/{case_id}/cancel", json={"reason": "顾客撤回"},
                            headers=auth(tokens["alice"]))
    assert cancelled.status_code == 200
    refused = client.post(f"/api/v1/status/{token}/messages", json={"message": "还在吗"})
    assert refused.status_code == 409
    assert client.get(f"/api/v1/status/{token}").get_json()["can_write"] is False
    assert client.post("/api/v1/status/not-a-link/messages",
                       json={"message": "hi"}).status_code == 404
    staff = client.post(f"/api/v1/cases/{case_id}/reply", json={"message": "抱歉"},
                        headers=auth(tokens["alice"]))
    assert staff.status_code == 409


def test_the_status_page_form_keeps_the_thread(stack):
    _, client, tokens, _ = stack
    _case_id, token = open_walk_in(client, tokens)
    page = client.get(f"/s/{token}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert ">Write to us</label>" in page and "No messages yet." in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    sent = client.post(f"/s/{token}/messages", data={"csrf_token": csrf, "message": "Hello?"},
                       headers={"Accept-Language": "en"})
    assert sent.status_code == 302 and sent.headers["Location"].endswith("#messages")
    shown = client.get(f"/s/{token}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Thank you, we have your message." in shown and "Hello?" in shown
    empty = client.post(f"/s/{token}/messages", data={"csrf_token": csrf, "message": " "})
    assert empty.status_code == 302
    assert client.post(f"/s/{token}/messages", data={"message": "no csrf"}).status_code == 400


def test_the_message_action_follows_the_table():
    assert BY_NAME["message"].update == "reply" and "closed" in BY_NAME["message"].stages
    assert "cancelled" not in BY_NAME["message"].stages
    assert "customer" not in BY_NAME["reply"].roles
    # Staff can answer wherever the customer can write.
    assert BY_NAME["reply"].stages == BY_NAME["message"].stages


async def test_an_unanswered_message_warns_then_breaches(skipping_env, sqlite_url,  # noqa: F811
                                                         order_system_url):
    inp = case_input()  # P3: reply within 4 h
    async with case_worker(skipping_env.client, sqlite_url, order_system_url) as (tq, sessions):
        handle = await start_case(skipping_env.client, tq, inp)
        await handle.execute_update(CaseWorkflow.reply, ReplyInput("在吗？"))
        await skipping_env.sleep(2 * HOUR + timedelta(minutes=1))
        warnings = [e.detail for e in events_of(sessions, inp.case_id)
                    if e.type == "sla_warning"]
        assert [(w["clock"], w["share"]) for w in warnings] == [("reply", 0.5)]
        await skipping_env.sleep(2 * HOUR)
        snap = await handle.query(CaseWorkflow.snapshot)
        # Overdue on the reply first; each breach raises the priority, whose shorter
        # confirm target the case has used up too.
        assert snap.overdue and [b["clock"] for b in snap.breaches] == ["reply", "confirm"]
        assert snap.priority == "P1"
        assert snap.awaiting_reply_since is not None
        # A reply ends the wait; the breach stays on the record.
        await handle.execute_update(CaseWorkflow.staff_reply,
                                    StaffReplyInput(ALICE, "抱歉久等了"))
        snap = await handle.query(CaseWorkflow.snapshot)
        assert snap.awaiting_reply_since is None
        assert not any(c.name == "reply" and c.state == "running" for c in snap.clocks)
        await handle.terminate()


class RefusingSender:
    """An SMS provider that refuses one number for good, as providers do for numbers
    that do not exist, and counts how often it was asked."""

    asked: ClassVar[list] = []

    def __init__(self, settings=None) -> None:
        pass

    def send(self, message) -> None:
        RefusingSender.asked.append(message)
        if message.to == "13700000000":
            raise PermanentDeliveryError("isv.MOBILE_NUMBER_ILLEGAL: invalid number")


@pytest.mark.parametrize("stack", [{"message_sender": "tests.test_conversation:RefusingSender"}],
                         indirect=True)
def test_a_number_the_provider_refuses_is_on_the_timeline_once(stack):
    _, client, tokens, sessions = stack
    case_id, _ = open_walk_in(client, tokens, phone="13700000000")
    headers = auth(tokens["alice"])

    def refused():
        case = client.get(f"/api/v1/cases/{case_id}", headers=headers).get_json()
        return [e for e in case.get("timeline", []) if e["type"] == "notification_failed"]

    failed = wait_until(refused)
    assert failed[0]["detail"]["template"] == "case_opened"
    assert "MOBILE_NUMBER_ILLEGAL" in failed[0]["detail"]["reason"]
    row = sent_to(sessions, case_id, "case_opened")[0]
    assert row.sent_at is not None and "undeliverable to 137****00" in row.last_error
    time.sleep(1)
    assert len([m for m in RefusingSender.asked if m.case_id == case_id]) == 1  # not retried
    page = signed_in(stack[0], "alice")
    html = page.get(f"/desk/cases/{case_id}", headers={"Accept-Language": "en"})
    assert "could not be delivered" in html.get_data(as_text=True)


def test_a_customer_with_an_openid_is_reached_by_wechat_when_it_is_configured(sqlite_url):
    from db import outbox
    from db.cases import write_projection
    from db.engine import make_engine, make_sessionmaker, migrate
    from tests.test_read_model import snapshot
    from workflows.case.contracts import Customer, Projection

    migrate(sqlite_url)
    sessions = make_sessionmaker(make_engine(sqlite_url))
    customer = Customer(id="C-W", name="微信用户", phone="13700000001",
                        wechat_openid="oAbC-123_xyz")
    write_projection(sessions, Projection(snapshot("AS-W1", 1, customer=customer)))
    claim = outbox.Claim(key="AS-W1:1", token="t", case_id="AS-W1", channel="customer",
                         recipient="C-W", template="staff_reply", payload={},
                         delivered=(), attempts=1)
    with sessions() as session:
        by_wechat = outbox.recipients(session, claim, "zh-CN",
                                      frozenset({"email", "message", "wechat"}))
        without = outbox.recipients(session, claim, "zh-CN")
    assert [(r.medium, r.address) for r in by_wechat] == [("wechat", "oAbC-123_xyz")]
    assert [(r.medium, r.address) for r in without] == [("message", "13700000001")]


def test_a_provider_down_for_an_hour_gets_the_message_once_when_it_is_back(sqlite_url):
    """The SMS gateway answers 500 to every try for an hour (the delivery activity's
    retries, then the outbox sweep): nothing is lost, nothing sent twice."""
    from activities.notifications import OutboxDelivery
    from activities.providers import WebhookSender
    from db.cases import write_projection
    from db.engine import make_engine, make_sessionmaker, migrate
    from simulators.providers import FakeWebhookGateway
    from tests.conftest import make_settings
    from tests.test_read_model import snapshot
    from workflows.case.contracts import Customer, Projection
    from workflows.case.contracts import OutboxMessage as OutboxDraft

    migrate(sqlite_url)
    sessions = make_sessionmaker(make_engine(sqlite_url))
    fake = FakeWebhookGateway("hook-secret")
    customer = Customer(id="C-P", name="李雷", phone="13700000002")
    draft = OutboxDraft(key="AS-P1:1", at=snapshot("AS-P1", 1).updated_at,
                        channel="customer", recipient="C-P", template="staff_reply",
                        payload={"message": "已为您安排退款", "display_name": "客服小艾",
                                 "customer_url": "http://x/s/t"})
    write_projection(sessions, Projection(snapshot("AS-P1", 1, customer=customer),
                                          outbox=[draft]))
    with fake.serve() as server:
        settings = make_settings("unused", sqlite_url, "http://127.0.0.1:9").with_(
            message_sender="webhook", sms_webhook_url=f"{server.url}/messages",
            sms_webhook_secret="hook-secret")
        sender = WebhookSender(settings, sleep=lambda _s: None)
        delivery = OutboxDelivery(sessions, settings, senders={"message": sender})
        fake.script.extend([500] * 48)  # an hour of tries, each retried inside the sender
        failures = 0
        while fake.script:
            report = delivery.deliver(["AS-P1:1"])
            assert not report.result.sent and "AS-P1:1" in report.failed
            failures += 1
        with sessions() as session:
            row = session.get(OutboxMessage, "AS-P1:1")
            assert row.sent_at is None and "500" in (row.last_error or "")
        assert delivery.deliver(["AS-P1:1"]).result.sent == ["AS-P1:1"]
        assert delivery.deliver(["AS-P1:1"]).result.already_sent == ["AS-P1:1"]
    assert failures >= 12 and len(fake.accepted) == 1
    assert fake.accepted[0]["template"] == "staff_reply"
    assert fake.accepted[0]["params"]["message"] == "已为您安排退款"


def test_one_link_writes_a_bounded_number_of_messages_an_hour(stack):
    app, client, tokens, _ = stack
    _case_id, token = open_walk_in(client, tokens)
    app.extensions["aftersales"].message_limiter.limit = 3
    for n in range(3):
        assert client.post(f"/api/v1/status/{token}/messages",
                           json={"message": f"第{n}条"}).status_code == 201
    refused = client.post(f"/api/v1/status/{token}/messages", json={"message": "再一条"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert len(client.get(f"/api/v1/status/{token}").get_json()["messages"]) == 3


def test_a_refusal_is_reported_again_by_the_attempt_that_finishes(sqlite_url):
    """A flush's rows go in one delivery: when another row fails, the attempt's report
    (with the refusal) is lost to the retry; the retry must report the refusal too."""
    from activities.notifications import OutboxDelivery
    from db.cases import write_projection
    from db.engine import make_engine, make_sessionmaker, migrate
    from tests.conftest import make_settings
    from tests.test_read_model import snapshot
    from workflows.case.contracts import Customer, Projection
    from workflows.case.contracts import OutboxMessage as OutboxDraft

    class Flaky:
        calls = 0

        def send(self, message) -> None:
            if message.to == "13700000000":
                raise PermanentDeliveryError("invalid number")
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ConnectionError("the gateway hung up")

    migrate(sqlite_url)
    sessions = make_sessionmaker(make_engine(sqlite_url))
    at = snapshot("AS-R1", 1).updated_at
    for case_id, phone in (("AS-R1", "13700000000"), ("AS-R2", "13700000009")):
        write_projection(sessions, Projection(
            snapshot(case_id, 1, customer=Customer(id=case_id, name="客户", phone=phone)),
            outbox=[OutboxDraft(key=f"{case_id}:1", at=at, channel="customer",
                                recipient=case_id, template="case_opened", payload={})]))
    settings = make_settings("unused", sqlite_url, "http://127.0.0.1:9")
    delivery = OutboxDelivery(sessions, settings, senders={"message": Flaky()})
    first = delivery.deliver(["AS-R1:1", "AS-R2:1"])
    assert first.failed and [u["key"] for u in first.result.undeliverable] == ["AS-R1:1"]
    retry = delivery.deliver(["AS-R1:1", "AS-R2:1"])
    assert not retry.failed and retry.result.sent == ["AS-R2:1"]
    assert [u["key"] for u in retry.result.undeliverable] == ["AS-R1:1"]
