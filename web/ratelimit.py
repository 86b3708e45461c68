"""Brakes on guessing and flooding: a client that misses too often (unknown status
links, wrong passwords, orders not found) or asks too much is answered 429 with
Retry-After for a while.

The counts live in the read model (db/ratecounters.py), so every web process and
every instance behind a load balancer shares them. They are kept per client address
as the app sees it: behind a proxy, AFTERSALES_TRUSTED_PROXIES says how many proxies'
X-Forwarded-For to believe (create_app applies werkzeug's ProxyFix); without it the
header is ignored, so a client cannot pick the address it is counted under.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import request
from sqlalchemy.orm import Session, sessionmaker

from db import ratecounters
from web.problems import Problem


def client_address() -> str:
    """The client's address: the connection's, or the one the trusted proxies pass."""
    return request.remote_addr or "unknown"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MissLimiter:
    """At most `limit` misses per `window` seconds per key (a client address, an order,
    a link, ...), counted from the first miss of the window."""

    def __init__(self, sessions: sessionmaker[Session], name: str, limit: int = 20,
                 window: float = 600.0,
                 message: str = "too many unknown links from this address; try again later",
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.sessions = sessions
        self.name = name
        self.limit = limit
        self.window = window
        self.message = message
        self.clock = clock

    def check(self, key: str) -> None:
        """429 problem while this key is over its budget of misses."""
        now = self.clock()
        with self.sessions() as session:
            hits, ends = ratecounters.current(session, self.name, key, now)
        if hits >= self.limit and ends is not None:
            retry = math.ceil((ends - now).total_seconds())
            raise Problem(429, "Too many requests", self.message,
                          headers={"Retry-After": str(max(retry, 1))})

    def miss(self, key: str) -> None:
        with self.sessions.begin() as session:
            ratecounters.count(session, self.name, key, self.clock(),
                               timedelta(seconds=self.window))
