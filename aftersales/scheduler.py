"""`aftersales scheduler`: read-model housekeeping on a timetable, in its own process.

Only housekeeping lives here (case deadlines are durable workflow timers, never
APScheduler jobs): the hourly overdue digest to supervisors, each person's digest of
SLA warnings (every minute, one digest per person per AFTERSALES_DIGEST_INTERVAL at
most), the nightly KPI snapshot,
reconciliation of the read model against Temporal, the sweep of outbox rows left
unsent, purging expired Idempotency-Keys and ended rate-limit counts, anonymising
cases past retention, and polling the inbound mailbox (AFTERSALES_IMAP_URL) for the
mail handler the composition root gives (aftersales/mailin.py).

Every job runs under a lease in the database (db/leases.py), named by its run (the
hour, the day, the slot), so a second scheduler started by mistake runs nothing twice;
and every job is idempotent, so a run repeated after a crash does no harm.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import select

from activities.notifications import DeliveryReport, OutboxDelivery
from aftersales.blobs import make_store, sweep
from aftersales.events_out import EndpointReport, EventsOut, shown_url
from aftersales.mailin import Handle, ImapPoller, PollReport
from aftersales.reconcile import ReconcileReport, reconcile
from aftersales.settings import Settings
from db import cases as case_store
from db import digests, kpi, leases, outbox, ratecounters
from db.cases import jsonable
from db.engine import make_engine, make_sessionmaker, migrate
from db.idempotency import purge_expired
from db.links import LinkSeal
from db.models import Case
from db.privacy import anonymise_closed
from workflows.case.vocabulary import OPEN_STAGES

log = logging.getLogger("aftersales.scheduler")

# Rows the delivery activity has had this long to send are swept up.
SWEEP_AFTER = timedelta(minutes=15)
DIGEST_MAX_CASES = 50


def _slot(minutes: int) -> Callable[[datetime], str]:
    def key(now: datetime) -> str:
        return now.replace(minute=now.minute - now.minute % minutes, second=0,
                           microsecond=0).strftime("%Y-%m-%dT%H:%M")
    return key


def _seconds(seconds: int) -> Callable[[datetime], str]:
    def key(now: datetime) -> str:
        return now.replace(second=now.second - now.second % seconds, microsecond=0
                           ).strftime("%Y-%m-%dT%H:%M:%S")
    return key


def _hour(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H")


def _day(now: datetime) -> str:
    return now.strftime("%Y-%m-%d")


# job -> (Housekeeping method, the run a moment belongs to, lease time-to-live).
JOBS: dict[str, tuple[str, Callable[[datetime], str], timedelta]] = {
    "overdue_digest": ("overdue_digest", _hour, timedelta(minutes=30)),
    "warning_digest": ("warning_digests", _slot(1), timedelta(minutes=10)),
    "kpi_snapshot": ("kpi_snapshot", _day, timedelta(hours=1)),
    "reconcile": ("reconcile", _slot(15), timedelta(minutes=30)),
    "outbox_sweep": ("sweep_outbox", _slot(5), timedelta(minutes=10)),
    "idempotency_purge": ("purge_idempotency_keys", _hour, timedelta(minutes=30)),
    "rate_counter_purge": ("purge_rate_counters", _hour, timedelta(minutes=30)),
    "retention": ("anonymise_closed_cases", _day, timedelta(hours=1)),
    "blob_sweep": ("sweep_blobs", _day, timedelta(hours=1)),
    "events_out": ("send_events", _seconds(5), timedelta(minutes=5)),
    # A poll can outlast its minute (a slow server, a batch of big mails): the lease
    # outlasts it, so a second scheduler does not poll the same mailbox meanwhile.
    "mail_poll": ("poll_mail", _slot(1), timedelta(minutes=10)),
}
# A blob is stored before the case records it (aftersales/blobs.py): one younger than
# this may belong to an upload still under way, and is never swept.
BLOB_GRACE = timedelta(days=1)


def forget_blobs(settings: Settings, sessions, freed: set[str]) -> int:
    """Delete the blobs of erased files that no other case references (the same photo
    can be on two cases: content-addressed). Returns how many went."""
    if not freed:
        return 0
    with sessions() as session:
        still = case_store.referenced_blobs(session)
    store = make_store(settings)
    gone = sorted(freed - still)
    for sha in gone:
        store.delete(sha)
    return len(gone)


class Housekeeping:
    """The jobs, callable directly (tests) or on the scheduler's timetable."""

    def __init__(self, settings: Settings, holder: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 delivery: OutboxDelivery | None = None,
                 mail_handler: Handle | None = None) -> None:
        self._settings = settings
        # What to do with each inbound mail's bytes (the router); None: not polled.
        self._mail_handler = mail_handler
        self._engine = make_engine(settings.database_url)
        self._sessions = make_sessionmaker(self._engine)
        self._retention = timedelta(seconds=settings.retention)
        self._now = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._delivery = delivery or OutboxDelivery(self._sessions, settings)
        self._events: EventsOut | None = None

    # ------------------------------------------------------------ the lease

    def run_job(self, job: str) -> tuple[bool, Any]:
        """Run `job` under its lease, for the run its period names (this hour, this
        day, this slot), unless that run is done or another scheduler holds it.
        Returns whether it ran here and what it returned."""
        method, period, ttl = JOBS[job]
        now = self._now()
        run_key = period(now)
        if not leases.claim_run(self._sessions, job, run_key, self.holder, now, ttl):
            log.info("%s %s: done or running elsewhere, skipped", job, run_key)
            return False, None
        done = False
        try:
            result = getattr(self, method)()
            done = True
            return True, result
        finally:
            leases.finish_run(self._sessions, job, run_key, self.holder, self._now(), done)

    # ------------------------------------------------------------ the jobs

    def overdue_digest(self) -> str | None:
        """The open overdue cases, to every supervisor, through the outbox: one message
        per hour however often it runs. Returns its outbox key (None: nothing overdue)."""
        hour = self._now().strftime("%Y-%m-%dT%H:00Z")
        key = f"digest:overdue:{hour}"
        with self._sessions.begin() as session:
            cases = session.execute(
                select(Case.id, Case.priority, Case.stage, Case.assignee, Case.stage_due_at)
                .where(Case.stage.in_(OPEN_STAGES), Case.overdue.is_(True))
                .order_by(Case.priority, Case.due_key, Case.id)).all()
            if not cases:
                return None
            outbox.add_message(session, key, self._now(), "staff", "role:supervisor",
                               "overdue_digest", {
                                   "hour": hour, "count": len(cases),
                                   "cases": [{"id": c.id, "priority": c.priority,
                                              "stage": c.stage, "assignee": c.assignee,
                                              "stage_due_at": jsonable(c.stage_due_at)}
                                             for c in cases[:DIGEST_MAX_CASES]]})
        log.info("overdue digest %s: %d cases", hour, len(cases))
        self._delivery.deliver([key])
        return key

    def warning_digests(self) -> list[digests.Written]:
        """Each person's SLA warnings, one digest at most per AFTERSALES_DIGEST_INTERVAL
        (db/digests.py): written with the marks on the warnings in one transaction,
        then sent through the outbox's claim, with any digest an earlier run wrote and
        did not send. Returns the digests written now."""
        now = self._now()
        with self._sessions.begin() as session:
            written = digests.write_digests(
                session, now, timedelta(seconds=self._settings.digest_interval))
        with self._sessions() as session:
            pending = digests.unsent_digests(session)
        if pending:
            self._delivery.deliver(pending)
        for digest in written:
            log.info("warning digest %s: %d cases", digest.key, digest.count)
        return written

    def kpi_snapshot(self) -> int:
        """Rewrite the KPI rows of the last days; returns how many days."""
        with self._sessions.begin() as session:
            days = kpi.take_snapshots(session, self._now())
        log.info("KPI snapshot: %d days rewritten", days)
        return days

    def reconcile(self) -> ReconcileReport:
        """Repair open cases whose projection disagrees with Temporal, and say which."""
        report = asyncio.run(self._reconcile())
        log.info("reconciliation: %d open cases checked, %d repaired (%s), %d unanswered, "
                 "%d not written (%s)", report.checked, len(report.repaired),
                 ", ".join(r.case_id for r in report.repaired) or "none",
                 len(report.unanswered), len(report.unwritten),
                 ", ".join(report.unwritten) or "none")
        return report

    async def _reconcile(self) -> ReconcileReport:
        from aftersales.temporal import connect

        client = await connect(self._settings)
        return await reconcile(client, self._sessions, LinkSeal(self._settings.secret_key))

    def sweep_outbox(self) -> DeliveryReport:
        """Send rows left unsent (a worker died between the write and the send, or the
        delivery activity gave up), through the same claim as the activity."""
        with self._sessions() as session:
            keys = outbox.unsent_keys(session, self._now(), SWEEP_AFTER)
        report = self._delivery.deliver(keys)
        if keys:
            log.info("outbox sweep: %d sent, %d failed, %d busy",
                     len(report.result.sent), len(report.failed), len(report.busy))
        return report

    def purge_idempotency_keys(self) -> int:
        count = purge_expired(self._sessions)
        log.info("purged %d expired idempotency keys", count)
        return count

    def purge_rate_counters(self) -> int:
        """Forget the rate limits' counts whose window has ended (web/ratelimit.py)."""
        count = ratecounters.purge_ended(self._sessions, self._now())
        log.info("purged %d ended rate-limit counts", count)
        return count

    def anonymise_closed_cases(self) -> int:
        freed: set[str] = set()
        with self._sessions.begin() as session:
            count = anonymise_closed(session, self._retention, self._now(), freed)
        files = forget_blobs(self._settings, self._sessions, freed)
        log.info("anonymised %d cases past retention, %d files deleted", count, files)
        return count

    def sweep_blobs(self) -> int:
        """Delete stored files no case references (an upload the case refused, a case
        that never came to be), once they are older than BLOB_GRACE."""
        with self._sessions() as session:
            referenced = case_store.referenced_blobs(session)
        gone = sweep(make_store(self._settings), referenced, self._now() - BLOB_GRACE)
        log.info("blob sweep: %d unreferenced files deleted", len(gone))
        return len(gone)

    def send_events(self) -> dict[str, EndpointReport]:
        """Timeline events to the subscribed endpoints (aftersales/events_out.py)."""
        if not self._settings.event_webhook_urls:
            return {}
        if self._events is None:
            self._events = EventsOut(self._sessions, self._settings.event_webhook_urls,
                                     self._settings.event_webhook_secret, clock=self._now)
        reports = self._events.run_once()
        for url, report in reports.items():
            if report.sent or report.failed:
                log.info("events out to %s: %d sent, %d failed%s", shown_url(url), report.sent,
                         report.failed, ", gone" if report.gone else "")
        return reports
    def poll_mail(self) -> PollReport | None:
        """Hand the new mail of AFTERSALES_IMAP_URL to the mail handler; the cursor
        moves past each only once the handler returned (aftersales/mailin.py)."""
        if not self._settings.imap_url:
            log.info("mail poll: AFTERSALES_IMAP_URL is not set, skipped")
            return None
        if self._mail_handler is None:
            log.warning("mail poll: AFTERSALES_IMAP_URL is set but this scheduler was "
                        "given no mail handler, skipped")
            return None
        return ImapPoller.from_settings(self._settings, self._sessions).poll(
            self._mail_handler)

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
        self._engine.dispose()


