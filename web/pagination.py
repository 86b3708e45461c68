"""Opaque keyset cursors for case lists: the sort and the last row's sort values."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from db.cases import SORTS, as_utc
from web.problems import Problem


def encode_cursor(sort: str, values: list) -> str:
    payload = [sort, [{"t": as_utc(v).isoformat()} if isinstance(v, datetime) else v
                      for v in values]]
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> list:
    """The keyset in `cursor`; 422 when it is not one of ours or was made for another
    sort order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, values = json.loads(raw)
        if cursor_sort != sort or len(values) != len(SORTS[sort]):
            raise ValueError("cursor for another sort order")
        return [datetime.fromisoformat(v["t"]) if isinstance(v, dict) else v for v in values]
    except (ValueError, TypeError, KeyError) as err:
        raise Problem(422, "Invalid request", "bad cursor",
                      errors={"cursor": ["not a cursor from this list and sort order"]}) from err
