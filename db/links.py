"""The customer's status link at rest.

The link (`<public URL>/s/<token>`) opens the case for whoever holds it, so a copy of
the database must not hold it in the clear: the read model keeps it sealed with
AES-256-GCM under a key derived from AFTERSALES_SECRET_KEY and bound to its case, the
status page finds a case by the token's SHA-256 alone, notifications' stored payloads
and cached idempotent answers never keep it. Staff pages, the API and the notification
sender unseal it when they show or send it.

Changing the secret key makes the sealed links unreadable to staff and notifications
(customers' links keep working: they are found by hash); `aftersales privacy
seal-links` with AFTERSALES_OLD_SECRET_KEY set carries them over (docs/operations.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Case, IdempotencyKey, OutboxMessage

# The key in a case's stored data; the clear `customer_url` is never stored.
SEALED = "customer_url_sealed"
CLEAR = "customer_url"
_PREFIX = "v1."


class LinkSeal:
    """Seals and opens status links with a key derived from the secret key."""

    def __init__(self, secret_key: str) -> None:
        key = hmac.new(secret_key.encode(), b"aftersales status links v1",
                       hashlib.sha256).digest()
        self._aead = AESGCM(key)

    def seal(self, url: str, case_id: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, url.encode(), case_id.encode())
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, case_id: str) -> str:
        """The link, or "" when it was sealed under another key or for another case."""
        if not sealed.startswith(_PREFIX):
            return ""
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_PREFIX):])
            return self._aead.decrypt(raw[:12], raw[12:], case_id.encode()).decode()
        except (InvalidTag, ValueError):
            return ""


def stored(data: dict, case_id: str, links: LinkSeal | None) -> dict:
    """A case's data as stored: the link sealed (dropped when no seal is at hand)."""
    url = data.pop(CLEAR, "")
    if url and links is not None:
        data[SEALED] = links.seal(url, case_id)
    return data


def customer_url(data: dict, case_id: str, links: LinkSeal) -> str:
    """The case's status link from its stored data ("" when erased or unreadable); a row
    an older version wrote still holds it in the clear until sealed."""
    sealed = data.get(SEALED)
    if sealed:
        return links.open(sealed, case_id)
    return data.get(CLEAR) or ""


def without_link(payload: dict) -> dict:
    """A notification's payload as stored: no link in it (the sender reads the case's)."""
    return {k: v for k, v in payload.items() if k != CLEAR}


def answer_case(body: dict) -> str:
    """The case an API answer is about (a case, or an answer naming `case_id`)."""
    return str(body.get("id") or body.get("case_id") or "")


def with_link(data: dict, case_id: str, links: LinkSeal) -> dict:
    """Stored data (a cached answer) with its link unsealed again."""
    if SEALED not in data:
        return data
    out = {k: v for k, v in data.items() if k != SEALED}
    out[CLEAR] = links.open(data[SEALED], case_id)
    return out


def seal_stored_links(session: Session, links: LinkSeal, old: LinkSeal | None = None,
                      batch: int = 500) -> int:
    """Seal the links rows from before sealing hold in the clear (and, with `old`,
    re-seal links sealed under the previous secret key); drop links from stored
    notification payloads and cached answers. Returns how many rows changed."""
    changed = 0
    # Only rows that hold a link in the clear, unless re-sealing: the database finds
    # them, so a worker's start costs little once everything is sealed.
    cases = select(Case) if old is not None else select(Case).where(
        Case.data[CLEAR].as_string().is_not(None))
    for row in session.scalars(cases.execution_options(yield_per=batch)):
        data = dict(row.data)
        url = data.get(CLEAR) or (old.open(data[SEALED], row.id)
                                  if old is not None and data.get(SEALED) else "")
        if url or CLEAR in data:
            data.pop(SEALED, None)
            data[CLEAR] = url
            row.data = stored(data, row.id, links)
            changed += 1
    for message in session.scalars(select(OutboxMessage).where(
            OutboxMessage.payload[CLEAR].as_string().is_not(None)).execution_options(
            yield_per=batch)):
        if CLEAR in (message.payload or {}):
            message.payload = without_link(message.payload)
            changed += 1
    for answer in session.scalars(select(IdempotencyKey).where(
            IdempotencyKey.response[CLEAR].as_string().is_not(None))):
        if isinstance(answer.response, dict) and answer.response.get(CLEAR):
            answer.response = stored(dict(answer.response), answer_case(answer.response),
                                     links)
            changed += 1
    return changed
