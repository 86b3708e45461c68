"""Brute-force brake for the customer's status links: an address that guesses wrong
tokens too often is answered 429 for a while.

Counted per web process (gunicorn workers each count their own), which bounds a
guesser's rate without shared state; a deployment behind a proxy must pass the
client's address through (e.g. werkzeug's ProxyFix) so the count is per client.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from web.problems import Problem


class MissLimiter:
    """At most `limit` misses per `window` seconds per client address."""

    def __init__(self, limit: int = 20, window: float = 600.0,
                 message: str = "too many unknown links from this address; try again later"
                 ) -> None:
        self.limit = limit
        self.window = window
        self.message = message
        self._misses: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """429 problem while this client is over its budget of misses."""
        with self._lock:
            misses = self._recent(client)
            if len(misses) >= self.limit:
                retry = int(misses[0] + self.window - time.monotonic()) + 1
                raise Problem(429, "Too many requests", self.message,
                              headers={"Retry-After": str(max(retry, 1))})

    def miss(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(time.monotonic())

    def _recent(self, client: str) -> deque[float]:
        misses = self._misses.setdefault(client, deque())
        cutoff = time.monotonic() - self.window
        while misses and misses[0] < cutoff:
            misses.popleft()
        return misses
