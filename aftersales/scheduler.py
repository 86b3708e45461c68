"""`aftersales scheduler`: read-model housekeeping on a timetable, in its own process.

Only housekeeping lives here (case deadlines are durable workflow timers, never
APScheduler jobs): purging expired Idempotency-Keys and anonymising cases closed
longer ago than the retention period.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.blocking import BlockingScheduler

from aftersales.settings import Settings
from db.engine import make_engine, make_sessionmaker, migrate
from db.privacy import anonymise_closed
from web.idempotency import purge_expired

log = logging.getLogger("aftersales.scheduler")


class Housekeeping:
    """The jobs, callable directly (tests) or on the scheduler's timetable."""

    def __init__(self, settings: Settings) -> None:
        self._engine = make_engine(settings.database_url)
        self._sessions = make_sessionmaker(self._engine)
        self._retention = timedelta(seconds=settings.retention)

    def purge_idempotency_keys(self) -> int:
        count = purge_expired(self._sessions)
        log.info("purged %d expired idempotency keys", count)
        return count

    def anonymise_closed_cases(self) -> int:
        with self._sessions.begin() as session:
            count = anonymise_closed(session, self._retention, datetime.now(UTC))
        log.info("anonymised %d cases past retention", count)
        return count

    def close(self) -> None:
        self._engine.dispose()


def run_scheduler(settings: Settings) -> None:
    migrate(settings.database_url)
    jobs = Housekeeping(settings)
    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(jobs.purge_idempotency_keys, "interval", hours=1,
                      next_run_time=datetime.now(UTC))
    scheduler.add_job(jobs.anonymise_closed_cases, "cron", hour=3, minute=17)
    log.info("scheduler running: idempotency keys hourly, retention %ss daily",
             settings.retention)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        jobs.close()
