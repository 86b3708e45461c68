"""Inbound mail (aftersales/mailin.py): bytes to a clean InboundMail, whatever the
charset or the client, never an exception; the IMAP poller against a real IMAP server
(pymap, on 127.0.0.1) with its cursor in the database; the development SMTP receiver."""

from __future__ import annotations

import base64
import datetime as dt
import imaplib
import importlib.util
import ipaddress
import logging
import os
import smtplib
import ssl
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from aftersales import mailin
from aftersales.devstack import free_port, wait_for_port
from aftersales.mailin import (
    ImapPoller,
    SmtpReceiver,
    case_ids_in,
    decode_words,
    dedupe_key,
    html_to_text,
    order_numbers_in,
    parse,
    referenced_ids,
    strip_quotes,
)
from aftersales.settings import MB, Settings
from db import mail as mail_store
from db.engine import make_engine, make_sessionmaker
from db.models import MailCursor

LIMIT = 10 * MB


def b64(text: str, charset: str) -> str:
    return base64.b64encode(text.encode(charset)).decode("ascii")


def raw_mail(body: bytes, *, charset: str | None = "utf-8", cte: str = "8bit",
             subject: str = "Hello", extra: str = "", content_type: str = "text/plain",
             sender: str = "Customer <customer@example.com>") -> bytes:
    """A one-part mail written by hand, byte for byte, as a mail client would."""
    ctype = f"{content_type}; charset={charset}" if charset else content_type
    head = (f"From: {sender}\r\nTo: support@shop.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.com>\r\n"
            f"Date: Tue, 03 Dec 2024 10:00:00 +0800\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n{extra}\r\n")
    return head.encode("ascii") + body