def run_once(settings: Settings, job: str, mail_handler: Handle | None = None) -> str:
    """`aftersales scheduler --run JOB`: one run now, under the lease; what it did."""
    migrate(settings.database_url)
    jobs = Housekeeping(settings, mail_handler=mail_handler)
    try:
        ran, result = jobs.run_job(job)
    finally:
        jobs.close()
    if not ran:
        return f"{job}: this run is done already or running in another scheduler"
    if isinstance(result, ReconcileReport):
        lines = [f"reconcile: {result.checked} open cases checked, "
                 f"{len(result.repaired)} repaired, {len(result.unanswered)} unanswered, "
                 f"{len(result.unwritten)} not written"]
        lines += [f"  repaired {r.case_id}: read model had {r.was}, workflow {r.now}"
                  for r in result.repaired]
        lines += [f"  unanswered {case_id}: {why}" for case_id, why in result.unanswered.items()]
        lines += [f"  not written {case_id}: {why} (aftersales cases reproject {case_id})"
                  for case_id, why in result.unwritten.items()]
        return "\n".join(lines)
    if isinstance(result, DeliveryReport):
        return (f"outbox_sweep: {len(result.result.sent)} sent, {len(result.failed)} failed, "
                f"{len(result.busy)} busy")
    return f"{job}: {result}"


