"""The signed-webhook scheme: `sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`.

The courier signs the webhooks it posts to us this way (web/webhooks.py checks them) and
we sign the messages the webhook provider posts to a retailer's gateway the same way
(activities/providers.py), so a receiver that checks one checks the other. Signing the
timestamp with the body lets the receiver refuse a replayed request.
"""

from __future__ import annotations

import hashlib
import hmac


def webhook_signature(body: bytes, secret: str, timestamp: str) -> str:
    """The signature header's value for this raw body sent at this timestamp."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_matches(given: str, body: bytes, secret: str, timestamp: str) -> bool:
    """Whether a received signature header is this body's, compared in constant time.
    As bytes: a header with characters beyond ASCII is simply wrong, never an error
    (`hmac.compare_digest` refuses non-ASCII strings)."""
    expected = webhook_signature(body, secret, timestamp).encode()
    return bool(secret) and hmac.compare_digest(given.encode("utf-8", "replace"), expected)
