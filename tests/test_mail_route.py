"""Email in, end to end: mails to the service address open cases, answer them as the
customer or reach staff as notes, and never loop. Against a real Temporal dev server,
a real worker, the order-system simulator over HTTP, the local SMTP receiver and a real
IMAP server (pymap)."""

from __future__ import annotations

import io
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from PIL import Image
from sqlalchemy import select

from activities.senders import case_of_message_id, message_id
from aftersales.mailin import SmtpReceiver
from db.models import Case, InboundMailRecord, OutboxMessage
from tests import test_intake
from tests.test_intake import auth, orders
from tests.test_mail_in import imap  # noqa: F401 (the pymap fixture)
from web.mailroute import MailRouter, case_id_for

stack = test_intake.stack  # the fixture: dev server, worker, app, users alice and sam
SERVICE = "service@shop.example"


def mail(text: str, *, sender: str, subject: str = "", charset: str = "utf-8",
         **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SERVICE
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="customer.example")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text, charset=charset)
    return message


def mail_case(stack, message) -> str:
    """The id of the case a mail opened (named after it, keyed with the secret)."""
    settings = stack[0].extensions["aftersales"].settings
    return case_id_for(message["Message-ID"], settings.secret_key)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 20, 20)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def router(stack):
    return MailRouter(stack[0])


def case_of(sessions, case_id: str) -> Case:
    with sessions() as session:
        row = session.get(Case, case_id)
        assert row is not None, f"no case {case_id}"
        session.expunge(row)
        return row


def an_order_with_email(order_system_url: str) -> dict:
    return next(o for o in orders(order_system_url) if o["customer"].get("email"))


def test_a_mail_naming_its_order_opens_a_case_on_it_once(stack, router, order_system_url):
    _, client, tokens, sessions = stack
    order = an_order_with_email(order_system_url)
    message = mail(f"你好，订单 {order['id']} 的茶叶盒子压坏了，请处理。",
                   sender=f"王芳 <{order['customer']['email'].upper()}>",
                   subject="包裹破损", charset="gb18030")
    router.handle(message.as_bytes())
    router.handle(message.as_bytes())  # the same mail read again
    with sessions() as session:
        opened = list(session.scalars(select(Case).where(Case.channel == "email")))
    assert len(opened) == 1
    case = client.get(f"/api/v1/cases/{opened[0].id}", headers=auth(tokens["alice"])).get_json()
    assert case["order_id"] == order["id"] and case["stage"] == "confirm"
    assert "茶叶盒子压坏了" in case["description"] and case["customer"]["locale"] == "zh-CN"


def test_a_mail_from_a_stranger_naming_an_order_is_an_orderless_complaint(
        stack, router, order_system_url):
    _, _, _, sessions = stack
    order = an_order_with_email(order_system_url)
    message = mail(f"I saw order {order['id']} on a receipt; your staff were rude.",
                   sender="Someone <someone@elsewhere.example>", subject="Rude staff")
    router.handle(message.as_bytes())
    row = case_of(sessions, mail_case(stack, message))
    assert row.order_id == "" and row.kind == "complaint" and row.stage == "confirm"
    assert row.data["customer"]["email"] == "someone@elsewhere.example"


def opened_case(stack, router, sender: str = "li.na@customer.example") -> Case:
    first = mail("My kettle leaks.", sender=f"Li Na <{sender}>", subject="Kettle")
    router.handle(first.as_bytes())
    return case_of(stack[3], mail_case(stack, first))


def notification_id(stack, row: Case, template: str = "case_opened") -> str:
    app, _, _, sessions = stack
    with sessions() as session:
        key = session.scalars(select(OutboxMessage.key).where(
            OutboxMessage.case_id == row.id, OutboxMessage.template == template)).one()
    return message_id(key, row.data["customer"]["email"], app.extensions["aftersales"].settings)


def test_an_answer_to_a_notification_is_the_customers_message(stack, router):
    _, client, tokens, _ = stack
    row = opened_case(stack, router)
    headers = auth(tokens["alice"])
    client.post(f"/api/v1/cases/{row.id}/request-info", json={"question": "Which model?"},
                headers=headers)
    asked = notification_id(stack, row, "info_requested")
    assert case_of_message_id(asked, stack[0].extensions["aftersales"].settings) == row.id
    answer = mail("It is the KT-200.\n\nOn Mon, 1 Dec 2026 at 10:00, Aftersales wrote:\n"
                  "> Which model?\n", sender="LI.NA@customer.example",
                  subject="Re: We need information", In_Reply_To=asked, References=asked)
    answer.add_attachment(png(), maintype="image", subtype="png", filename="kettle.png")
    router.handle(answer.as_bytes())
    case = client.get(f"/api/v1/cases/{row.id}", headers=headers).get_json()
    last = case["messages"][-1]
    assert last["author"] == "customer" and last["channel"] == "email"
    assert last["text"] == "It is the KT-200."  # the quoted history is cut
    assert case["pending_question"] is None and case["awaiting_reply_since"]
    assert [a["filename"] for a in case["attachments"]] == ["kettle.png"]
    assert last["attachments"] == [case["attachments"][0]["id"]]
    router.handle(answer.as_bytes())  # read again: one message
    again = client.get(f"/api/v1/cases/{row.id}", headers=headers).get_json()
    assert len(again["messages"]) == len(case["messages"])


