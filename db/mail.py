"""Inbound mail's rows: the IMAP poller's cursor per mailbox, and the mails the router
has dealt with (docs/mail-in.md).

The cursor is a high-water mark: the last UID handed to the handler, under the
mailbox's UIDVALIDITY (UIDs mean nothing under another). It only moves forward, so
two pollers racing past an expired lease cannot move it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.models import InboundMailRecord, MailCursor


@dataclass(frozen=True)
class Cursor:
    uidvalidity: int
    last_uid: int
    failed_uid: int | None = None
    failures: int = 0


def read_cursor(sessions: sessionmaker[Session], mailbox: str) -> Cursor | None:
    with sessions() as session:
        row = session.get(MailCursor, mailbox)
        if row is None:
            return None
        return Cursor(row.uidvalidity, row.last_uid, row.failed_uid, row.failures)


def reset_cursor(sessions: sessionmaker[Session], mailbox: str, uidvalidity: int,
                 last_uid: int, now: datetime) -> None:
    """Start the mailbox over: a first poll, or a new UIDVALIDITY (the old UIDs are void)."""
    with sessions.begin() as session:
        row = session.get(MailCursor, mailbox)
        if row is None:
            session.add(MailCursor(mailbox=mailbox, uidvalidity=uidvalidity,
                                   last_uid=last_uid, failed_uid=None, failures=0,
                                   updated_at=now))
        else:
            row.uidvalidity, row.last_uid, row.failed_uid, row.failures = (
                uidvalidity, last_uid, None, 0)
            row.updated_at = now


def advance(sessions: sessionmaker[Session], mailbox: str, uidvalidity: int, uid: int,
            now: datetime) -> None:
    """The message `uid` is dealt with; never moves the cursor back."""
    with sessions.begin() as session:
        session.execute(
            update(MailCursor)
            .where(MailCursor.mailbox == mailbox, MailCursor.uidvalidity == uidvalidity,
                   MailCursor.last_uid < uid)
            .values(last_uid=uid, failed_uid=None, failures=0, updated_at=now)
            .execution_options(synchronize_session=False))


def count_failure(sessions: sessionmaker[Session], mailbox: str, uidvalidity: int,
                  uid: int, now: datetime) -> int:
    """The handler raised on `uid`; how many times in a row it has now."""
    with sessions.begin() as session:
        row = session.get(MailCursor, mailbox)
        if row is None or row.uidvalidity != uidvalidity:
            return 1
        row.failures = row.failures + 1 if row.failed_uid == uid else 1
        row.failed_uid = uid
        row.updated_at = now
        return row.failures


# ------------------------------------------------------------ the router's record


def seen(session: Session, message_id: str) -> bool:
    """Whether the mail with this key (aftersales.mailin.dedupe_key) was dealt with."""
    return session.get(InboundMailRecord, message_id) is not None


def record(sessions: sessionmaker[Session], message_id: str, outcome: str,
           case_id: str | None, now: datetime) -> bool:
    """Note that the mail was dealt with; False if it already was (a re-read, a
    resend, a second poller): then the caller must not act on it again."""
    try:
        with sessions.begin() as session:
            if seen(session, message_id):
                return False
            session.add(InboundMailRecord(message_id=message_id, received_at=now,
                                          outcome=outcome, case_id=case_id))
    except IntegrityError:
        return False  # the other writer added it first
    return True
