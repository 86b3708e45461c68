"""Events out: every timeline event, POSTed as signed JSON to the endpoints integrators
subscribe (AFTERSALES_EVENT_WEBHOOK_URL), by the scheduler's `events_out` job.

At least once, in order per case, each with a stable `id` for de-duplication; a dead
endpoint costs its own backlog only: cases never wait on it (the workflow writes its
timeline and goes on; this job reads it later, docs/conversation.md "Events out").

- 2xx: delivered; the case's cursor moves on.
- 410 Gone: the endpoint has unsubscribed; nothing more is sent to it (the console
  shows it) until an operator resumes it (`aftersales events resume URL`).
- 429, 5xx, a timeout or no connection: the endpoint is unwell; it is left alone for
  a while (backoff, or the Retry-After it asked for) and this run moves on.
- Any other 4xx: the endpoint refused this event; its case waits and is retried with
  backoff, the other cases go on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy.orm import Session, sessionmaker

from activities.providers import retry_after
from activities.signing import webhook_signature
from db import events
from db.cases import as_utc, jsonable
from db.models import EventSubscription, TimelineEvent

log = logging.getLogger("aftersales.events")

# Events read per endpoint per run, and how long one POST may take.
BATCH = 200
TIMEOUT = 5.0


def event_body(event: TimelineEvent) -> dict:
    """The JSON an integrator receives; `id` is the same on every retry."""
    return {"id": f"{event.case_id}:{event.seq}", "type": event.type,
            "case_id": event.case_id, "occurred_at": jsonable(event.at),
            "data": {"seq": event.seq, "actor": event.actor,
                     "stage_before": event.stage_before, "stage_after": event.stage_after,
                     "detail": event.detail}}


@dataclass
class EndpointReport:
    sent: int = 0
    failed: int = 0
    gone: bool = False
    skipped: bool = False  # still waiting after a failure
    errors: list[str] = field(default_factory=list)


class _EndpointDown(Exception):
    def __init__(self, message: str, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Gone(Exception):
    pass


class _Refused(Exception):
    pass


class EventsOut:
    """One run sends what each endpoint is owed, oldest first."""

    def __init__(self, sessions: sessionmaker[Session], urls: tuple[str, ...], secret: str,
                 client: httpx.Client | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._sessions = sessions
        self._urls = urls
        self._secret = secret
        self._client = client or httpx.Client(timeout=TIMEOUT)
        self._now = clock

    def run_once(self) -> dict[str, EndpointReport]:
        reports = {}
        with self._sessions.begin() as session:
            events.subscribe(session, self._urls, self._now())
        for url in self._urls:
            reports[url] = self._serve(url)
        return reports

    def _serve(self, url: str) -> EndpointReport:
        """Post what `url` is owed, each delivery recorded in its own short write (no
        transaction is held open over the network); a crash resends, never skips."""
        report = EndpointReport()
        now = self._now()
        with self._sessions() as session:
            sub = self._sub(session, url)
            if sub.state == "gone":
                report.gone = True
                return report
            if sub.retry_at is not None and as_utc(sub.retry_at) > now:
                report.skipped = True
                return report
            owed = events.due(session, sub, now, BATCH)
            session.expunge_all()
        waiting: set[str] = set()  # cases with an event refused in this run
        for event in owed:
            if event.case_id in waiting:
                continue
            try:
                self._post(url, event)
            except _Gone:
                with self._sessions.begin() as session:
                    self._sub(session, url).state = "gone"
                    self._sub(session, url).last_error = "410 Gone"
                report.gone = True
                log.error("events endpoint %s answered 410 Gone: nothing more is sent to "
                          "it until it is resumed", shown_url(url))
                break
            except _EndpointDown as err:
                with self._sessions.begin() as session:
                    sub = self._sub(session, url)
                    sub.failures += 1
                    sub.retry_at = now + max(err.retry_after or timedelta(0),
                                             events.backoff(sub.failures))
                    sub.last_error = str(err)[:500]
                report.failed += 1
                report.errors.append(str(err))
                log.warning("events endpoint %s unwell (%s); it waits before the next try",
                            shown_url(url), err)
                break
            except _Refused as err:
                with self._sessions.begin() as session:
                    events.refused(session, url, event, now, str(err))
                waiting.add(event.case_id)
                report.failed += 1
                report.errors.append(str(err))
                continue
            with self._sessions.begin() as session:
                events.delivered(session, url, event, now)
                sub = self._sub(session, url)
                sub.failures, sub.retry_at, sub.last_error = 0, None, None
                sub.last_success_at = now
            report.sent += 1
        with self._sessions.begin() as session:
            events.raise_low_water(session, self._sub(session, url), self._now())
        return report

    @staticmethod
    def _sub(session: Session, url: str) -> EventSubscription:
        sub = session.get(EventSubscription, url)
        assert sub is not None  # made by subscribe() at the start of the run
        return sub

    def _post(self, url: str, event: TimelineEvent) -> None:
        body = json.dumps(event_body(event), ensure_ascii=False, separators=(",", ":"),
                          sort_keys=True).encode()
        stamp = str(int(self._now().timestamp()))
        headers = {"Content-Type": "application/json",
                   "User-Agent": "aftersales-events/1",
                   "X-Aftersales-Event-Id": f"{event.case_id}:{event.seq}",
                   "X-Aftersales-Timestamp": stamp,
                   "X-Aftersales-Signature": webhook_signature(body, self._secret, stamp)}
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as err:
            raise _EndpointDown(f"{type(err).__name__}: {err}") from err
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 410:
            raise _Gone()
        if status == 429 or status >= 500 or 300 <= status < 400:  # not where it was
            # (a redirect is not followed: the signed body is for the URL configured)
            raise _EndpointDown(f"HTTP {status}", _retry_after(response))
        raise _Refused(f"HTTP {status} for event {event.case_id}:{event.seq}")

    def close(self) -> None:
        self._client.close()


def _retry_after(response: httpx.Response) -> timedelta | None:
    seconds = retry_after(response.headers)
    return None if seconds is None else timedelta(seconds=min(seconds, 3600.0))


def shown_url(url: str) -> str:
    """An endpoint as pages and logs show it: without a password or a query, which may
    carry the integrator's token."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, host + port, parts.path, "…" if parts.query else "",
                       ""))


def status(session: Session, urls: tuple[str, ...]) -> list[dict]:
    """Each configured endpoint as the console shows it: state, backlog, last error."""
    shown = []
    for url in urls:
        sub = session.get(EventSubscription, url)
        if sub is None:
            shown.append({"url": url, "shown": shown_url(url), "state": "new", "backlog": 0,
                          "last_error": None, "last_success_at": None, "retry_at": None})
            continue
        shown.append({"url": url, "shown": shown_url(url), "state": sub.state,
                      "backlog": events.backlog(session, sub),
                      "last_error": sub.last_error, "last_success_at": sub.last_success_at,
                      "retry_at": sub.retry_at})
    return shown


def resume(session: Session, url: str) -> bool:
    """An operator says the endpoint is back (after a 410): send to it again, from
    where it stopped."""
    sub = session.get(EventSubscription, url)
    if sub is None or sub.state != "gone":
        return False
    sub.state, sub.failures, sub.retry_at, sub.last_error = "active", 0, None, None
    return True
