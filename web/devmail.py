"""`/dev/mail`: the mail the local SMTP sink of `aftersales dev` received.

Registered only when AFTERSALES_DEV_MAILBOX names the sink's mailbox file, which only
`aftersales dev` sets; everywhere else the path does not exist (404).
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, render_template

from aftersales.mailsink import read_mailbox

devmail = Blueprint("devmail", __name__)
LINK = re.compile(r"(https?://\S+)")


def body_parts(body: str) -> list[tuple[str, bool]]:
    """The body as (text, is_link) pieces, so the page can make the links clickable
    while escaping everything."""
    return [(part, bool(LINK.fullmatch(part))) for part in LINK.split(body) if part]


@devmail.get("/dev/mail")
def inbox():
    mailbox = current_app.extensions["aftersales"].settings.dev_mailbox
    messages = list(reversed(read_mailbox(mailbox)))
    for message in messages:
        message["parts"] = body_parts(message.get("body", ""))
    return render_template("dev_mail.html", messages=messages, mailbox=mailbox)