def test_the_case_id_in_the_subject_routes_chinese_mail_and_strips_its_quote(stack, router):
    _, client, tokens, _ = stack
    row = opened_case(stack, router, "zhang@customer.example")
    reply = mail("好的，谢谢。\n\n在 2026年12月1日 10:00，客服 <service@shop.example> 写道：\n"
                 "> 您好\n", sender="zhang@customer.example",
                 subject=f"回复：您的工单 [{row.id}]", charset="gb2312")
    router.handle(reply.as_bytes())
    case = client.get(f"/api/v1/cases/{row.id}", headers=auth(tokens["alice"])).get_json()
    assert case["messages"][-1]["text"] == "好的，谢谢。"


def test_a_forged_case_id_from_another_address_is_a_note_for_staff(stack, router):
    _, client, tokens, _ = stack
    row = opened_case(stack, router)
    forged = mail("Please refund me to this other account.", sender="mallory@evil.example",
                  subject=f"Re: [{row.id}]")
    router.handle(forged.as_bytes())
    case = client.get(f"/api/v1/cases/{row.id}", headers=auth(tokens["alice"])).get_json()
    note = case["messages"][-1]
    assert note["internal"] and note["by"] == "email" and "mallory@evil.example" in note["text"]
    assert case["awaiting_reply_since"] is None  # nobody waits: it is not the customer
    token = case["customer_url"].rsplit("/", 1)[1]
    view = client.get(f"/api/v1/status/{token}").get_json()
    assert "other account" not in str(view["messages"])


def test_auto_replies_bounces_and_bulk_mail_do_nothing(stack, router):
    _, client, tokens, sessions = stack
    row = opened_case(stack, router)
    ours = notification_id(stack, row)
    loops = [
        mail("I am out of office.", sender=row.data["customer"]["email"],
             subject=f"Auto: [{row.id}]", Auto_Submitted="auto-replied", In_Reply_To=ours),
        mail("Delivery failed.", sender="MAILER-DAEMON@customer.example",
             subject=f"Undelivered Mail Returned to Sender [{row.id}]"),
        mail("Our newsletter", sender="news@shop.example", subject="Sale!",
             Precedence="bulk"),
    ]
    before = client.get(f"/api/v1/cases/{row.id}", headers=auth(tokens["alice"])).get_json()
    for message in loops:
        router.handle(message.as_bytes())
    after = client.get(f"/api/v1/cases/{row.id}", headers=auth(tokens["alice"])).get_json()
    assert after["messages"] == before["messages"]
    with sessions() as session:
        assert session.scalar(select(Case).where(Case.channel == "email", Case.id != row.id)) \
            is None
        outcomes = [r.outcome for r in session.scalars(select(InboundMailRecord))]
    assert sum(o.startswith("ignored") for o in outcomes) == 3


def test_a_30_mb_attachment_is_named_not_attached_and_the_text_kept(stack, router):
    _, client, tokens, _ = stack
    row = opened_case(stack, router)
    big = mail("Here is the video.", sender=row.data["customer"]["email"],
               subject=f"[{row.id}] video")
    big.add_attachment(b"\0" * (30 * 1024 * 1024), maintype="video", subtype="mp4",
                       filename="unboxing.mp4")
    router.handle(big.as_bytes())
    case = client.get(f"/api/v1/cases/{row.id}", headers=auth(tokens["alice"])).get_json()
    text = case["messages"][-1]["text"]
    assert text.startswith("Here is the video.") and "not attached: unboxing.mp4" in text
    assert case["attachments"] == []


def test_mail_without_text_or_readable_mime_opens_nothing(stack, router):
    _, _, _, sessions = stack
    only_file = EmailMessage()
    only_file["From"] = "pic@customer.example"
    only_file["Message-ID"] = make_msgid()
    only_file.add_attachment(png(), maintype="image", subtype="png", filename="box.png")
    router.handle(only_file.as_bytes())
    photo_case = case_of(sessions, mail_case(stack, only_file))
    assert [a["filename"] for a in photo_case.data["attachments"]] == ["box.png"]
    garbage = b"\x00\xff" * 100 + b"\r\n\r\n--not a boundary"
    router.handle(garbage)
    with sessions() as session:
        outcomes = {r.outcome.split(":")[0] for r in session.scalars(select(InboundMailRecord))}
    assert "unreadable" in outcomes or "ignored" in outcomes


