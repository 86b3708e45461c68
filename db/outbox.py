"""The outbox's delivery bookkeeping: claims, progress, and who a message goes to.

A delivery attempt first claims a row with one conditional UPDATE (unsent, and not
claimed by an attempt still within its lease), so two attempts or two workers never
send the same message at the same time. Each address served is recorded at once, so a
retry after a partial failure skips it, and the row is marked sent when every address
is served.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.models import Case, OutboxMessage, User

# Longer than a delivery activity may run (its start-to-close timeout), so a claim
# outlives the attempt that took it; a worker that died frees its rows after this.
CLAIM_LEASE = timedelta(minutes=5)

# Messages that are never sent one by one: each waits for its recipients' digest
# (db/digests.py), which the scheduler writes, marking these rows in the same
# transaction. Urgent messages (a breach, an escalation, a customer's reply) are not here.
DIGESTED = frozenset({"sla_warning"})


@dataclass(frozen=True)
class Claim:
    """A claimed outbox row, as it was when claimed."""

    key: str
    token: str
    case_id: str | None
    channel: str
    recipient: str
    template: str
    payload: dict
    delivered: tuple[str, ...]
    attempts: int


@dataclass(frozen=True)
class Recipient:
    """One person a message goes to, by one medium (`email` or `message`: SMS/WeChat)."""

    name: str
    medium: str
    address: str
    locale: str


def claim(sessions: sessionmaker[Session], key: str, now: datetime) -> Claim | None:
    """Take the row for one delivery attempt, or None if it is sent, missing, or claimed
    by another attempt whose lease has not run out."""
    token = secrets.token_hex(16)
    with sessions.begin() as session:
        result: CursorResult = session.execute(  # type: ignore[assignment]
            update(OutboxMessage)
            .where(OutboxMessage.key == key, OutboxMessage.sent_at.is_(None),
                   OutboxMessage.template.not_in(DIGESTED),
                   or_(OutboxMessage.claimed_until.is_(None),
                       OutboxMessage.claimed_until < now))
            .values(claimed_until=now + CLAIM_LEASE, claim_token=token,
                    attempts=OutboxMessage.attempts + 1)
            .execution_options(synchronize_session=False))
        if not result.rowcount:
            return None
        row = session.get(OutboxMessage, key, populate_existing=True)
        assert row is not None
        return Claim(key=row.key, token=token, case_id=row.case_id, channel=row.channel,
                     recipient=row.recipient, template=row.template,
                     payload=dict(row.payload), delivered=tuple(row.delivered or ()),
                     attempts=row.attempts)


def state(sessions: sessionmaker[Session], key: str) -> str:
    """`sent`, `missing`, `claimed` (another attempt holds it), `digest` (it waits for
    its recipients' digest) or `unsent`."""
    with sessions() as session:
        row = session.get(OutboxMessage, key)
        if row is None:
            return "missing"
        if row.sent_at is not None:
            return "sent"
        if row.template in DIGESTED:
            return "digest"
        return "claimed" if row.claimed_until is not None else "unsent"


UNDELIVERABLE = "undeliverable to "


def refusal(sessions: sessionmaker[Session], key: str) -> tuple[str, str] | None:
    """(template, why) of a sent row that a provider refused for good, else None: an
    attempt after the one that met the refusal reports it too (that one's report may
    have been lost with a failure of another row)."""
    with sessions() as session:
        row = session.get(OutboxMessage, key)
        if row is None or not (row.last_error or "").startswith(UNDELIVERABLE):
            return None
        return row.template, row.last_error or ""


def renew(sessions: sessionmaker[Session], item: Claim, now: datetime) -> bool:
    """Extend this attempt's lease before the next address; False if the claim was lost
    (the lease ran out and another attempt took the row): then this one must stop, or
    both would send."""
    with sessions.begin() as session:
        result: CursorResult = session.execute(  # type: ignore[assignment]
            update(OutboxMessage)
            .where(OutboxMessage.key == item.key, OutboxMessage.claim_token == item.token,
                   OutboxMessage.sent_at.is_(None))
            .values(claimed_until=now + CLAIM_LEASE)
            .execution_options(synchronize_session=False))
        return bool(result.rowcount)


def record_delivered(sessions: sessionmaker[Session], item: Claim, delivered: list[str],
                     sent_at: datetime | None = None, note: str | None = None) -> bool:
    """Note the addresses served so far (the claim's and this attempt's), right after a
    sender accepted the message; with `sent_at` (that was the last address), mark the
    row sent in the same write. One conditional UPDATE, so it lands only while this
    attempt holds the claim and the row is unsent; False if the claim was lost. `note`:
    the addresses a provider refused for good, kept as the row's last error."""
    values: dict = {"delivered": delivered}
    if sent_at is not None:
        values.update(sent_at=sent_at, claimed_until=None, last_error=note)
    with sessions.begin() as session:
        result: CursorResult = session.execute(  # type: ignore[assignment]
            update(OutboxMessage)
            .where(OutboxMessage.key == item.key, OutboxMessage.claim_token == item.token,
                   OutboxMessage.sent_at.is_(None))
            .values(**values)
            .execution_options(synchronize_session=False))
        return bool(result.rowcount)


def mark_sent(sessions: sessionmaker[Session], item: Claim, now: datetime,
              note: str | None = None) -> None:
    """Every address served (or none reachable, said in `note`): the row is done."""
    with sessions.begin() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.key == item.key, OutboxMessage.claim_token == item.token)
            .values(sent_at=now, claimed_until=None, last_error=note)
            .execution_options(synchronize_session=False))


