"""The housekeeping scheduler's jobs: the overdue digest, the KPI snapshot, the
reconciliation against Temporal, the outbox sweep, and the leases that keep two
schedulers from running a job twice."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from aftersales.mailsink import read_mailbox, start_sink
from aftersales.scheduler import Housekeeping
from db import kpi, leases, outbox, reports
from db.accounts import create_user
from db.engine import make_engine, make_sessionmaker
from db.models import Case, KpiSnapshot, OutboxMessage, SchedulerLease
from db.reports import ReportFilter
from tests.conftest import BackgroundWorker, make_settings, staff_token
from tests.test_reports import seed
from web import create_app

NOW = datetime(2026, 11, 13, 1, 0, tzinfo=UTC)


class Clock:
    """A settable clock for the jobs."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def sink(tmp_path):
    controller = start_sink(tmp_path / "mailbox.jsonl")
    yield controller, tmp_path / "mailbox.jsonl"
    controller.stop()


def housekeeping(database_url: str, clock: Clock, holder: str, smtp_port: int = 9,
                 temporal_address: str = "127.0.0.1:9") -> Housekeeping:
    settings = make_settings(temporal_address, database_url, "http://127.0.0.1:9",
                             smtp_host="127.0.0.1", smtp_port=smtp_port)
    return Housekeeping(settings, holder=holder, clock=clock)


def test_kpi_snapshot_counts_are_exact_and_rewritten_not_added(database_url):
    clock = Clock(NOW)
    jobs = housekeeping(database_url, clock, "one")
    sessions = make_sessionmaker(make_engine(database_url))
    seed(sessions)
    try:
        assert jobs.kpi_snapshot() == kpi.REFRESH_DAYS
        assert jobs.kpi_snapshot() == kpi.REFRESH_DAYS  # run again: same rows
        with sessions() as session:
            rows = {reports.day_start(r.day): r for r in session.scalars(select(KpiSnapshot))}
            assert len(rows) == kpi.REFRESH_DAYS
            opened_day = rows[datetime(2026, 11, 10, tzinfo=UTC)]
            # A, B and C were opened on 10 November: clocks met A2 + B1 + C1, breached B1;
            # ratings 5 (A) and 2 (B); C is overdue.
            assert (opened_day.opened, opened_day.closed, opened_day.clocks_met,
                    opened_day.clocks_breached, opened_day.ratings, opened_day.satisfied,
                    opened_day.rating_sum, opened_day.overdue_open) == (3, 0, 4, 1, 2, 1, 7, 1)
            closed_day = rows[datetime(2026, 11, 12, tzinfo=UTC)]  # A closed at T0 + 48 h
            assert (closed_day.opened, closed_day.closed) == (0, 1)
            assert sum(r.opened for r in rows.values()) == 3  # D (October 1) is too old
            # The day's report tally is kept beside the counts, and the reports add
            # the days up: two weeks, the second holding A, B and C.
            assert opened_day.figures["opened"] == 3
            assert opened_day.figures["clocks"] == {"confirm": [2, 1], "resolution": [2, 0]}
            edges = [datetime(2026, 11, d, tzinfo=UTC) for d in (2, 9, 16)]
            weeks = reports.period_tallies(session, ReportFilter(edges[0], edges[-1]), NOW,
                                           edges)
        assert (weeks[0]["opened"], weeks[0]["ratings"]) == (0, 0)
        week = weeks[1]
        assert (week["opened"], week["closed"], week["ratings"], week["satisfied"],
                week["rating_sum"]) == (3, 1, 2, 1, 7)
    finally:
        jobs.close()
        sessions.kw["bind"].dispose()


