"""`aftersales bench --report N`: the report summary at N cases, in one command.

Fills an empty read model (PostgreSQL: the database is created if it does not exist)
with N cases and their clocks as `bench.readmodel` spreads them (90 days of intake),
takes last night's KPI snapshots as the scheduler would, then times the 30-day summary
ending now, unfiltered, as the supervisor's console asks for it:

- `function`: `db.reports.summary` in this process, wall time and this process's CPU
  time (the Python side: building queries, reading rows, adding the tallies up);
- `api`: `GET /api/v1/reports/summary` through the web app (Flask's test client: the
  token check, the query, the JSON), wall time;
- `database` (PostgreSQL): every statement one summary sends, run again under
  `EXPLAIN (ANALYZE, FORMAT JSON)`: the sum of planning and execution time, which
  the load of other processes on the machine inflates least, and the slowest ones.

It checks that the summary equals `live_summary` (every figure counted from the cases),
prints the load average before and after (the machine may be shared), and ends with
one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from bench.readmodel import fill
from db.engine import make_engine, make_sessionmaker
from db.reports import ReportFilter, live_summary, summary

RUNS = 40
PERIOD = timedelta(days=30)


def create_database(url: str) -> None:
    """Create the PostgreSQL database of `url` if it does not exist."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return
    server = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        if not connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                 {"name": parsed.database}):
            connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    server.dispose()


def percentiles(timings: list[float]) -> dict:
    timings = sorted(timings)
    return {"p50_ms": round(statistics.median(timings), 1),
            "p95_ms": round(timings[min(len(timings) - 1, int(0.95 * len(timings)))], 1)}


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def measure(url: str, runs: int = RUNS) -> dict:
    """Time the summary on the read model at `url` (filled already)."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    period = ReportFilter(start=now - PERIOD, end=now)
    result: dict = {"database": engine.dialect.name, "load_before": load()}

    with sessions() as session:
        fast = summary(session, period, now)
        live_started = time.perf_counter()
        live = live_summary(session, period)
        live_ms = (time.perf_counter() - live_started) * 1000
    if fast != live:
        raise SystemExit("the summary differs from the live count: "
                         + json.dumps({"summary": fast, "live": live}, default=str))
    result["cases_in_period"] = fast["opened"]
    result["live_summary_ms"] = round(live_ms, 1)

    wall, cpu = [], []
    with sessions() as session:
        for _ in range(runs):
            started, process = time.perf_counter(), time.process_time()
            summary(session, ReportFilter(start=now - PERIOD, end=datetime.now(UTC)))
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - process) * 1000)
            session.rollback()  # a request's session is its own
    result["function"] = {**percentiles(wall), "cpu": percentiles(cpu), "runs": runs}
    print(f"  function: p50 {result['function']['p50_ms']} ms, p95 "
          f"{result['function']['p95_ms']} ms (this process's CPU: p50 "
          f"{result['function']['cpu']['p50_ms']} ms)", file=sys.stderr, flush=True)

    result["api"] = {**api_timings(url, runs), "runs": runs}
    print(f"  api: p50 {result['api']['p50_ms']} ms, p95 {result['api']['p95_ms']} ms",
          file=sys.stderr, flush=True)

    if engine.dialect.name == "postgresql":
        # The planner settings that decide between serial and parallel plans for the
        # live day's queries (docs/benchmarks.md).
        with engine.connect() as connection:
            result["planner"] = {name: connection.scalar(text(f"SHOW {name}")) for name in (
                "random_page_cost", "max_parallel_workers_per_gather")}
        result["database_time"] = in_database(engine, sessions, period, now)
        print(f"  in the database (EXPLAIN ANALYZE): p50 "
              f"{result['database_time']['p50_ms']} ms over "
              f"{result['database_time']['statements']} statements",
              file=sys.stderr, flush=True)
    result["load_after"] = load()
    print(f"  load average: {result['load_before']} before, {result['load_after']} after",
          file=sys.stderr, flush=True)
    engine.dispose()
    return result


def api_timings(url: str, runs: int) -> dict:
    from aftersales.settings import Settings
    from db.accounts import create_token, create_user
    from web import create_app

    app = create_app(Settings(database_url=url, public_url="http://bench",
                              secret_key="bench-secret-key-of-at-least-32-bytes!",
                              data_dir=os.environ.get("TMPDIR", "/tmp")), run_migrations=False)
    with app.extensions["aftersales"].sessions.begin() as session:
        name = f"bench-{int(time.time())}"
        create_user(session, name, "supervisor")
        token = create_token(session, name)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    timings = []
    for n in range(runs + 1):
        started = time.perf_counter()
        response = client.get("/api/v1/reports/summary", headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"the API answered {response.status_code}: {response.text}")
        if n:  # the first warms the app up
            timings.append((time.perf_counter() - started) * 1000)
    app.extensions["aftersales"].engine.dispose()
    return percentiles(timings)


def in_database(engine, sessions, period: ReportFilter, now: datetime,
                runs: int = 10) -> dict:
    """The statements of one summary, each run again under EXPLAIN ANALYZE `runs`
    times: the time inside PostgreSQL (planning and execution), summed."""
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    with sessions() as session:
        summary(session, period, now)
    event.remove(engine, "before_cursor_execute", record)
    totals: list[float] = []
    per_statement: list[list[float]] = [[] for _ in sent]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for _ in range(runs):
            total = 0.0
            for n, (statement, parameters) in enumerate(sent):
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
                plan = cursor.fetchone()[0][0]
                spent = plan["Planning Time"] + plan["Execution Time"]
                per_statement[n].append(spent)
                total += spent
            totals.append(total)
        raw.rollback()
    finally:
        raw.close()
    slowest = sorted(((statistics.median(times), statement) for times, (statement, _)
                      in zip(per_statement, sent, strict=True)), reverse=True)[:5]
    return {**percentiles(totals), "statements": len(sent),
            "slowest": [{"ms": round(ms, 2), "sql": " ".join(statement.split())[:160]}
                        for ms, statement in slowest]}


def main(url: str, count: int) -> dict:
    started = time.perf_counter()
    create_database(url)
    fill(url, count, search=False)
    filled = time.perf_counter() - started
    print(f"  filled in {filled:.1f}s", file=sys.stderr, flush=True)
    result = {"cases": count, "fill_s": round(filled, 1), **measure(url)}
    result["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, ensure_ascii=False))
    return result