def release(sessions: sessionmaker[Session], item: Claim, error: str) -> None:
    """The attempt failed: free the row at once for the next one, with the reason."""
    with sessions.begin() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.key == item.key, OutboxMessage.claim_token == item.token)
            .values(claimed_until=None, last_error=error[:500])
            .execution_options(synchronize_session=False))


def recipients(session: Session, item: Claim, default_locale: str,
               media: frozenset[str] = frozenset({"email", "message"})) -> list[Recipient]:
    """Who the message goes to: the case's customer, a user, or every active user of a
    role (`role:supervisor`), each by email if known; customers else by WeChat (with an
    openid, when `media` has it) or SMS to their phone. Someone with no address is left
    out."""
    if item.channel == "customer":
        case = session.get(Case, item.case_id) if item.case_id else None
        if case is None:
            return []
        customer = case.data.get("customer") or {}
        locale = customer.get("locale") or default_locale
        name = customer.get("name") or ""
        if customer.get("email"):
            return [Recipient(name, "email", customer["email"], locale)]
        if customer.get("wechat_openid") and "wechat" in media:
            return [Recipient(name, "wechat", customer["wechat_openid"], locale)]
        if customer.get("phone"):
            return [Recipient(name, "message", customer["phone"], locale)]
        return []
    if item.channel == "contact":
        # A phone or email typed by someone proving an order is theirs (a one-time
        # code): `email:<address>` or `message:<phone>`, in the payload's language.
        medium, _, address = item.recipient.partition(":")
        locale = str(item.payload.get("locale") or default_locale)
        return [Recipient("", medium, address, locale)] if address else []
    if item.recipient.startswith("role:"):
        users = list(session.scalars(
            select(User).where(User.role == item.recipient[len("role:"):],
                               User.active.is_(True)).order_by(User.name)))
    else:
        user = session.get(User, item.recipient)
        users = [user] if user is not None and user.active else []
    return [Recipient(u.name, "email", u.email, u.locale or default_locale)
            for u in users if u.email]


def add_message(session: Session, key: str, now: datetime, channel: str, recipient: str,
                template: str, payload: dict, case_id: str | None = None) -> bool:
    """Add a row unless its key is there already (a digest run twice adds one row)."""
    if session.get(OutboxMessage, key) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(OutboxMessage(key=key, case_id=case_id, created_at=now,
                                      channel=channel, recipient=recipient,
                                      template=template, payload=payload, delivered=[]))
    except IntegrityError:
        return False
    return True


# A row that failed this often is left alone (its last_error says why) until an
# operator resets its attempts.
GIVE_UP_AFTER = 30


def unsent_keys(session: Session, now: datetime, older_than: timedelta,
                limit: int = 200) -> list[str]:
    """Rows left unsent for a while and not claimed now: a worker died between writing
    and sending, or the delivery activity gave up."""
    return list(session.scalars(
        select(OutboxMessage.key)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.created_at < now - older_than,
               OutboxMessage.attempts < GIVE_UP_AFTER, OutboxMessage.template.not_in(DIGESTED),
               or_(OutboxMessage.claimed_until.is_(None),
                   OutboxMessage.claimed_until < now))
        .order_by(OutboxMessage.created_at).limit(limit)))


def redact(session: Session, key: str, fields: tuple[str, ...]) -> None:
    """Drop these fields from a sent row's payload (a one-time code: once it has gone,
    the database keeps no copy)."""
    row = session.get(OutboxMessage, key)
    if row is not None:
        row.payload = {k: v for k, v in row.payload.items() if k not in fields}
