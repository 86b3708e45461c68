"""`aftersales bench --open-cases N`: N cases open at once with live deadline timers.

Starts worker processes of its own (`--workers`, on a fresh task queue, with their
own read model so the system's is untouched), opens N cases through Temporal exactly
as intake does, each with a confirm target chosen so that the N deadlines fall evenly
over a window after the last case is open, and waits until every case is overdue. It
reports the workers' memory (resident set, summed) and how late each deadline fired:
the instant the workflow ran its timer (the `overdue` and `sla_warning` events' `at`)
against the instant the policy makes it due (created_at + share × target on a 24×7
calendar). With several workers it also says how the cases' workflow tasks were shared
between them, from a sample of the cases' histories. The bench cases are terminated at
the end. Progress goes to stderr; the last line printed is JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import or_, select
from temporalio.service import RPCError, RPCStatusCode

from aftersales.policy import load_policy
from aftersales.settings import Settings
from aftersales.temporal import connect
from db.engine import make_engine, make_sessionmaker, migrate
from db.models import Case, TimelineEvent
from workflows.case.contracts import CaseInput, Customer, workflow_id
from workflows.case.workflow import CaseWorkflow
from workflows.sla import CalendarSpec

ORDERS = [f"SO-{10001 + n}" for n in range(40)]
SAMPLE = 50  # cases whose histories say which worker ran them


def log(message: str) -> None:
    print(f"[bench timers] {message}", file=sys.stderr, flush=True)


def rss_kib(pid: int) -> tuple[int, int]:
    """Resident and peak resident memory of a process, in KiB (Linux)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


CALIBRATION_TARGET = 2 * 86400  # the first cases only set the pace; they never fire


