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
