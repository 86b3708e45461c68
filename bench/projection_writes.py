"""CPU per read-model write: the projection the worker writes on every case change.

Writes N cases through six versions each (a timeline event per version, an outbox row
every other one, three SLA clocks), as the workflow's projection activity does, and
prints the process CPU per write. Usage, from the repository root:

    .venv/bin/python bench/projection_writes.py [DATABASE_URL] [CASES]

The database must be empty (default: a new SQLite file). docs/benchmarks.md has figures.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db.cases import write_projection
from db.engine import make_engine, make_sessionmaker, migrate
from workflows.case.contracts import (
    CaseSnapshot,
    Customer,
    OutboxMessage,
    Projection,
    StageClock,
    TimelineEvent,
)

AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
VERSIONS = 6


def projection(n: int, version: int) -> Projection:
    snap = CaseSnapshot(
        case_id=f"PW-{n}", version=version, kind="complaint", channel="app",
        stage="analyze", status="open", priority="P3", priority_reasons=["default P3"],
        assignee="handler01", order_id=f"SO-{n}",
        customer=Customer(id=f"C-{n}", name="王芳", phone="13800000000"), items=[],
        description="包裹破损", created_at=AT, updated_at=AT + timedelta(minutes=version),
        stage_due_at=AT + timedelta(hours=8), resolution_due_at=AT + timedelta(hours=72),
        overdue=False, status_token=f"token-{n}", customer_url="http://x/s/t",
        clocks=[StageClock(name=name, target=28800, used=60.0 * version)
                for name in ("confirm", "analyze", "resolution")])
    outbox = [OutboxMessage(key=f"PW-{n}:{version}", at=AT, channel="email",
                            recipient="customer@example.com", template="case_update",
                            payload={"case_id": snap.case_id})] if version % 2 else []
    return Projection(snap, events=[TimelineEvent(
        seq=version, at=AT, actor="handler01", type="note", stage_before="analyze",
        stage_after="analyze", detail={"text": "bench"})], outbox=outbox)


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else \
        f"sqlite:///{tempfile.mkdtemp(prefix='aftersales-pw-')}/read-model.db"
    cases = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    migrate(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(cases):
        for version in range(1, VERSIONS + 1):
            write_projection(sessions, projection(n, version))
    writes = cases * VERSIONS
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    engine.dispose()
    print(json.dumps({"database": url.split(":", 1)[0], "writes": writes,
                      "cpu_ms_per_write": round(cpu / writes * 1000, 3),
                      "wall_ms_per_write": round(wall / writes * 1000, 3)}))


if __name__ == "__main__":
    main()
