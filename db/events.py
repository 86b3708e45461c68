"""Events out, the bookkeeping: which timeline events each subscribed endpoint is owed.

The timeline is the outbox of events: the projection writes each case's events in the
same transaction as the case, so nothing a workflow decided is missed and nothing is
invented. Per endpoint, a cursor per case says how far that case's timeline has been
delivered (in order: an event is sent only after the one before it on its case), and
the subscription's `low_water` is the timeline id below which everything is delivered,
so the search for what is owed starts there and not at the beginning of time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from db.cases import as_utc
from db.models import EventCursor, EventSubscription, TimelineEvent

# Waits after failures in a row: 5 s, 10 s, 20 s ... at most 10 minutes.
FIRST_RETRY = timedelta(seconds=5)
LONGEST_RETRY = timedelta(minutes=10)


def backoff(failures: int) -> timedelta:
    return min(FIRST_RETRY * 2 ** max(failures - 1, 0), LONGEST_RETRY)


def subscribe(session: Session, urls: tuple[str, ...], now: datetime
              ) -> list[EventSubscription]:
    """The subscriptions of these endpoints, each made on first sight: an endpoint is
    owed the events written from then on, not the whole history."""
    subs = []
    for url in urls:
        sub = session.get(EventSubscription, url)
        if sub is None:
            newest = session.scalar(select(func.max(TimelineEvent.id))) or 0
            sub = EventSubscription(url=url, created_at=now, low_water=newest,
                                    start_id=newest, horizon_id=newest, horizon_at=now,
                                    state="active", failures=0)
            session.add(sub)
            session.flush()
        subs.append(sub)
    return subs


def _owed(url: str, low_water: int, *columns):
    """A select of `columns` over the events owed to `url`: above the low water and
    beyond their case's cursor."""
    cursor = and_(EventCursor.url == url, EventCursor.case_id == TimelineEvent.case_id)
    return (select(*columns).select_from(TimelineEvent)
            .outerjoin(EventCursor, cursor)
            .where(TimelineEvent.id > low_water,
                   TimelineEvent.seq > func.coalesce(EventCursor.last_seq, 0)))


def due(session: Session, sub: EventSubscription, now: datetime, limit: int
        ) -> list[TimelineEvent]:
    """The oldest events owed to this endpoint whose case is not waiting to retry, each
    case's in an unbroken run from the one after its cursor: a case's writes can land
    out of order (seq 3 before seq 2), and then its events wait at the gap until it
    fills (every write is retried until it lands), so none is skipped or sent early."""
    query = (_owed(sub.url, sub.low_water, TimelineEvent, EventCursor.last_seq)
             .where(or_(EventCursor.retry_at.is_(None), EventCursor.retry_at <= now))
             .order_by(TimelineEvent.id).limit(limit))
    nexts: dict[str, int] = {}
    ready = []
    rows = sorted(session.execute(query), key=lambda r: (r[0].case_id, r[0].seq))
    for event, last_seq in rows:
        if event.case_id not in nexts:
            nexts[event.case_id] = (last_seq if last_seq is not None
                                    else _seen_before(session, sub, event.case_id)) + 1
        if event.seq == nexts[event.case_id]:
            ready.append(event)
            nexts[event.case_id] += 1
    return ready  # each case's in seq order


def _seen_before(session: Session, sub: EventSubscription, case_id: str) -> int:
    """The last seq of a case the endpoint is not owed (written before it subscribed),
    or 0 for a case that began after."""
    return session.scalar(select(func.max(TimelineEvent.seq)).where(
        TimelineEvent.case_id == case_id, TimelineEvent.id <= sub.start_id)) or 0


def backlog(session: Session, sub: EventSubscription) -> int:
    """How many events the endpoint is owed now."""
    return session.scalar(_owed(sub.url, sub.low_water, func.count())) or 0


def delivered(session: Session, url: str, event: TimelineEvent, now: datetime) -> None:
    cursor = session.get(EventCursor, (url, event.case_id))
    if cursor is None:
        cursor = EventCursor(url=url, case_id=event.case_id, last_seq=0, failures=0)
        session.add(cursor)
    cursor.last_seq = max(cursor.last_seq, event.seq)
    cursor.failures, cursor.retry_at, cursor.last_error = 0, None, None


def refused(session: Session, url: str, event: TimelineEvent, now: datetime,
            error: str) -> None:
    """The endpoint refused this event: its case waits, the others go on."""
    cursor = session.get(EventCursor, (url, event.case_id))
    if cursor is None:
        cursor = EventCursor(url=url, case_id=event.case_id, last_seq=event.seq - 1,
                             failures=0)
        session.add(cursor)
    cursor.failures += 1
    cursor.retry_at = now + backoff(cursor.failures)
    cursor.last_error = error[:500]


# Longer than any projection write stays uncommitted (its activity times out in 10 s).
HORIZON_LAG = timedelta(minutes=1)


def raise_low_water(session: Session, sub: EventSubscription, now: datetime) -> None:
    """Move `low_water` up to just below the oldest event still owed, but never past
    the newest id seen at least HORIZON_LAG ago: ids are handed out when a write
    starts, so a lower id can still appear after a higher one is visible."""
    if sub.horizon_at is not None and now - as_utc(sub.horizon_at) < HORIZON_LAG:
        return
    oldest = session.scalar(_owed(sub.url, sub.low_water, func.min(TimelineEvent.id)))
    limit = sub.horizon_id if oldest is None else min(sub.horizon_id, oldest - 1)
    sub.low_water = max(sub.low_water, limit)
    sub.horizon_id = session.scalar(select(func.max(TimelineEvent.id))) or 0
    sub.horizon_at = now
