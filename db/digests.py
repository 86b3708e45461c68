"""Warning digests: the SLA warnings the workflows wrote to the outbox (outbox.DIGESTED),
gathered into one message per person at most once per interval.

Who gets a warning is decided when the digest is written, from the case as it stands
then: its assignee; an unassigned case's team (its active members on duty); a case
without a team, or a team with nobody on duty, the supervisors. A warning whose case
has closed or whose clock has stopped meanwhile is dropped: it asks for nothing now.

Exactly-once: the digest row and the marks on the warnings it carries (each warning
row's `delivered` names the people whose digest took it, `digest:<user>`, and the row
is sent once every recipient has it) are written in one transaction. The digest row is
then sent like any outbox row, through its claim (activities/notifications.py), so a
warning is in exactly one digest per person and that digest has the outbox's
guarantee (docs/notifications.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import outbox
from db.models import Case, CaseClock, OutboxMessage, TimelineEvent, User, UserTeam
from workflows.case.vocabulary import OPEN_STAGES

TEMPLATE = "warning_digest"
KEY_PREFIX = "digest:warnings:"
SUPERVISORS = "supervisor"
# The most warnings one run looks at; the rest wait for the next run.
BATCH = 2000
# The most cases one digest lists (its count says how many there are).
MAX_CASES = 50
STOPPED = ("met", "breached")
# The intervals a user may choose for their own digests (the desk's preference), in
# seconds; a user who chose none has AFTERSALES_DIGEST_INTERVAL.
CHOICES = (15 * 60, 30 * 60, 60 * 60, 2 * 60 * 60, 4 * 60 * 60)


@dataclass(frozen=True)
class Written:
    """One digest written: its outbox key, to whom, how many cases."""

    key: str
    recipient: str
    count: int


def _marker(user: str) -> str:
    return f"digest:{user}"


def recipients(session: Session, case: Case) -> list[str]:
    """Who a warning about `case` goes to now: its assignee, else its team's active
    members on duty, else every active supervisor."""
    if case.assignee:
        user = session.get(User, case.assignee)
        if user is not None and user.active:
            return [user.name]
    if case.team:
        team = list(session.scalars(
            select(UserTeam.user_name).join(User, User.name == UserTeam.user_name)
            .where(UserTeam.team == case.team, User.active.is_(True),
                   User.on_duty.is_(True)).order_by(UserTeam.user_name)))
        if team:
            return team
    return list(session.scalars(select(User.name).where(
        User.role == SUPERVISORS, User.active.is_(True)).order_by(User.name)))


def _due_at(session: Session, case_id: str, clock: str, share: object) -> datetime | None:
    """The clock's deadline as the warning's timeline event recorded it."""
    for detail in session.scalars(
            select(TimelineEvent.detail).where(TimelineEvent.case_id == case_id,
                                               TimelineEvent.type == "sla_warning")
            .order_by(TimelineEvent.seq.desc())):
        if detail.get("clock") == clock and detail.get("share") == share and detail.get("due_at"):
            due = datetime.fromisoformat(detail["due_at"])
            return due if due.tzinfo else due.replace(tzinfo=UTC)
    return None


def _clock_stopped(session: Session, case_id: str, clock: str) -> bool:
    states = set(session.scalars(select(CaseClock.state).where(
        CaseClock.case_id == case_id, CaseClock.name == clock)))
    return bool(states) and states <= set(STOPPED)


def last_digest(session: Session, user: str) -> datetime | None:
    """When the user's last digest was written (SQLite hands it back without a zone)."""
    at = session.scalar(select(OutboxMessage.created_at).where(
        OutboxMessage.template == TEMPLATE, OutboxMessage.recipient == user)
        .order_by(OutboxMessage.created_at.desc()).limit(1))
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def interval_of(session: Session, user: str, default: timedelta) -> timedelta:
    """The user's own digest interval, if they chose one, else `default`."""
    chosen = session.scalar(select(User.digest_interval).where(User.name == user))
    return timedelta(seconds=chosen) if chosen else default