def built(text: str = "Hello", **headers: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = headers.pop("From", "Customer <customer@example.com>")
    mail["To"] = "support@shop.test"
    mail["Subject"] = headers.pop("Subject", "Broken kettle")
    mail["Message-ID"] = headers.pop("Message_ID", f"<{uuid.uuid4().hex}@example.com>")
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(text)
    return mail


# ------------------------------------------------------------ charsets


GBK_ONLY = "朱镕基说：壶坏了"  # 镕 is in GBK, not in GB2312
CHARSET_BODIES = [
    # (label, bytes as the client wrote them, the text they are)
    ("gb2312", "您好，水壶坏了。".encode("gb2312"), "您好，水壶坏了。"),
    ("gb2312", GBK_ONLY.encode("gbk"), GBK_ONLY),
    ("GBK", GBK_ONLY.encode("gbk"), GBK_ONLY),
    ("gb18030", "表情𠀀和€".encode("gb18030"), "表情𠀀和€"),
    ("big5", "您好，水壺壞了。".encode("big5"), "您好，水壺壞了。"),
    ("big5", "價格€100，碁".encode("cp950"), "價格€100，碁"),
    ("utf-8", "Grüße, 水壶坏了 ✓".encode(), "Grüße, 水壶坏了 ✓"),
    ("iso-8859-1", "Café crème".encode("cp1252"), "Café crème"),
    ("us-ascii", "actually utf-8: 水壶".encode(), "actually utf-8: 水壶"),
    ("utf-8", GBK_ONLY.encode("gbk"), GBK_ONLY),  # labelled UTF-8, really GBK
    (None, "no label: 水壶坏了".encode("gbk"), "no label: 水壶坏了"),
]


@pytest.mark.parametrize(("charset", "body", "expected"), CHARSET_BODIES)
def test_bodies_decode_in_their_charset_and_its_usual_supersets(charset, body, expected):
    mail = parse(raw_mail(body, charset=charset), max_bytes=LIMIT)
    assert mail.problem is None
    assert mail.text == expected


@pytest.mark.parametrize("cte", ["base64", "quoted-printable"])
def test_transfer_encodings_decode_before_the_charset(cte):
    import quopri

    data = GBK_ONLY.encode("gbk")
    body = base64.encodebytes(data) if cte == "base64" else quopri.encodestring(data)
    assert parse(raw_mail(body, charset="gb2312", cte=cte), max_bytes=LIMIT).text == GBK_ONLY


def test_an_unknown_or_wrong_charset_gives_replacement_characters_not_an_error():
    unknown = parse(raw_mail(b"caf\xe9 \xff\xfe ok", charset="x-no-such-charset"),
                    max_bytes=LIMIT)
    assert unknown.problem is None
    assert unknown.text.startswith("caf") and unknown.text.endswith(" ok")
    assert "\ufffd" in unknown.text
    wrong = parse(raw_mail(b"\x81\x30 broken \xff", charset="gb18030"), max_bytes=LIMIT)
    assert "broken" in wrong.text and "\ufffd" in wrong.text


@pytest.mark.parametrize(("subject", "expected"), [
    (f"=?big5?B?{b64('退貨申請：水壺', 'big5')}?=", "退貨申請：水壺"),
    (f"=?GB18030?B?{b64('退货𠀀申请', 'gb18030')}?=", "退货𠀀申请"),
    (f"=?gb2312?B?{b64(GBK_ONLY, 'gbk')}?=", GBK_ONLY),
    ("Re: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus?= Berlin", "Re: Grüße aus Berlin"),
    # Two encoded words: the whitespace between them is not part of the subject.
    (f"=?utf-8?B?{b64('水壶', 'utf-8')}?= =?utf-8?B?{b64('坏了', 'utf-8')}?=", "水壶坏了"),
    ("Plain subject [AS-ABCDEFGH23]", "Plain subject [AS-ABCDEFGH23]"),
    ("=?utf-8?B?not*base64?= stays", "=?utf-8?B?not*base64?= stays"),
])
def test_encoded_word_subjects(subject, expected):
    assert parse(raw_mail(b"x", subject=subject), max_bytes=LIMIT).subject == expected


def test_a_multibyte_character_split_between_two_encoded_words_survives():
    data = "申请退货".encode("gb18030")  # 8 bytes; cut in the middle of 请
    first, second = data[:3], data[3:]
    subject = (f"=?gb18030?B?{base64.b64encode(first).decode()}?=\r\n"
               f" =?gb18030?B?{base64.b64encode(second).decode()}?=")
    assert parse(raw_mail(b"x", subject=subject), max_bytes=LIMIT).subject == "申请退货"


def test_sender_is_lower_cased_and_its_name_decoded():
    name = f"=?gb2312?B?{b64('张三丰', 'gbk')}?="
    mail = parse(raw_mail(b"x", sender=f"{name} <Zhang.San@Example.COM>"), max_bytes=LIMIT)
    assert (mail.sender, mail.sender_name) == ("zhang.san@example.com", "张三丰")


def test_raw_utf8_and_gbk_headers_decode():
    head = ("From: 李四 <li@example.com>\r\nSubject: 水壶坏了\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nbody").encode()
    mail = parse(head, max_bytes=LIMIT)
    assert (mail.subject, mail.sender_name, mail.sender) == ("水壶坏了", "李四", "li@example.com")
    gbk = b"From: li@example.com\r\nSubject: " + GBK_ONLY.encode("gbk") + b"\r\n\r\nx"
    assert parse(gbk, max_bytes=LIMIT).subject == GBK_ONLY


def test_the_fields_of_a_mail():
    mail = built("Hello, my kettle is broken.", Subject="Re: [AS-ABCDEFGH23] kettle",
                 Message_ID="<m1@example.com>", In_Reply_To="<AS-X.3.1.ab12@shop.test>",
                 References="<a@x> <AS-X.3.1.ab12@shop.test>",
                 Cc="Other <Other@Example.com>")
    mail.add_attachment(b"%PDF-1.4 receipt", maintype="application", subtype="pdf",
                        filename="发票.pdf")
    parsed = parse(mail.as_bytes(), max_bytes=LIMIT)
    assert parsed.message_id == "<m1@example.com>"
    assert parsed.in_reply_to == "<AS-X.3.1.ab12@shop.test>"
    assert parsed.references == ["<a@x>", "<AS-X.3.1.ab12@shop.test>"]
    assert (parsed.sender, parsed.sender_name) == ("customer@example.com", "Customer")
    assert parsed.to == ["support@shop.test"] and parsed.cc == ["other@example.com"]
    assert parsed.subject == "Re: [AS-ABCDEFGH23] kettle"
    assert parsed.text == "Hello, my kettle is broken."
    assert parsed.attachments == [("发票.pdf", b"%PDF-1.4 receipt", "application/pdf")]
    assert (parsed.automatic, parsed.problem, parsed.too_large) == (None, None, [])
    assert dedupe_key(parsed) == "<m1@example.com>"


def test_attachment_names_in_rfc2231_and_encoded_words():
    raw = (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
           b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee the files\r\n"
           b"--b\r\nContent-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename*=gb18030''%D5%D5%C6%AC.jpg\r\n\r\n"
           b"/9j/4AAQ\r\n"
           b"--b\r\nContent-Type: application/pdf; name=\"=?GBK?B?"
           + b64("发票.pdf", "gbk").encode() + b"?=\"\r\nContent-Transfer-Encoding: base64"
           b"\r\n\r\nJVBERi0=\r\n"
           b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           b"iVBORw0K\r\n--b--\r\n")
    mail = parse(raw, max_bytes=LIMIT)
    assert mail.text == "see the files"
    assert [(a.filename, a.content_type) for a in mail.attachments] == [
        ("照片.jpg", "image/jpeg"), ("发票.pdf", "application/pdf"),
        ("part-4.png", "image/png")]
    assert mail.attachments[0].data.startswith(b"\xff\xd8\xff")


# ------------------------------------------------------------ HTML, no text


def test_html_only_mail_gives_its_text_without_script_or_style():
    html = ("<html><head><title>t</title><style>p {color: red}</style></head><body>"
            "<p>您好，</p><p>水壶&nbsp;坏了&amp;漏水。<br>订单 SO-10001</p>"
            "<script>alert('x')</script><div>谢谢</div>"
            "<div class=\"gmail_quote\"><div>On Mon, 2 Dec 2024 at 10:00, Shop "
            "&lt;support@shop.test&gt; wrote:</div><blockquote>Your case is open."
            "<br>Regards</blockquote></div></body></html>")
    mail = parse(raw_mail(html.encode("gbk"), charset="gb2312", content_type="text/html"),
                 max_bytes=LIMIT)
    assert mail.text == "您好，\n\n水壶 坏了&漏水。\n订单 SO-10001\n\n谢谢"
    assert "alert" not in mail.full_text and "color" not in mail.full_text
    assert "> Your case is open." in mail.full_text


@pytest.mark.parametrize(("html", "expected"), [
    # Outlook on the web: the history under a header block in bold.
    ('<div>Still broken, see photo.</div><div><br></div><hr style="width:98%">'
     '<div id="divRplyFwdMsg"><font face="Calibri"><b>From:</b> Shop &lt;support@shop.test'
     '&gt;<br><b>Sent:</b> Monday, December 2, 2024 10:00<br><b>To:</b> me<br>'
     '<b>Subject:</b> case</font></div><div>Your case is open.</div>',
     "Still broken, see photo."),
    # QQ Mail: its separator line, then the quoted headers and text unquoted.
    ('<div>收到，谢谢</div><div><br></div><div style="font-size: 12px;">------------------'
     '&nbsp;原始邮件&nbsp;------------------</div><div style="background:#efefef;"><div>'
     '<b>发件人:</b>&nbsp;"售后"&lt;support@shop.test&gt;;</div><div><b>发送时间:</b>&nbsp;'
     '2024年12月2日(星期一) 上午10:00</div></div><div>您的工单已受理</div>', "收到，谢谢"),
])
def test_html_replies_of_common_clients_lose_their_history(html, expected):
    mail = parse(raw_mail(html.encode(), content_type="text/html"), max_bytes=LIMIT)
    assert mail.text == expected


def test_html_with_its_charset_only_in_a_meta_tag():
    html = '<meta charset="gbk"><p>朱镕基</p>'.encode("gbk")
    assert parse(raw_mail(html, charset=None, content_type="text/html"),
                 max_bytes=LIMIT).text == "朱镕基"


def test_the_plain_alternative_is_preferred_over_the_html():
    mail = built("plain words")
    mail.add_alternative("<p>html words</p>", subtype="html")
    parsed = parse(mail.as_bytes(), max_bytes=LIMIT)
    assert parsed.text == "plain words" and parsed.attachments == []


def test_a_mail_with_only_an_attachment_has_empty_text():
    mail = EmailMessage()
    mail["From"] = "customer@example.com"
    mail["Subject"] = "photo"
    mail.set_content(b"\xff\xd8\xff\xe0JFIF", maintype="image", subtype="jpeg",
                     filename="broken.jpg")
    parsed = parse(mail.as_bytes(), max_bytes=LIMIT)
    assert parsed.text == "" and parsed.problem is None
    assert parsed.attachments == [("broken.jpg", b"\xff\xd8\xff\xe0JFIF", "image/jpeg")]


def test_an_attached_mail_is_a_file_not_the_text():
    inner = built("the courier's mail", Subject="Delivery failed")
    outer = built("Forwarding what the courier said.")
    outer.add_attachment(inner)
    parsed = parse(outer.as_bytes(), max_bytes=LIMIT)
    assert parsed.text == "Forwarding what the courier said."
    [attached] = parsed.attachments
    assert attached.content_type == "message/rfc822"
    assert b"the courier's mail" in attached.data


def test_flowed_text_is_joined_back_into_paragraphs():
    body = b"This is a long line \r\nthat was wrapped.\r\n> quoted \r\n> on\r\n-- \r\nsig"
    mail = parse(raw_mail(body, charset="utf-8; format=flowed"), max_bytes=LIMIT)
    assert mail.text == "This is a long line that was wrapped."


def test_control_characters_and_bidi_overrides_are_removed():
    mail = parse(raw_mail("a\x00b\x1bc \u202eevil\u202c ok".encode()), max_bytes=LIMIT)
    assert mail.text == "abc evil ok"


# ------------------------------------------------------------ quote stripping


@pytest.mark.parametrize(("text", "expected"), [
    ("Still broken.\n\nOn Mon, Dec 2, 2024 at 10:00 AM Shop <support@shop.test> wrote:\n"
     "> Your case is open.\n> Regards", "Still broken."),
    ("Still broken.\n\nOn Mon, Dec 2, 2024 at 10:00 AM Aftersales Support <\n"
     "support@shop.test> wrote:\n\n> Your case is open.", "Still broken."),
    ("Still broken.\n\nOn 2 Dec 2024, at 10:00, Shop wrote:\n\nYour case is open.\n",
     "Still broken."),
    ("Still broken.\n\n-----Original Message-----\nFrom: Shop\nSent: Monday\n"
     "Subject: case\n\nYour case is open.", "Still broken."),
    ("Still broken.\n\n________________________________\nFrom: Shop <support@shop.test>\n"
     "Sent: Monday, December 2, 2024 10:00 AM\nTo: me\nSubject: case\n\nYour case is open.",
     "Still broken."),
    ("Still broken.\n\n*From:* Shop\n*Date:* 2 Dec 2024\n*Subject:* case\n\nOld",
     "Still broken."),
    ("Still broken.\n-- \nZhang San\nACME Ltd.", "Still broken."),
    ("> Is it still broken?\nYes, still broken.\n> Did you try resetting?\nYes.",
     "Yes, still broken.\nYes."),
    ("On Mon, Shop wrote:\n> Is it broken?\n\nYes, it is.", "Yes, it is."),
    ("东西还是坏的。\n\n在 2024年12月2日 星期一 10:00，售后客服 <support@shop.test> 写道：\n"
     "> 您的工单已受理。", "东西还是坏的。"),
    ("东西还是坏的。\n\n在 2024年12月2日 星期一 10:00，售后客服\n<support@shop.test> 写道：\n"
     "> 您的工单已受理。", "东西还是坏的。"),
    ("东西还是坏的。\n于 2024-12-02 10:00:00，\"售后客服\" <support@shop.test> 写道:\n"
     "您的工单已受理。", "东西还是坏的。"),
    ("东西还是坏的。\n\n------------------ 原始邮件 ------------------\n发件人: 售后\n"
     "发送时间: 2024年12月2日\n主题: 工单\n\n您的工单已受理。", "东西还是坏的。"),
    ("东西还是坏的。\n\n-----原始邮件-----\n发件人: 售后\n\n您的工单已受理。", "东西还是坏的。"),
    ("东西还是坏的。\n\n发件人: 售后客服 <support@shop.test>\n发送时间: 2024年12月2日 10:00\n"
     "收件人: 我\n主题: 工单\n\n您的工单已受理。", "东西还是坏的。"),
    ("东西还是坏的。\n2024年12月2日 10:00，售后客服 <support@shop.test> 写道：\n> 您好",
     "东西还是坏的。"),
    ("Nothing quoted here.\nOn the whole it works, but the lid is loose.",
     "Nothing quoted here.\nOn the whole it works, but the lid is loose."),
])
def test_quoted_history_is_cut(text, expected):
    assert strip_quotes(text) == expected


def test_a_forwarded_mail_the_customer_meant_to_show_is_kept():
    text = ("See what the courier wrote:\n\n---------- Forwarded message ---------\n"
            "From: Courier <noreply@courier.test>\nDate: Mon, 2 Dec 2024\n"
            "Subject: Parcel lost\n\nWe lost your parcel.")
    assert strip_quotes(text) == text


def test_quote_stripping_applies_to_parsed_mail_and_keeps_the_full_text():
    parsed = parse(built("Yes.\n\nOn Mon, Shop wrote:\n> Still broken?").as_bytes(),
                   max_bytes=LIMIT)
    assert parsed.text == "Yes."
    assert parsed.full_text == "Yes.\n\nOn Mon, Shop wrote:\n> Still broken?"


# ------------------------------------------------------------ malformed mail


MALFORMED = {
    "broken boundary": (b"From: a@example.com\r\nContent-Type: multipart/mixed; "
                        b"boundary=\"nothere\"\r\n\r\n--other\r\nContent-Type: text/plain"
                        b"\r\n\r\nhello\r\n--other--\r\n", "boundary"),
    "no boundary parameter": (b"From: a@example.com\r\nContent-Type: multipart/mixed\r\n\r\n"
                              b"hello\r\n", "boundary"),
    "bad base64": (raw_mail(b"!!!! this is ### not base64 $$$$\r\n", cte="base64"),
                   "base64"),
    "missing headers": (b"Subject: who sent this\r\n\r\nhello", "no sender"),
    "binary garbage": (bytes(range(256)) * 20, "no headers"),
    "empty": (b"", "no headers"),
    "a header with no end": (b"From: a@example.com\r\nContent-Type: text/plain; "
                             b"charset=\"utf-8\r\n", None),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_mail_gives_a_problem_not_an_exception(name):
    raw, problem = MALFORMED[name]
    mail = parse(raw, max_bytes=LIMIT)
    if problem is None:
        assert mail.problem is None
    else:
        assert mail.problem is not None and problem in mail.problem, mail.problem


def test_bad_base64_in_an_attachment_keeps_the_text_and_says_which_part():
    raw = (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nthe words\r\n--b\r\n"
           b"Content-Type: image/jpeg; name=x.jpg\r\nContent-Transfer-Encoding: base64\r\n"
           b"\r\n%%%%garbage!!\r\n--b--\r\n")
    mail = parse(raw, max_bytes=LIMIT)
    assert mail.text == "the words"
    assert mail.problem is not None and mail.problem.startswith("x.jpg: damaged base64")


def test_a_missing_closing_boundary_is_no_problem():
    raw = (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nthe words\r\n")
    mail = parse(raw, max_bytes=LIMIT)
    assert (mail.text, mail.problem) == ("the words", None)
    assert "CloseBoundaryNotFoundDefect" in mail.defects


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000) | st.builds(
    lambda head, body: head + b"\r\n\r\n" + body,
    st.sampled_from([b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=x",
                     b"From: =?gb2312?B?zpLDcw==?= <a@b.c>\r\nSubject: =?utf-8?Q?=E6=",
                     b"Content-Type: text/html; charset=big5\r\nFrom: <>"]),
    st.binary(max_size=2000)))
def test_parse_never_raises(raw):
    mail = parse(raw, max_bytes=1000)
    assert isinstance(mail.text, str)


# ------------------------------------------------------------ parts over the limit


def test_a_30_mb_attachment_is_skipped_without_being_decoded_and_the_text_kept():
    photo = os.urandom(30 * MB)
    raw = (b"From: Customer <customer@example.com>\r\nSubject: video\r\n"
           b"Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n"
           b"--=_b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           + "视频在附件里。".encode() + b"\r\n"
           b"--=_b\r\nContent-Type: video/mp4; name=\"fault.mp4\"\r\n"
           b"Content-Disposition: attachment; filename=\"fault.mp4\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(photo).replace(b"\n", b"\r\n")
           + b"--=_b\r\nContent-Type: image/png; name=small.png\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--=_b--\r\n")
    del photo
    tracemalloc.start()
    try:
        mail = parse(raw, max_bytes=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MB, f"parsing took {peak / MB:.1f} MB for a {len(raw) / MB:.0f} MB mail"
    assert mail.text == "视频在附件里。" and mail.problem is None
    [big] = mail.too_large
    assert (big.filename, big.content_type) == ("fault.mp4", "video/mp4")
    assert abs(big.size - 30 * MB) < 1024
    assert "fault.mp4" in big.reason and "10.0 MB limit" in big.reason
    assert [a.filename for a in mail.attachments] == ["small.png"]


def test_a_part_just_over_the_limit_after_decoding_is_refused_too():
    mail = built("words")
    mail.add_attachment(b"x" * 2000, maintype="application", subtype="pdf", filename="a.pdf")
    mail.add_attachment(b"y" * 500, maintype="application", subtype="pdf", filename="b.pdf")
    parsed = parse(mail.as_bytes(), max_bytes=1000)
    assert [t.filename for t in parsed.too_large] == ["a.pdf"]
    assert [a.filename for a in parsed.attachments] == ["b.pdf"]
    assert parsed.text == "words"


def test_a_single_part_mail_over_the_limit_keeps_its_headers():
    raw = raw_mail(base64.encodebytes(b"z" * 5000), content_type="application/pdf",
                   charset=None, cte="base64", subject="big")
    mail = parse(raw, max_bytes=1000)
    assert mail.subject == "big" and mail.sender == "customer@example.com"
    assert [t.size for t in mail.too_large] == [5000]


def test_a_forged_omission_header_hides_nothing():
    mail = built("words")
    mail.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="a.pdf")
    raw = mail.as_bytes().replace(b"Content-Disposition: attachment",
                                  b"X-Aftersales-Omitted: 0123456789abcdef 99\r\n"
                                  b"Content-Disposition: attachment")
    parsed = parse(raw, max_bytes=LIMIT)
    assert parsed.too_large == [] and [a.data for a in parsed.attachments] == [b"%PDF"]


# ------------------------------------------------------------ loop protection


@pytest.mark.parametrize(("headers", "why"), [
    ({"Auto_Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
    ({"Auto_Submitted": "auto-generated; owner-email=x@y"}, "Auto-Submitted: auto-generated"),
    ({"Precedence": "bulk"}, "Precedence: bulk"),
    ({"Precedence": "junk"}, "Precedence: junk"),
    ({"Precedence": "list"}, "Precedence: list"),
    ({"List_Id": "<offers.shop.test>"}, "list-id"),
    ({"List_Unsubscribe": "<mailto:unsub@shop.test>"}, "list-unsubscribe"),
    ({"From": "MAILER-DAEMON@mx.example.com"}, "mailer-daemon@mx.example.com"),
    ({"From": "Mail System <postmaster@example.com>"}, "postmaster@example.com"),
    ({"X_Autoreply": "yes"}, "x-autoreply"),
    ({"X_Autorespond": "Out of office"}, "x-autorespond"),
    ({"Return_Path": "<>"}, "Return-Path: <>"),
    ({"Subject": "自动回复: 您的工单"}, "subject"),
    ({"Subject": "Automatic reply: your case"}, "subject"),
])
def test_automatic_mail_is_recognised_by_each_header(headers, why):
    mail = parse(built("I am away.", **headers).as_bytes(), max_bytes=LIMIT)
    assert mail.automatic is not None and why in mail.automatic


def test_a_delivery_status_report_is_automatic():
    raw = (b"From: Mail Delivery System <bounces@mx.example.com>\r\nSubject: Undelivered\r\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n"
           b"--r\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
           b"--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n"
           b"\r\nFinal-Recipient: rfc822; x@y\r\nAction: failed\r\n--r--\r\n")
    mail = parse(raw, max_bytes=LIMIT)
    assert mail.automatic is not None and "multipart/report" in mail.automatic


@pytest.mark.parametrize("headers", [{}, {"Auto_Submitted": "no"}, {"Precedence": "normal"},
                                     {"Subject": "The automatic reply did not help"}])
def test_mail_a_person_wrote_is_not_automatic(headers):
    assert parse(built("Still broken.", **headers).as_bytes(), max_bytes=LIMIT).automatic is None


def test_our_own_notifications_coming_back_are_automatic():
    """The SMTP sender marks what we send; a copy that loops back is never a reply."""
    from activities.senders import OutgoingMessage, SmtpSender

    captured: list[bytes] = []
    with SmtpReceiver(captured.append) as receiver:
        s = Settings(smtp_host="127.0.0.1", smtp_port=receiver.port,
                     smtp_from="Aftersales <aftersales@shop.test>")
        SmtpSender(s).send(OutgoingMessage(
            key="AS-X:3", message_id="<AS-X.3.ab@shop.test>", medium="email",
            to="customer@example.com", to_name="Customer", locale="en",
            subject="Case AS-X", body="Your case"))
    assert parse(captured[0], max_bytes=LIMIT).automatic == "Auto-Submitted: auto-generated"


# ------------------------------------------------------------ for the router


def test_case_ids_match_exactly_the_ids_intake_makes():
    from web.intake import new_case_id

    ids = [new_case_id() for _ in range(50)]
    assert case_ids_in(" ".join(f"Re: [{i}]" for i in ids)) == ids
    assert case_ids_in("Re: [AS-ABCDEFGH23] and again [AS-ABCDEFGH23]") == ["AS-ABCDEFGH23"]
    for near_miss in ("AS-ABCDEFGH23", "[AS-ABCDEFGH2]", "[AS-ABCDEFGH234]",
                      "[as-abcdefgh23]", "[AS-ABCDEFGH0I]", "[AS-ABCDEFGH1O]",
                      "[XS-ABCDEFGH23]", "[ AS-ABCDEFGH23 ]"):
        assert case_ids_in(near_miss) == [], near_miss


def test_order_numbers_by_the_default_pattern_find_the_simulators_orders():
    from simulators.order_system import demo_orders

    pattern = Settings().mail_order_pattern
    orders = list(demo_orders(dt.datetime.now(dt.UTC)))
    text = f"订单号{orders[0]}的水壶坏了，还有 {orders[1]}。(not XSO-10001 or SO-123456789-2)"
    assert order_numbers_in(text, pattern)[:2] == orders[:2]
    assert "SO-10001" not in order_numbers_in("XSO-10001", pattern)
    assert order_numbers_in("订单ＳＯ－１０００３到了", pattern) == ["SO-10003"]
    assert order_numbers_in("order #4711 and #4712", r"#(\d{4})") == ["4711", "4712"]
    assert order_numbers_in(f"{orders[0]} {orders[0]}", pattern) == [orders[0]]


def test_referenced_ids_find_our_notification_message_ids():
    from activities.senders import message_id

    ours = message_id("AS-ABCDEFGH23:4", "customer@example.com",
                      Settings(smtp_from="Aftersales <aftersales@shop.test>"))
    mail = parse(built("Thanks", In_Reply_To=ours,
                       References=f"<first@shop.test> {ours}").as_bytes(), max_bytes=LIMIT)
    assert referenced_ids(mail) == [ours, "<first@shop.test>"]


def test_the_dedupe_key_without_a_message_id_is_the_hash_of_the_bytes():
    raw = b"From: a@example.com\r\n\r\nhello"
    mail = parse(raw, max_bytes=LIMIT)
    assert mail.message_id is None
    assert dedupe_key(mail) == dedupe_key(parse(raw, max_bytes=LIMIT))
    assert dedupe_key(mail) != dedupe_key(parse(raw + b"!", max_bytes=LIMIT))
    assert dedupe_key(mail).startswith("sha256:") and len(dedupe_key(mail)) <= 255


def test_the_router_records_a_mail_once(sqlite_url):
    sessions = make_sessionmaker(make_engine(sqlite_url))
    now = dt.datetime.now(dt.UTC)
    assert mail_store.record(sessions, "<m1@x>", "message", "AS-ABCDEFGH23", now)
    assert not mail_store.record(sessions, "<m1@x>", "note", None, now)
    with sessions() as session:
        assert mail_store.seen(session, "<m1@x>") and not mail_store.seen(session, "<m2@x>")


MAIL_SETTINGS = ("imap_url", "imap_starttls", "imap_ca_file", "imap_interval", "mail_in_host",
                 "mail_in_port", "mail_in_max_message", "mail_in_max_part",
                 "mail_order_pattern")


def test_the_mail_in_settings():
    s = Settings.from_env({"AFTERSALES_IMAP_URL": "imaps://u:p%40ss@mail.example.com/INBOX",
                           "AFTERSALES_MAIL_IN_PORT": "2525",
                           "AFTERSALES_MAIL_IN_MAX_MESSAGE": "20MB",
                           "AFTERSALES_IMAP_STARTTLS": "0",
                           "AFTERSALES_IMAP_INTERVAL": "5m",
                           "AFTERSALES_MAIL_ORDER_PATTERN": r"#(\d+)"})
    assert (s.mail_in_port, s.mail_in_max_message, s.imap_starttls, s.imap_interval,
            s.mail_order_pattern) == (2525, 20 * MB, False, 300, r"#(\d+)")
    again = Settings.from_env(s.to_env())
    assert [getattr(again, f) for f in MAIL_SETTINGS] == [getattr(s, f) for f in MAIL_SETTINGS]
    assert mailin.imap_address(s.imap_url).password == "p@ss"
    assert mailin.imap_address(s.imap_url).key == "u@mail.example.com:993/INBOX"
    with pytest.raises(ValueError, match="AFTERSALES_MAIL_ORDER_PATTERN"):
        Settings.from_env({"AFTERSALES_MAIL_ORDER_PATTERN": "SO-(\\d"})
    with pytest.raises(ValueError, match=r"AFTERSALES_IMAP_URL='imap://u:\*\*\*@"):
        mailin.imap_address("imap://u:secret@/x").password  # noqa: B018


def test_mailbox_names_in_modified_utf7():
    assert mailin.imap_utf7("INBOX") == "INBOX"
    assert mailin.imap_utf7("售后") == "&VS5UDg-"
    assert mailin.imap_utf7("A&B") == "A&-B"


# ------------------------------------------------------------ IMAP


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: the poller's STARTTLS verifies it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class Imap:
    """The test IMAP server (pymap, in memory) and a client to put mail in it."""

    user, password = "support", "s3cret"

    def __init__(self, port: int, ca_file: Path) -> None:
        self.port, self.ca_file = port, ca_file

    def client(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        conn.starttls(ssl_context=ssl.create_default_context(cafile=str(self.ca_file)))
        conn.login(self.user, self.password)
        return conn

    def new_mailbox(self) -> str:
        name = f"Support-{uuid.uuid4().hex[:8]}"
        with self.client() as conn:
            assert conn.create(name)[0] == "OK"
        return name

    def append(self, mailbox: str, *mails: bytes) -> None:
        with self.client() as conn:
            for raw in mails:
                assert conn.append(mailbox, None, None, raw)[0] == "OK"

    def recreate(self, mailbox: str) -> None:
        with self.client() as conn:
            assert conn.delete(mailbox)[0] == "OK"
            assert conn.create(mailbox)[0] == "OK"

    def url(self, mailbox: str) -> str:
        return f"imap://{self.user}:{self.password}@127.0.0.1:{self.port}/{mailbox}"

    def poller(self, mailbox: str, sessions, **options) -> ImapPoller:
        return ImapPoller(self.url(mailbox), sessions, ca_file=str(self.ca_file), **options)


@pytest.fixture(scope="module")
def imap(tmp_path_factory) -> Iterator[Imap]:
    """pymap on 127.0.0.1 with STARTTLS: a pure-Python IMAP server from PyPI, so the
    fixture needs no root, no system service and no config outside the test's folder
    (dovecot wants its own users and a config tree; docs/mail-in.md)."""
    # pymap is a test dependency (pyproject's `test` extra): missing, the IMAP tests
    # fail rather than pass unseen.
    assert importlib.util.find_spec("pymap") is not None, (
        "pymap is not installed: pip install -e '.[test]'")
    directory = tmp_path_factory.mktemp("imap")
    cert_file, key_file = _certificate(directory)
    port = free_port()
    log_file = (directory / "pymap.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pymap.main import main; sys.exit(main())",
         "--host", "127.0.0.1", "--port", str(port), "--cert", str(cert_file),
         "--key", str(key_file), "--no-service", "admin", "dict",
         "--demo-user", Imap.user, "--demo-password", Imap.password],
        stdout=log_file, stderr=subprocess.STDOUT)
    try:
        if not wait_for_port("127.0.0.1", port, 30):
            raise RuntimeError("pymap did not start: "
                               + (directory / "pymap.log").read_text(errors="replace"))
        yield Imap(port, cert_file)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log_file.close()


@pytest.fixture
def sessions(sqlite_url):
    engine = make_engine(sqlite_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def numbered(n: int) -> bytes:
    return built(f"mail {n}", Message_ID=f"<n{n}@example.com>").as_bytes()


def test_the_poller_reads_each_mail_once_across_polls_and_restarts(imap, sessions):
    box = imap.new_mailbox()
    imap.append(box, numbered(1), numbered(2), numbered(3))
    got: list[bytes] = []
    poller = imap.poller(box, sessions)
    report = poller.poll(got.append)
    assert [parse(r, max_bytes=LIMIT).text for r in got] == ["mail 1", "mail 2", "mail 3"]
    assert parse(got[0], max_bytes=LIMIT).message_id == "<n1@example.com>"
    assert (report.handled, report.reset) == (3, "first poll")
    assert poller.poll(got.append).handled == 0  # again: nothing new
    assert imap.poller(box, sessions).poll(got.append).handled == 0  # a new poller
    imap.append(box, numbered(4))
    assert imap.poller(box, sessions).poll(got.append).handled == 1
    assert [parse(r, max_bytes=LIMIT).text for r in got] == [
        "mail 1", "mail 2", "mail 3", "mail 4"]
    with sessions() as session:
        [cursor] = session.scalars(select(MailCursor)).all()
    assert cursor.mailbox == f"{imap.user}@127.0.0.1:{imap.port}/{box}"
    assert cursor.last_uid == report.last_uid + 1 and cursor.uidvalidity == report.uidvalidity


def test_a_handler_that_raises_leaves_the_mail_for_the_next_poll(imap, sessions):
    box = imap.new_mailbox()
    imap.append(box, numbered(1), numbered(2), numbered(3))
    got: list[str] = []

    def flaky(raw: bytes) -> None:
        text = parse(raw, max_bytes=LIMIT).text
        if text == "mail 2" and "mail 2" not in failed:
            failed.append(text)
            raise RuntimeError("the router's database is down")
        got.append(text)

    failed: list[str] = []
    with pytest.raises(RuntimeError, match="database is down"):
        imap.poller(box, sessions).poll(flaky)
    assert got == ["mail 1"]
    assert imap.poller(box, sessions).poll(flaky).handled == 2
    assert got == ["mail 1", "mail 2", "mail 3"]


def test_a_mail_the_handler_always_fails_on_is_skipped_after_some_tries(imap, sessions,
                                                                        caplog):
    box = imap.new_mailbox()
    imap.append(box, numbered(1), numbered(2))
    got: list[str] = []

    def poison(raw: bytes) -> None:
        text = parse(raw, max_bytes=LIMIT).text
        if text == "mail 1":
            raise ValueError("cannot route")
        got.append(text)

    for _ in range(3):
        with pytest.raises(ValueError):
            imap.poller(box, sessions, max_failures=3).poll(poison)
    assert got == []
    with caplog.at_level(logging.ERROR, logger="aftersales.mailin"):
        report = imap.poller(box, sessions, max_failures=3).poll(poison)
    assert got == ["mail 2"] and report.skipped[0][1] == "the handler failed on it 3 times"
    assert "skipped" in caplog.text


def test_a_message_over_the_size_limit_is_skipped_unread(imap, sessions):
    box = imap.new_mailbox()
    imap.append(box, built("x" * 5000).as_bytes(), numbered(2))
    got: list[bytes] = []
    report = imap.poller(box, sessions, max_message=2000).poll(got.append)
    assert [parse(r, max_bytes=LIMIT).text for r in got] == ["mail 2"]
    assert "over the" in report.skipped[0][1]


def test_a_new_uidvalidity_starts_over_from_the_newest_mail(imap, sessions, caplog):
    box = imap.new_mailbox()
    imap.append(box, numbered(1))
    got: list[str] = []

    def handle(raw: bytes) -> None:
        got.append(parse(raw, max_bytes=LIMIT).text)

    first = imap.poller(box, sessions).poll(handle)
    imap.recreate(box)  # the server gives the mailbox a new UIDVALIDITY
    imap.append(box, numbered(2))
    with caplog.at_level(logging.WARNING, logger="aftersales.mailin"):
        report = imap.poller(box, sessions).poll(handle)
    assert report.uidvalidity != first.uidvalidity
    assert report.reset is not None and "UIDVALIDITY changed" in report.reset
    assert "UIDVALIDITY changed" in caplog.text and report.handled == 0
    imap.append(box, numbered(3))
    assert imap.poller(box, sessions).poll(handle).handled == 1
    assert got == ["mail 1", "mail 3"]


def test_the_batch_leaves_the_rest_for_the_next_poll(imap, sessions):
    box = imap.new_mailbox()
    imap.append(box, *(numbered(n) for n in range(1, 6)))
    got: list[bytes] = []
    report = imap.poller(box, sessions, batch=2).poll(got.append)
    assert (report.handled, report.more) == (2, True)
    while imap.poller(box, sessions, batch=2).poll(got.append).handled:
        pass
    assert len(got) == 5


def test_a_mailbox_named_in_chinese(imap, sessions):
    with imap.client() as conn:
        assert conn.create(mailin.imap_utf7("售后"))[0] == "OK"
        assert conn.append(mailin.imap_utf7("售后"), None, None, numbered(1))[0] == "OK"
    got: list[bytes] = []
    assert imap.poller("售后", sessions).poll(got.append).handled == 1


def test_starttls_verifies_the_server_certificate(imap, sessions, tmp_path):
    other_ca, _ = _certificate(tmp_path)
    poller = ImapPoller(imap.url(imap.new_mailbox()), sessions, ca_file=str(other_ca))
    with pytest.raises(ssl.SSLCertVerificationError):
        poller.poll(lambda raw: None)


def test_the_scheduler_job_polls_under_its_lease(imap, sqlite_url, caplog):
    from aftersales.scheduler import Housekeeping

    box = imap.new_mailbox()
    imap.append(box, numbered(1))
    got: list[bytes] = []
    base = Settings(database_url=sqlite_url, imap_ca_file=str(imap.ca_file))
    jobs = Housekeeping(base.with_(imap_url=imap.url(box)), holder="one",
                        mail_handler=got.append)
    try:
        ran, report = jobs.run_job("mail_poll")
        assert ran and report.handled == 1 and len(got) == 1
        assert jobs.run_job("mail_poll") == (False, None)  # this minute's run is done
    finally:
        jobs.close()
    idle = Housekeeping(base, holder="two", mail_handler=got.append)
    try:
        with caplog.at_level(logging.INFO, logger="aftersales.scheduler"):
            assert idle.poll_mail() is None
        assert "AFTERSALES_IMAP_URL is not set, skipped" in caplog.text
    finally:
        idle.close()


# ------------------------------------------------------------ SMTP receiver


def test_the_smtp_receiver_hands_over_the_bytes_as_sent():
    got: list[bytes] = []
    mail = built("你好，水壶坏了。", Subject="退货")
    with SmtpReceiver(got.append, max_bytes=100_000) as receiver:
        assert receiver.describe() == f"mail in on 127.0.0.1:{receiver.port}"
        with smtplib.SMTP("127.0.0.1", receiver.port, timeout=10) as smtp:
            smtp.send_message(mail, "customer@example.com", ["support@shop.test"])
    [raw] = got
    parsed = parse(raw, max_bytes=LIMIT)
    assert (parsed.subject, parsed.text, parsed.message_id) == (
        "退货", "你好，水壶坏了。", mail["Message-ID"])


def test_the_smtp_receiver_refuses_an_oversized_message_with_552():
    got: list[bytes] = []
    big = built("x" * 3000).as_bytes(policy=SMTP)  # CRLF lines, as SMTP has them
    with SmtpReceiver(got.append, max_bytes=2000) as receiver:
        with smtplib.SMTP("127.0.0.1", receiver.port, timeout=10) as smtp:
            # Declared with SIZE (smtplib does): refused at MAIL FROM.
            with pytest.raises(smtplib.SMTPSenderRefused) as declared:
                smtp.sendmail("customer@example.com", ["support@shop.test"], big)
            assert declared.value.smtp_code == 552
        with smtplib.SMTP("127.0.0.1", receiver.port, timeout=10) as smtp:
            # Not declared: refused once the data is over the limit.
            smtp.ehlo()
            assert smtp.mail("customer@example.com")[0] == 250
            assert smtp.rcpt("support@shop.test")[0] == 250
            assert smtp.data(big)[0] == 552
    assert got == []


def test_a_failing_handler_makes_the_sender_try_again_later():
    def broken(raw: bytes) -> None:
        raise RuntimeError("down")

    with SmtpReceiver(broken) as receiver:
        with smtplib.SMTP("127.0.0.1", receiver.port, timeout=10) as smtp:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.sendmail("customer@example.com", ["support@shop.test"],
                              numbered(1))
    assert refused.value.smtp_code == 451


def test_html_to_text_never_raises_on_broken_html():
    assert html_to_text("<p>unclosed <b>bold <script>x") == "unclosed bold"
    assert html_to_text("<![if !supportLists]>a<![endif]> b") .strip().endswith("b")
    assert decode_words("=?x-unknown?B?w6k=?=") in ("é", "\ufffd\ufffd", "Ã©")
