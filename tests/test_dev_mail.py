"""`/dev/mail` shows what the local SMTP sink received, and exists only when the
development setting names a mailbox."""

from __future__ import annotations

import time

from activities.senders import OutgoingMessage, SmtpSender
from aftersales.mailsink import read_mailbox, start_sink
from tests.conftest import make_settings
from web import create_app


def test_dev_mail_lists_received_mail_with_its_link(sqlite_url, tmp_path):
    mailbox = tmp_path / "mail" / "mailbox.jsonl"
    sink = start_sink(mailbox)
    settings = make_settings("127.0.0.1:9", sqlite_url, "http://127.0.0.1:9",
                             smtp_host="127.0.0.1", smtp_port=sink.port,
                             dev_mailbox=str(mailbox))
    app = create_app(settings)
    try:
        SmtpSender(settings).send(OutgoingMessage(
            key="AS-D1:1", message_id="<AS-D1.1.x@aftersales.local>", medium="email",
            to="emma@example.com", to_name="Emma", locale="en",
            subject="Your case AS-D1 is open <b>",
            body="Follow it here:\n\nhttp://testserver/s/tok123\n", case_id="AS-D1",
            template="case_opened"))
        deadline = time.monotonic() + 10
        while not read_mailbox(mailbox):
            assert time.monotonic() < deadline, "the sink received nothing"
            time.sleep(0.05)
        page = app.test_client().get("/dev/mail")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "Your case AS-D1 is open &lt;b&gt;" in html  # escaped, not markup
        assert "emma@example.com" in html
        assert '<a href="http://testserver/s/tok123">http://testserver/s/tok123</a>' in html
        assert "1 message," in html
    finally:
        sink.stop()
        app.extensions["aftersales"].engine.dispose()


def test_dev_mail_does_not_exist_without_the_dev_setting(sqlite_url):
    app = create_app(make_settings("127.0.0.1:9", sqlite_url, "http://127.0.0.1:9"))
    try:
        assert app.test_client().get("/dev/mail").status_code == 404
    finally:
        app.extensions["aftersales"].engine.dispose()
