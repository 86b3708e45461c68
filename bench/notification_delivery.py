"""CPU and time per notification delivered: the outbox bookkeeping of the delivery
activity (claim, recipients, lease, record) around a sender that accepts every message
at once, so the figure is ours and not the mail server's.

Adds N staff messages to one handler with an email address and delivers them one by one
as the workflow's activity does, then prints CPU and wall ms per message. Usage, from
the repository root:

    .venv/bin/python bench/notification_delivery.py [DATABASE_URL] [N]

The database must be empty (default: a new SQLite file). docs/benchmarks.md has figures.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from activities.notifications import OutboxDelivery
from activities.senders import OutgoingMessage
from aftersales.settings import Settings
from db import outbox
from db.accounts import create_user
from db.engine import make_engine, make_sessionmaker, migrate


class Accepting:
    """A sender whose provider accepts everything at once."""

    def __init__(self) -> None:
        self.sent = 0

    def send(self, message: OutgoingMessage) -> None:
        self.sent += 1


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else \
        f"sqlite:///{tempfile.mkdtemp(prefix='aftersales-bench-')}/outbox.db"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    migrate(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    keys = [f"AS-N{n:05d}:1" for n in range(count + 20)]
    with sessions.begin() as session:
        create_user(session, "hana", "handler", email="hana@shop.example", locale="zh-CN")
        for key in keys:
            outbox.add_message(session, key, datetime.now(UTC), "staff", "hana",
                               # One delivered at once (SLA warnings wait for the
                               # digest, db/digests.py: not this path).
                               "case_assigned", {"by": "sam"})
    sender = Accepting()
    delivery = OutboxDelivery(sessions, Settings(), senders={"email": sender})
    for key in keys[:20]:  # warm-up: imports, the pool, compiled statements
        delivery.deliver([key])
    cpu, wall = time.process_time(), time.perf_counter()
    for key in keys[20:]:
        report = delivery.deliver([key])
        assert report.result.sent == [key], report
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    engine.dispose()
    assert sender.sent == len(keys)
    print(json.dumps({"database": url.split(":", 1)[0], "notifications": count,
                      "cpu_ms_per_notification": round(cpu / count * 1000, 3),
                      "wall_ms_per_notification": round(wall / count * 1000, 3)}))


if __name__ == "__main__":
    main()
