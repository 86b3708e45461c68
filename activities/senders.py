"""Senders of notifications: email by SMTP, and the SMS/WeChat interface.

A sender gets one rendered message for one address and either returns (the provider
accepted it) or raises (it did not; the delivery is retried, unless the provider
refused it for good). `AFTERSALES_MESSAGE_SENDER` names the SMS/WeChat provider: one of
the shipped ones (activities/providers.py) or a retailer's own class with the
`MessageSender` shape (docs/notifications.md#providers).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Protocol, runtime_checkable

from workflows.case.vocabulary import CASE_ID

log = logging.getLogger("aftersales.notifications")


class Settings(Protocol):
    """What delivery reads of the process settings. The composition root passes its
    `aftersales.settings.Settings`, which has these and more; activities never import
    it."""

    @property
    def public_url(self) -> str: ...
    @property
    def smtp_host(self) -> str: ...
    @property
    def smtp_port(self) -> int: ...
    @property
    def smtp_tls(self) -> str: ...
    @property
    def smtp_user(self) -> str: ...
    @property
    def smtp_password(self) -> str: ...
    @property
    def smtp_from(self) -> str: ...
    @property
    def message_sender(self) -> str: ...
    @property
    def wechat_app_id(self) -> str: ...
    @property
    def default_locale(self) -> str: ...
    @property
    def secret_key(self) -> str: ...


@dataclass(frozen=True)
class OutgoingMessage:
    """One rendered message for one address."""

    key: str  # the outbox key: the same on every retry of this message
    message_id: str  # stable per key and address, e.g. the email Message-ID
    medium: str  # email | message (a phone) | wechat (an openid)
    to: str
    to_name: str
    locale: str
    subject: str
    body: str
    case_id: str | None = None
    template: str = ""
    # The template's values (case id, status link, question, ...): what providers that
    # send pre-registered templates (SMS, WeChat) fill in instead of the rendered body.
    params: dict = field(default_factory=dict)


class PermanentDeliveryError(Exception):
    """The provider refused this message for good (an invalid number, a user who
    unsubscribed): retrying cannot help. Delivery records it on the case's timeline and
    stops; any other exception is retried."""


@runtime_checkable
class MessageSender(Protocol):
    """What a notification channel provides. `send` raises if the provider refused or
    did not answer; it must not return before the provider has accepted the message."""

    def send(self, message: OutgoingMessage) -> None: ...


def mask(address: str) -> str:
    """An address as logs may show it: enough to tell two apart, not to reach anyone."""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    return f"{address[:3]}****{address[-2:]}" if len(address) > 5 else "****"


class LoggingSender:
    """Logs that a message would be sent, without the personal data: the stand-in for an
    SMS or WeChat provider until a retailer plugs theirs in, and for email while no
    SMTP server is configured."""

    def __init__(self, settings: Settings | None = None) -> None:
        pass

    def send(self, message: OutgoingMessage) -> None:
        log.info("notification %s (%s, %s) by %s to %s: not sent, logged only",
                 message.key, message.template, message.locale, message.medium,
                 mask(message.to))


class SmtpSender:
    """Email over SMTP: one connection per message, TLS as configured, and a Message-ID
    derived from the outbox key so a resent copy is recognisable as the same message."""

    def __init__(self, settings: Settings, timeout: float = 30.0) -> None:
        self._settings = settings
        self._timeout = timeout

    def send(self, message: OutgoingMessage) -> None:
        s = self._settings
        mail = EmailMessage()
        mail["From"] = s.smtp_from
        mail["To"] = message.to
        mail["Subject"] = subject_with_case(message.subject, message.case_id)
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = message.message_id
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(message.body)
        mail["Content-Language"] = message.locale  # set_content drops Content-* headers
        port = s.smtp_port or {"ssl": 465, "starttls": 587}.get(s.smtp_tls, 25)
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.smtp_tls == "ssl":
            smtp = smtplib.SMTP_SSL(s.smtp_host, port, timeout=self._timeout, context=context)
        else:
            smtp = smtplib.SMTP(s.smtp_host, port, timeout=self._timeout)
        with smtp:
            if s.smtp_tls == "starttls":
                smtp.starttls(context=context)
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
            smtp.send_message(mail)
        log.info("notification %s (%s) emailed to %s", message.key, message.template,
                 mask(message.to))


def subject_with_case(subject: str, case_id: str | None) -> str:
    """The subject with `[<case id>]`, which routes an answer back to its case even
    from a mail program that drops In-Reply-To (docs/conversation.md, "Email in")."""
    if not case_id or f"[{case_id}]" in subject:
        return subject
    return f"{subject} [{case_id}]"


def message_id_domain(settings: Settings) -> str:
    """The domain of our notifications' Message-IDs: AFTERSALES_SMTP_FROM's."""
    return parseaddr(settings.smtp_from)[1].partition("@")[2].lower() or "aftersales.local"


def case_of_message_id(ref: str, settings: Settings) -> str | None:
    """The case one of our Message-IDs (`message_id`) names, or None for anyone
    else's: what an answer's In-Reply-To / References point back to."""
    local, _, domain = ref.strip().strip("<>").rpartition("@")
    if domain.lower() != message_id_domain(settings):
        return None
    first = local.split(".", 1)[0]
    return first if re.fullmatch(CASE_ID, first) else None


def message_id(key: str, address: str, settings: Settings) -> str:
    """`<case.seq.n@domain>`: the same for every attempt at this key and address."""
    domain = message_id_domain(settings)
    digest = hashlib.sha256(address.encode()).hexdigest()[:10]
    return f"<{key.replace(':', '.')}.{digest}@{domain}>"


# The names AFTERSALES_MESSAGE_SENDER takes besides a class of one's own.
SENDERS = {
    "log": "activities.senders:LoggingSender",
    "aliyun": "activities.providers:AliyunSmsSender",
    "tencent": "activities.providers:TencentSmsSender",
    "wechat": "activities.providers:WeChatSender",
    "webhook": "activities.providers:WebhookSender",
}


def load_sender(name: str, settings: Settings) -> MessageSender:
    """The sender `name` names (log, aliyun, ...: SENDERS), or the class `module:Class`
    (or `module.Class`), built with the settings."""
    dotted = SENDERS.get(name, name)
    if ":" not in dotted and "." not in dotted:
        raise ValueError(f"AFTERSALES_MESSAGE_SENDER={name!r}: expected one of "
                         f"{', '.join(SENDERS)}, or module:Class")
    module_name, sep, class_name = dotted.partition(":")
    if not sep:
        module_name, _, class_name = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"AFTERSALES_MESSAGE_SENDER={name!r}: {err}") from err
    sender = cls(settings)
    if not isinstance(sender, MessageSender):
        raise ValueError(f"AFTERSALES_MESSAGE_SENDER={name!r} has no send(message)")
    return sender


def senders_from_settings(settings: Settings) -> dict[str, MessageSender]:
    """The sender of each medium: email by SMTP if a host is set, else logged; phones
    by the AFTERSALES_MESSAGE_SENDER provider; WeChat openids by WeChat when it is
    configured (its app id set, or named as the sender: then phones are only logged)."""
    email: MessageSender = SmtpSender(settings) if settings.smtp_host else LoggingSender()
    chosen = settings.message_sender
    senders = {"email": email,
               "message": LoggingSender() if chosen == "wechat" else load_sender(chosen,
                                                                                 settings)}
    if chosen == "wechat" or settings.wechat_app_id:
        senders["wechat"] = load_sender("wechat", settings)
    return senders