def run_scheduler(settings: Settings, mail_handler: Handle | None = None) -> None:
    """The timetable; `mail_handler` is what to do with each inbound mail. The mail
    process (`python -m web.mailroute`, `aftersales mail-in`) runs the poll with the
    case router; a scheduler without a handler leaves the mailbox to it."""
    migrate(settings.database_url)
    jobs = Housekeeping(settings, mail_handler=mail_handler)
    scheduler = BlockingScheduler(timezone="UTC", job_defaults={
        "coalesce": True, "max_instances": 1, "misfire_grace_time": 600})
    now = datetime.now(UTC)
    timetable: list[tuple[str, str, dict[str, Any]]] = [
        ("idempotency_purge", "interval", {"hours": 1, "next_run_time": now}),
        ("rate_counter_purge", "interval", {"hours": 1, "next_run_time": now}),
        ("outbox_sweep", "interval", {"minutes": 5, "next_run_time": now}),
        ("reconcile", "interval", {"minutes": 15, "next_run_time": now + timedelta(minutes=1)}),
        ("overdue_digest", "cron", {"minute": 5}),
        ("warning_digest", "interval", {"minutes": 1, "next_run_time": now}),
        ("kpi_snapshot", "cron", {"hour": 0, "minute": 30}),
        ("retention", "cron", {"hour": 3, "minute": 17}),
        ("blob_sweep", "cron", {"hour": 4, "minute": 7}),
        ("events_out", "interval", {"seconds": 5, "next_run_time": now}),
    ]
    if mail_handler is not None:
        timetable.append(("mail_poll", "interval", {"seconds": settings.imap_interval,
                                                    "next_run_time": now}))
    for job, trigger, args in timetable:
        scheduler.add_job(partial(jobs.run_job, job), trigger, id=job, **args)
    # Also at start, so a new install or a scheduler restarted after 00:30 has its
    # trend charts; the per-day lease keeps it to one run a day.
    scheduler.add_job(partial(jobs.run_job, "kpi_snapshot"), "date", id="kpi_snapshot_now",
                      run_date=now + timedelta(seconds=30))
    log.info("scheduler %s running: digest hourly at :05, warning digests every %ss at "
             "most per person, KPI snapshot 00:30, "
             "reconciliation every 15 min, outbox sweep every 5 min, idempotency keys "
             "and rate-limit counts hourly, retention %ss daily at 03:17, blob sweep "
             "04:07, events out every 5 s to %d endpoint(s), mail poll every %ss",
             jobs.holder, settings.digest_interval, settings.retention,
             len(settings.event_webhook_urls), settings.imap_interval)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        jobs.close()