def test_two_schedulers_run_a_job_once(database_url):
    clock = Clock(NOW)
    first, second = (housekeeping(database_url, clock, name) for name in ("one", "two"))
    barrier = threading.Barrier(2)
    results: dict[str, tuple] = {}

    def run(jobs: Housekeeping) -> None:
        barrier.wait(10)
        results[jobs.holder] = jobs.run_job("kpi_snapshot")

    try:
        threads = [threading.Thread(target=run, args=(jobs,)) for jobs in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(ran for ran, _ in results.values()) == [False, True]
        # Later the same day: done, for both.
        clock.at = NOW + timedelta(hours=3)
        assert first.run_job("kpi_snapshot") == (False, None)
        assert second.run_job("kpi_snapshot") == (False, None)
        # The next day it runs again, once.
        clock.at = NOW + timedelta(days=1)
        assert second.run_job("kpi_snapshot")[0] is True
        assert first.run_job("kpi_snapshot")[0] is False
    finally:
        first.close()
        second.close()


def test_a_dead_schedulers_lease_expires_and_the_run_is_done_by_another(database_url):
    clock = Clock(NOW)
    jobs = housekeeping(database_url, clock, "alive")
    sessions = make_sessionmaker(make_engine(database_url))
    try:
        # A scheduler took this hour's digest and died before finishing it.
        assert leases.claim_run(sessions, "overdue_digest", NOW.strftime("%Y-%m-%dT%H"),
                                "dead", NOW, timedelta(minutes=30))
        assert jobs.run_job("overdue_digest") == (False, None)
        clock.at = NOW + timedelta(minutes=31)
        assert jobs.run_job("overdue_digest")[0] is True
        with sessions() as session:
            lease = session.get(SchedulerLease, "overdue_digest")
            assert lease is not None and lease.done_key == NOW.strftime("%Y-%m-%dT%H")
            assert lease.holder is None
    finally:
        jobs.close()
        sessions.kw["bind"].dispose()


def test_overdue_digest_is_one_message_per_hour_to_each_supervisor(database_url, sink):
    controller, mailbox = sink
    clock = Clock(NOW)
    first, second = (housekeeping(database_url, clock, name, controller.port)
                     for name in ("one", "two"))
    sessions = make_sessionmaker(make_engine(database_url))
    seed(sessions)  # AS-RC is open and overdue
    with sessions.begin() as session:
        create_user(session, "sam", "supervisor", email="sam@shop.example", locale="en")
        create_user(session, "su", "supervisor", email="su@shop.example", locale="zh-CN")
        create_user(session, "hank", "handler", email="hank@shop.example")
    try:
        key = first.overdue_digest()
        assert key == "digest:overdue:2026-11-13T01:00Z"
        assert first.overdue_digest() == key and second.overdue_digest() == key
        assert second.run_job("overdue_digest")[0] is True  # the lease ran; no new message
        mails = read_mailbox(mailbox)
        assert sorted(m["rcpt_to"][0] for m in mails) == ["sam@shop.example",
                                                          "su@shop.example"]
        english = next(m for m in mails if m["rcpt_to"] == ["sam@shop.example"])
        assert english["subject"] == "1 overdue case (2026-11-13T01:00Z)"
        assert "AS-RC" in english["body"]
        chinese = next(m for m in mails if m["rcpt_to"] == ["su@shop.example"])
        assert chinese["subject"] == "超时工单汇总：1 件（2026-11-13T01:00Z）"
        clock.at = NOW + timedelta(hours=1)
        assert second.overdue_digest() == "digest:overdue:2026-11-13T02:00Z"
        assert len(read_mailbox(mailbox)) == 4
        with sessions() as session:
            assert session.scalar(select(OutboxMessage.sent_at).where(
                OutboxMessage.key == key)) is not None
    finally:
        first.close()
        second.close()
        sessions.kw["bind"].dispose()


def test_no_digest_when_nothing_is_overdue(sqlite_url, sink):
    controller, mailbox = sink
    jobs = housekeeping(sqlite_url, Clock(NOW), "one", controller.port)
    try:
        assert jobs.overdue_digest() is None
        assert read_mailbox(mailbox) == []
    finally:
        jobs.close()


def test_the_sweep_sends_rows_left_unsent_and_leaves_fresh_ones(database_url, sink):
    controller, mailbox = sink
    clock = Clock(NOW)
    jobs = housekeeping(database_url, clock, "one", controller.port)
    sessions = make_sessionmaker(make_engine(database_url))
    with sessions.begin() as session:
        create_user(session, "sam", "supervisor", email="sam@shop.example", locale="en")
        outbox.add_message(session, "AS-S1:1", NOW - timedelta(hours=1), "staff", "sam",
                           "inspection_due", {"case_id": "AS-S1"})
        outbox.add_message(session, "AS-S2:1", NOW - timedelta(minutes=1), "staff", "sam",
                           "inspection_due", {"case_id": "AS-S2"})
    try:
        report = jobs.sweep_outbox()
        assert report.result.sent == ["AS-S1:1"]
        assert [m["subject"] for m in read_mailbox(mailbox)] == [
            "Case AS-S1: returned goods to inspect"]
        assert jobs.sweep_outbox().result.sent == []  # nothing left that is old enough
    finally:
        jobs.close()
        sessions.kw["bind"].dispose()


def test_reconciliation_repairs_a_corrupted_projection_row_and_reports_it(
        temporal_address, sqlite_url, order_system_url):
    settings = make_settings(temporal_address, sqlite_url, order_system_url)
    worker = BackgroundWorker(settings)
    worker.start()
    app = create_app(settings)
    jobs = Housekeeping(settings, holder="one")
    try:
        headers = {"Authorization": f"Bearer {staff_token(app)}"}
        http = app.test_client()
        ids = []
        for order in ("SO-10002", "SO-10003"):
            answer = http.post("/api/v1/cases", headers=headers, json={
                "kind": "complaint", "channel": "phone", "order_id": order,
                "customer": {"id": "C-1", "name": "Li Na", "phone": "13800000002"},
                "description": "The tea box arrived crushed."})
            assert answer.status_code == 201
            ids.append(answer.get_json()["id"])
        bad, good = ids
        sessions = app.extensions["aftersales"].sessions
        with sessions.begin() as session:
            version = session.get(Case, bad).version
            # A lost or mangled write: the row claims a later stage at the same version.
            session.execute(update(Case).where(Case.id == bad).values(
                stage="resolve", status="resolving"))
            # Or a field beside the stage: an assignee nobody gave it.
            session.execute(update(Case).where(Case.id == good).values(assignee="mallory"))
        report = jobs.reconcile()
        assert report.checked == 2 and not report.unanswered and not report.raced
        repairs = {r.case_id: r for r in report.repaired}
        assert set(repairs) == {bad, good}
        assert repairs[bad].was == {"stage": "resolve", "status": "resolving"}
        assert repairs[bad].now == {"stage": "confirm", "status": "open"}
        assert (repairs[good].was, repairs[good].now) == ({"assignee": "mallory"},
                                                          {"assignee": None})
        with sessions() as session:
            assert session.get(Case, bad).version == version
        assert http.get(f"/api/v1/cases/{bad}", headers=headers).get_json()["stage"] == \
            "confirm"
        assert http.get(f"/api/v1/cases/{good}", headers=headers).get_json()["stage"] == \
            "confirm"
        assert jobs.reconcile().repaired == []  # nothing left to repair
    finally:
        jobs.close()
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()
        worker.stop()



def test_scheduler_run_once_from_the_command_line(sqlite_url):
    env = {**os.environ, "AFTERSALES_DATABASE_URL": sqlite_url}
    argv = [sys.executable, "-m", "aftersales.cli", "scheduler", "--run", "kpi_snapshot"]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"kpi_snapshot: {kpi.REFRESH_DAYS}"
    again = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert "done already" in again.stdout