def set_interval(session: Session, user: str, seconds: int | None) -> None:
    """The user's choice: one of CHOICES, or None for the settings' interval."""
    if seconds is not None and seconds not in CHOICES:
        raise ValueError(f"a digest interval is one of {CHOICES} seconds, not {seconds!r}")
    row = session.get(User, user)
    if row is None:
        raise LookupError(f"no user '{user}'")
    row.digest_interval = seconds


def write_digests(session: Session, now: datetime, interval: timedelta) -> list[Written]:
    """Write the digests that are due, in the caller's transaction, and mark the
    warnings they carry. A person whose last digest is younger than their interval (their
    own choice, else `interval`) waits; their warnings stay for a later run."""
    rows = list(session.scalars(
        select(OutboxMessage).where(OutboxMessage.template.in_(outbox.DIGESTED),
                                    OutboxMessage.sent_at.is_(None))
        .order_by(OutboxMessage.created_at, OutboxMessage.key).limit(BATCH)
        # A second run at the same time (a lease outlived) skips the rows this one
        # holds on PostgreSQL, so no warning is in two digests; SQLite has one writer.
        .with_for_update(skip_locked=True)))
    per_person: dict[str, list[tuple[OutboxMessage, dict]]] = {}
    wanted: dict[str, list[str]] = {}
    for row in rows:
        case = session.get(Case, row.case_id) if row.case_id else None
        clock = str(row.payload.get("clock", ""))
        why = None
        if case is None or case.stage not in OPEN_STAGES:
            why = "case closed before the digest"
        elif _clock_stopped(session, case.id, clock):
            why = f"the {clock} clock stopped before the digest"
        if why is not None or case is None:
            row.sent_at, row.last_error = now, why
            continue
        everyone = recipients(session, case)
        people = [p for p in everyone if _marker(p) not in row.delivered]
        if not people:  # nobody to reach, or every recipient's digest has it
            row.sent_at = now
            row.last_error = None if everyone else "nobody to reach for the digest"
            continue
        wanted[row.key] = people
        due = _due_at(session, case.id, clock, row.payload.get("share"))
        item = {"id": case.id, "clock": clock, "share": row.payload.get("share"),
                "stage": case.stage, "assignee": case.assignee or "", "team": case.team or "",
                "customer": case.customer_name, "order_id": case.order_id,
                "due_at": due.isoformat() if due else "",
                # Whole minutes left when the digest is written (negative: past it).
                "minutes_left": (int((due - now).total_seconds() // 60)
                                 if due is not None else None)}
        for person in people:
            per_person.setdefault(person, []).append((row, item))
    written: list[Written] = []
    for person, entries in sorted(per_person.items()):
        last = last_digest(session, person)
        if last is not None and last > now - interval_of(session, person, interval):
            continue  # this person's next digest is not due yet
        # One line per case and clock: the latest warning says it all.
        latest: dict[tuple[str, str], dict] = {}
        for _row, item in entries:
            latest[(item["id"], item["clock"])] = item
        items = sorted(latest.values(), key=lambda i: (
            i["minutes_left"] if i["minutes_left"] is not None else 10 ** 9, i["id"]))
        key = f"{KEY_PREFIX}{person}:{now.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        if not outbox.add_message(session, key, now, "staff", person, TEMPLATE, {
                "count": len(items), "cases": items[:MAX_CASES],
                "more": max(0, len(items) - MAX_CASES)}):
            continue  # written already by this very run (a retried transaction)
        for row, _item in entries:
            row.delivered = [*row.delivered, _marker(person)]
            if all(_marker(p) in row.delivered for p in wanted[row.key]):
                row.sent_at = now
                row.last_error = None
        written.append(Written(key, person, len(items)))
    session.flush()
    return written


def unsent_digests(session: Session, limit: int = 200) -> list[str]:
    """Digest rows written but not yet sent (a crash between the write and the send)."""
    return list(session.scalars(
        select(OutboxMessage.key).where(OutboxMessage.template == TEMPLATE,
                                        OutboxMessage.sent_at.is_(None),
                                        OutboxMessage.attempts < outbox.GIVE_UP_AFTER)
        .order_by(OutboxMessage.created_at).limit(limit)))

