"""Payload encryption: customers' personal data never sits in Temporal in the clear.

When `AFTERSALES_PAYLOAD_KEYS` is set, every payload the worker and the web app send
to Temporal (case inputs, update arguments, snapshots, activity results) is sealed
with AES-256-GCM. Each sealed payload names its key id, so keys rotate: the first key
in the setting encrypts, every listed key still decrypts.

Format of the setting: `kid:base64key[,kid:base64key...]` with 32-byte keys, e.g.
`2026-11:3q2+7w...=`. `aftersales keys new` prints a fresh one.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_SIZE = 12


class KeyError_(ValueError):
    """The key setting is malformed, or a payload names a key we do not hold."""


def parse_keys(setting: str) -> list[tuple[str, bytes]]:
    """`kid:base64key,...` into (kid, key) pairs, the encrypting key first."""
    keys = []
    for part in filter(None, (p.strip() for p in setting.split(","))):
        kid, sep, encoded = part.partition(":")
        if not sep or not kid:
            raise KeyError_(f"AFTERSALES_PAYLOAD_KEYS: '{part[:12]}…' is not kid:base64key")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError as err:
            raise KeyError_(f"AFTERSALES_PAYLOAD_KEYS: key '{kid}' is not base64") from err
        if len(key) != 32:
            raise KeyError_(f"AFTERSALES_PAYLOAD_KEYS: key '{kid}' must be 32 bytes")
        keys.append((kid, key))
    return keys


def new_key_setting(kid: str) -> str:
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"


class EncryptionCodec(PayloadCodec):
    """AES-GCM over whole payloads, with the key id in the payload's metadata."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyError_("at least one key is needed")
        self._active_id, active = keys[0]
        self._active = AESGCM(active)
        self._ciphers = {kid: AESGCM(key) for kid, key in keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        sealed = []
        for payload in payloads:
            nonce = os.urandom(NONCE_SIZE)
            data = nonce + self._active.encrypt(nonce, payload.SerializeToString(), None)
            sealed.append(Payload(metadata={"encoding": ENCODING,
                                            KEY_ID: self._active_id.encode()}, data=data))
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        opened = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                opened.append(payload)  # written before encryption was switched on
                continue
            kid = payload.metadata.get(KEY_ID, b"").decode()
            cipher = self._ciphers.get(kid)
            if cipher is None:
                raise KeyError_(f"payload sealed with key '{kid}', which is not configured")
            nonce, sealed = payload.data[:NONCE_SIZE], payload.data[NONCE_SIZE:]
            opened.append(Payload.FromString(cipher.decrypt(nonce, sealed, None)))
        return opened