async def open_cases(settings: Settings, task_queue: str, count: int, concurrency: int,
                     window: float) -> tuple[dict[str, int], int, int]:
    """Open `count` cases. The first few (`BC-…`, deadlines days away) measure how fast
    cases open; the rest (`BT-…`) get deadlines spread over `window` seconds starting
    shortly after the last of them should be open. Returns BT case id -> confirm
    target (s), how many opened too late for their slot, and how many set the pace."""
    client = await connect(settings)
    policy = load_policy(settings.sla_file)
    # Round-the-clock calendar, so due = created + share × target exactly.
    policy = replace(policy, calendar=CalendarSpec(timezone="UTC", hours="24x7",
                                                   workdays=["mon", "tue", "wed", "thu",
                                                             "fri", "sat", "sun"]))
    pace = min(300, max(1, count // 10))
    targets: dict[str, int] = {}
    opened = 0
    late_slots = 0
    fire_from: float | None = None
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    started = time.monotonic()
    paced = asyncio.Event()

    async def one(n: int) -> None:
        nonlocal late_slots, opened, fire_from
        if n < pace:
            prefix, target = "BC", CALIBRATION_TARGET
        else:
            await paced.wait()
            assert fire_from is not None
            slot = fire_from + window * (n - pace) / max(1, count - pace - 1)
            prefix, target = "BT", round(slot - time.time())
            if target < 5:
                late_slots += 1
                target = 5
        # Whatever priority intake scores (a VIP customer raises it), the same target.
        case_policy = replace(policy, targets={**policy.targets, "complaint": {
            level: replace(t, confirm=target)
            for level, t in policy.targets["complaint"].items()}})
        case_id = f"{prefix}-{uuid.uuid4().hex[:10].upper()}"
        inp = CaseInput(
            case_id=case_id, kind="complaint", channel="system", order_id=ORDERS[n % 40],
            customer=Customer(id=f"BENCH-{n}", name="bench"), items=[],
            description="bench: a case with a live deadline", status_token=secrets.token_hex(8),
            customer_url=f"{settings.public_url}/s/bench", policy=case_policy,
            opened_by="bench", priority="P3", publish_search_attributes=False)
        handle = await client.start_workflow(CaseWorkflow.run, inp, id=workflow_id(case_id),
                                             task_queue=task_queue)
        await handle.execute_update(CaseWorkflow.intake)
        opened += 1
        if prefix == "BT":
            targets[case_id] = target
        if opened == pace:
            rate = pace / (time.monotonic() - started)
            # Opening slows as the workers fill up (a 10,000-case run went from 23 to
            # 14 cases/s), so twice the time the first cases predict, and then some:
            # deadlines that fire while cases are still opening measure the opening.
            fire_from = time.time() + (count - pace) / rate * 2.0 + 30
            log(f"{pace} cases open at {rate:.1f}/s; deadlines from "
                f"{datetime.fromtimestamp(fire_from, UTC):%H:%M:%S} over {window:.0f}s")
            paced.set()
        if opened % 500 == 0:
            log(f"{opened}/{count} open ({opened / (time.monotonic() - started):.0f}/s)")

    async def runner() -> None:
        while not queue.empty():
            await one(queue.get_nowait())

    await asyncio.gather(*(runner() for _ in range(concurrency)))
    return targets, late_slots, pace


async def tasks_by_worker(settings: Settings, case_ids: list[str]) -> dict[str, int]:
    """How many of the cases' workflow tasks each worker completed: the identity
    (pid@host) every WorkflowTaskCompleted event of their histories records."""
    client = await connect(settings)
    counts: Counter[str] = Counter()
    for case_id in case_ids:
        history = await client.get_workflow_handle(workflow_id(case_id)).fetch_history()
        for event in history.events:
            if event.HasField("workflow_task_completed_event_attributes"):
                counts[event.workflow_task_completed_event_attributes.identity] += 1
    return dict(counts)


async def terminate(settings: Settings, case_ids: list[str]) -> None:
    client = await connect(settings)
    semaphore = asyncio.Semaphore(32)

    async def one(case_id: str) -> None:
        async with semaphore:
            try:
                await client.get_workflow_handle(workflow_id(case_id)).terminate("bench done")
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    log(f"could not terminate {case_id}: {err}")

    await asyncio.gather(*(one(c) for c in case_ids))


def main(settings: Settings, count: int, concurrency: int, window: float,
         database_url: str | None, worker_cache: int | None, workers: int = 1) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="aftersales-bench-timers-"))
    database_url = database_url or f"sqlite:///{folder / 'read-model.db'}"
    migrate(database_url)
    task_queue = f"bench-timers-{uuid.uuid4().hex[:8]}"
    # The bench's own read model: its workers seal links with a key of its own unless the
    # environment gives one.
    bench_settings = settings.with_(task_queue=task_queue, database_url=database_url,
                                    secret_key=settings.secret_key or secrets.token_urlsafe(32),
                                    **({"worker_cache": worker_cache} if worker_cache else {}))
    env = {**os.environ, **bench_settings.to_env()}
    worker_log = (folder / "worker.log").open("w")
    pool: list[subprocess.Popen] = []

    def rss_all() -> tuple[int, int]:
        readings = [rss_kib(w.pid) for w in pool]
        return sum(r for r, _ in readings), sum(p for _, p in readings)

    try:
        # One process per worker on the same task queue, as `--scale worker=N` runs them.
        for _ in range(workers):
            pool.append(subprocess.Popen(
                [sys.executable, "-m", "aftersales.cli", "worker"], env=env,
                stdout=worker_log, stderr=subprocess.STDOUT))
        time.sleep(3)
        baseline, _ = rss_all()
        log(f"opening {count} cases")
        opened_at = time.monotonic()
        targets, late_slots, pace = asyncio.run(
            open_cases(bench_settings, task_queue, count, concurrency, window))
        open_seconds = time.monotonic() - opened_at
        rss_open, _ = rss_all()
        log(f"all {count} open in {open_seconds:.0f}s; worker RSS {rss_open / 1024:.0f} MiB")

        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        deadline = time.time() + 2 * window + 600
        while True:
            with sessions() as session:
                fired = session.scalar(select(Case.id).where(Case.overdue.is_(False),
                                                             Case.id.like("BT-%")).limit(1))
            if fired is None or time.time() > deadline:
                break
            time.sleep(1)
        with sessions() as session:
            created = dict(session.execute(
                select(Case.id, Case.created_at).where(Case.id.like("BT-%"))).all())
            rows = session.execute(
                select(TimelineEvent.case_id, TimelineEvent.type, TimelineEvent.at,
                       TimelineEvent.detail)
                .where(TimelineEvent.case_id.like("BT-%"),
                       TimelineEvent.type.in_(("overdue", "sla_warning")))).all()
            every = list(session.scalars(select(Case.id).where(
                or_(Case.id.like("BT-%"), Case.id.like("BC-%")))))
        engine.dispose()
        breach_late: list[float] = []
        warning_late: list[float] = []
        for case_id, kind, at, detail in rows:
            if case_id not in targets or detail.get("clock") != "confirm":
                continue
            share = 1.0 if kind == "overdue" else float(detail["share"])
            start = created[case_id].replace(tzinfo=UTC)
            due = start + timedelta(seconds=share * targets[case_id])
            late = (at.replace(tzinfo=UTC) - due).total_seconds()
            (breach_late if kind == "overdue" else warning_late).append(late)
        everything = breach_late + warning_late
        _, peak = rss_all()
        shared = asyncio.run(tasks_by_worker(bench_settings, sorted(targets)[:SAMPLE]))
        result = {
            "open_cases": count,
            "workers": workers,
            "opened_per_s": round(count / open_seconds, 1),
            "pace_setting_cases": pace,
            "opened_after_their_slot": late_slots,
            "deadline_window_s": window,
            "breaches_fired": len(breach_late),
            "warnings_fired": len(warning_late),
            "lateness_p50_s": round(percentile(everything, 0.5), 3),
            "lateness_p99_s": round(percentile(everything, 0.99), 3),
            "lateness_max_s": round(max(everything, default=0.0), 3),
            "breach_lateness_p99_s": round(percentile(breach_late, 0.99), 3),
            # Summed over the worker processes; the peak is the sum of each one's own
            # peak, which need not have come at the same moment.
            "worker_rss_idle_mib": round(baseline / 1024, 1),
            "worker_rss_all_open_mib": round(rss_open / 1024, 1),
            "worker_rss_peak_mib": round(peak / 1024, 1),
            "worker_cache": bench_settings.worker_cache,
            # Workflow tasks per worker process over the first SAMPLE planned cases.
            "workflow_tasks_by_worker": sorted(shared.values(), reverse=True),
        }
        log(f"terminating the {len(every)} bench cases")
        asyncio.run(terminate(bench_settings, every))
        return result
    finally:
        for worker in pool:
            worker.terminate()
        for worker in pool:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        worker_log.close()


def run(settings: Settings, count: int, concurrency: int, window: float,
        database_url: str | None, worker_cache: int | None, workers: int = 1) -> dict:
    result = main(settings, count, concurrency, window, database_url, worker_cache, workers)
    print(json.dumps(result), flush=True)
    return result
