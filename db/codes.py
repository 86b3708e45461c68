"""One-time codes of the public request page: sent to the phone or email on an order,
asked for before the order is shown (AFTERSALES_REQUEST_CODES=1).

Six digits, ten minutes, five tries. A code belongs to the order and the address it was
sent to (the order's own phone or email, however the customer typed it), so retyping
the number another way gets no fresh tries. Only hashes are stored: of the order and
address (the key) and of the code, so the table is no list of who asked about which
order.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from db.models import RequestCode

CODE_LIFETIME = timedelta(minutes=10)
MAX_TRIES = 5
# A new code for the same order and contact only after this (no SMS bombing).
RESEND_AFTER = timedelta(seconds=60)


class CodeRefused(Exception):
    """Why a code was not accepted: `why` is `missing`, `wrong`, `expired`, `used` (by
    another request a moment ago) or `exhausted` (too many tries: ask for a new code)."""

    def __init__(self, why: str, tries_left: int = 0) -> None:
        super().__init__(why)
        self.why = why
        self.tries_left = tries_left


class TooSoon(Exception):
    """A code was sent moments ago; `retry_after` seconds until another may be."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def code_key(order_id: str, address: str) -> str:
    """The row of the code for this order sent to this address (the order's own)."""
    return hashlib.sha256(f"{order_id}\n{address.strip().lower()}".encode()).hexdigest()


def _hash(key: str, code: str) -> str:
    return hashlib.sha256(f"{key}:{code}".encode()).hexdigest()


def issue(session: Session, order_id: str, address: str, now: datetime) -> str:
    """A fresh code for this order sent to `address` (the previous one stops working)."""
    key = code_key(order_id, address)
    row = session.get(RequestCode, key)
    if row is not None and now < _aware(row.sent_at) + RESEND_AFTER:
        raise TooSoon(int((_aware(row.sent_at) + RESEND_AFTER - now).total_seconds()) + 1)
    code = f"{secrets.randbelow(10 ** 6):06d}"
    if row is None:
        row = RequestCode(key=key)
        session.add(row)
    row.code_hash = _hash(key, code)
    row.expires_at = now + CODE_LIFETIME
    row.tries = 0
    row.sent_at = now
    return code


def verify(session: Session, order_id: str, address: str, code: str | None,
           now: datetime, consume: bool = True) -> None:
    """Accept the code, or raise CodeRefused; each wrong try counts. A code accepted
    with `consume` is used up, atomically: of two requests with one code, one wins."""
    key = code_key(order_id, address)
    row = session.get(RequestCode, key)
    if not code or row is None:
        raise CodeRefused("missing")
    if row.tries >= MAX_TRIES:
        raise CodeRefused("exhausted")
    if now >= _aware(row.expires_at):
        raise CodeRefused("expired")
    if not hmac.compare_digest(row.code_hash, _hash(key, code)):
        row.tries += 1
        raise CodeRefused("wrong" if row.tries < MAX_TRIES else "exhausted",
                          MAX_TRIES - row.tries)
    if consume:
        used: CursorResult = session.execute(  # type: ignore[assignment]
            delete(RequestCode).where(RequestCode.key == key,
                                      RequestCode.code_hash == row.code_hash))
        if used.rowcount != 1:
            raise CodeRefused("used")


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