def test_mail_arrives_by_smtp_and_by_imap(stack, router, imap):  # noqa: F811
    _, client, tokens, sessions = stack
    with SmtpReceiver(router.handle) as receiver:
        first = mail("The lid is cracked.", sender="smtp@customer.example", subject="Lid")
        with smtplib.SMTP(receiver.host, receiver.port, timeout=30) as smtp:
            smtp.send_message(first)
    row = case_of(sessions, mail_case(stack, first))
    mailbox = imap.new_mailbox()
    answer = mail("Photo to follow.", sender="smtp@customer.example",
                  subject=f"Re: Lid [{row.id}]")
    imap.append(mailbox, answer.as_bytes())
    report = imap.poller(mailbox, sessions).poll(router.handle)
    assert report is not None
    case = client.get(f"/api/v1/cases/{row.id}", headers=auth(tokens["alice"])).get_json()
    assert case["messages"][-1]["text"] == "Photo to follow."
    imap.poller(mailbox, sessions).poll(router.handle)  # nothing read twice
    again = client.get(f"/api/v1/cases/{row.id}", headers=auth(tokens["alice"])).get_json()
    assert len(again["messages"]) == len(case["messages"])


def test_a_cancelled_case_takes_no_mail_a_new_case_opens(stack, router):
    _, client, tokens, sessions = stack
    row = opened_case(stack, router)
    client.post(f"/api/v1/cases/{row.id}/cancel", json={"reason": "duplicate"},
                headers=auth(tokens["alice"]))
    late = mail("Still broken!", sender=row.data["customer"]["email"],
                subject=f"Re: [{row.id}]")
    router.handle(late.as_bytes())
    new = case_of(sessions, mail_case(stack, late))
    assert new.id != row.id and new.stage == "confirm"



def test_mail_about_a_merged_duplicate_goes_to_the_case_it_was_merged_into(stack, router):
    _, client, tokens, sessions = stack
    first = opened_case(stack, router, "twice@customer.example")
    second = opened_case(stack, router, "twice@customer.example")
    assert second.id != first.id and second.customer_id == first.customer_id
    merged = client.post(f"/api/v1/cases/{second.id}/merge", json={"into": first.id},
                         headers=auth(tokens["alice"]))
    assert merged.status_code == 200, merged.get_json()
    late = mail("Any news?", sender="twice@customer.example", subject=f"Re: [{second.id}]")
    router.handle(late.as_bytes())
    case = client.get(f"/api/v1/cases/{first.id}", headers=auth(tokens["alice"])).get_json()
    assert (case["messages"][-1]["author"], case["messages"][-1]["text"]) == (
        "customer", "Any news?")
    assert case_of(sessions, second.id).data["messages"] == []
    with sessions() as session:  # and no new case was opened for it
        assert session.get(Case, mail_case(stack, late)) is None


def test_a_long_display_name_is_clipped_and_the_outcome_fits_every_database(stack, router):
    _, _, _, sessions = stack
    message = mail("Broken lid.", sender=f"{'Ω' * 300} <long@customer.example>",
                   subject="Lid")
    router.handle(message.as_bytes())
    row = case_of(sessions, mail_case(stack, message))
    assert len(row.data["customer"]["name"]) <= 200


def test_mail_outcomes_of_any_length_are_recorded(database_url):
    from datetime import UTC, datetime

    from db import mail as mail_store
    from db.engine import make_engine, make_sessionmaker, migrate

    migrate(database_url)
    sessions = make_sessionmaker(make_engine(database_url))
    outcome = "opened: order SO-10001, 0 file(s); its case AS-2345678923 takes no more"
    assert mail_store.record(sessions, "<k@x>", outcome, None, datetime.now(UTC))
    assert not mail_store.record(sessions, "<k@x>", outcome, None, datetime.now(UTC))


def test_a_system_down_never_makes_a_mail_skipped(stack, router, imap, monkeypatch):  # noqa: F811
    from aftersales import mailin
    from web.gateway import TemporalUnavailable

    _, _, _, sessions = stack
    mailbox = imap.new_mailbox()
    waiting = mail("Please call me.", sender="down@customer.example", subject="Call")
    imap.append(mailbox, waiting.as_bytes())

    def down(*args, **kwargs):
        raise TemporalUnavailable("no Temporal")

    monkeypatch.setattr(router._state.gateway, "open_case", down)
    for _ in range(8):  # more polls than a poisonous mail is given
        with pytest.raises(mailin.RetryLater):
            imap.poller(mailbox, sessions).poll(router.handle)
    monkeypatch.undo()
    imap.poller(mailbox, sessions).poll(router.handle)
    assert case_of(sessions, mail_case(stack, waiting)).channel == "email"
