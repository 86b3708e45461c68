"""Events out: every timeline event reaches each subscribed endpoint at least once, in
order per case, with a stable id and the courier webhook's signature; an endpoint that
fails, refuses or is gone costs only its own backlog.

The receiver is a real HTTP server on 127.0.0.1 that checks the signature itself; the
read model is SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aftersales.events_out import EventsOut, resume, status
from db.cases import write_projection
from db.engine import make_engine, make_sessionmaker, migrate
from db.models import EventSubscription
from tests.test_read_model import T0, event, snapshot
from workflows.case.contracts import Projection

SECRET = "events-secret-for-tests"


class Receiver:
    """An integrator's endpoint: verifies each request's signature, keeps the events it
    accepted, and answers what the test tells it to."""

    def __init__(self) -> None:
        self.accepted: list[dict] = []
        self.bad_signatures = 0
        self.answer = 200
        self.refuse_case: str | None = None  # answer 400 to this case's events
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp = self.headers["X-Aftersales-Timestamp"]
                expected = "sha256=" + hmac.new(SECRET.encode(), f"{stamp}.".encode() + body,
                                                hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, self.headers["X-Aftersales-Signature"]):
                    receiver.bad_signatures += 1
                    self._answer(401)
                    return
                data = json.loads(body)
                assert self.headers["X-Aftersales-Event-Id"] == data["id"]
                status = receiver.answer
                if status == 200 and data["case_id"] == receiver.refuse_case:
                    status = 400
                if status == 200:
                    receiver.accepted.append(data)
                self._answer(status)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/aftersales"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ids(self) -> list[str]:
        return [e["id"] for e in self.accepted]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def sessions(database_url):
    migrate(database_url)
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(days=1)

    def __call__(self):
        return self.now


def write(sessions, case_id: str, version: int, *seqs: int) -> None:
    write_projection(sessions, Projection(snapshot(case_id, version),
                                          events=[event(n) for n in seqs]))


def test_every_event_once_in_order_signed(sessions, receiver):
    clock = Clock()
    write(sessions, "AS-OLD", 1, 1)  # before the endpoint subscribed: not owed
    out = EventsOut(sessions, (receiver.url,), SECRET, clock=clock)
    out.run_once()
    assert receiver.accepted == []
    write(sessions, "AS-E1", 1, 1, 2)
    write(sessions, "AS-E2", 1, 1)
    write(sessions, "AS-E1", 2, 3)
    out.run_once()
    assert sorted(receiver.ids()) == ["AS-E1:1", "AS-E1:2", "AS-E1:3", "AS-E2:1"]
    per_case = [e["data"]["seq"] for e in receiver.accepted if e["case_id"] == "AS-E1"]
    assert per_case == [1, 2, 3] and receiver.bad_signatures == 0
    first = receiver.accepted[0]
    assert set(first) == {"id", "type", "case_id", "occurred_at", "data"}
    assert first["type"] == "note" and first["data"]["detail"] == {"n": 1}
    out.run_once()  # nothing new: nothing sent
    assert len(receiver.accepted) == 4
    with sessions() as session:
        assert status(session, (receiver.url,))[0]["backlog"] == 0
    out.close()


def test_a_failing_endpoint_waits_and_then_gets_everything_in_order(sessions, receiver):
    clock = Clock()
    out = EventsOut(sessions, (receiver.url,), SECRET, clock=clock)
    out.run_once()
    receiver.answer = 500  # down for an hour
    write(sessions, "AS-F", 1, 1, 2, 3)
    for _ in range(12):
        report = out.run_once()[receiver.url]
        assert report.sent == 0
        clock.now += timedelta(minutes=5)
    with sessions() as session:
        shown = status(session, (receiver.url,))[0]
        sub = session.get(EventSubscription, receiver.url)
        assert shown["backlog"] == 3 and "HTTP 500" in shown["last_error"]
        assert sub.failures >= 6 and sub.retry_at is not None  # backing off
    receiver.answer = 200
    clock.now += timedelta(minutes=11)
    out.run_once()
    assert receiver.ids() == ["AS-F:1", "AS-F:2", "AS-F:3"]
    out.close()


def test_an_endpoint_that_refuses_one_case_holds_only_that_case(sessions, receiver):
    clock = Clock()
    out = EventsOut(sessions, (receiver.url,), SECRET, clock=clock)
    out.run_once()
    receiver.refuse_case = "AS-BAD"
    write(sessions, "AS-BAD", 1, 1, 2)
    write(sessions, "AS-GOOD", 1, 1, 2)
    out.run_once()
    assert receiver.ids() == ["AS-GOOD:1", "AS-GOOD:2"]
    receiver.refuse_case = None
    out.run_once()  # its case waits out the backoff first
    assert receiver.ids() == ["AS-GOOD:1", "AS-GOOD:2"]
    clock.now += timedelta(seconds=6)
    out.run_once()
    assert receiver.ids()[2:] == ["AS-BAD:1", "AS-BAD:2"]
    out.close()


def test_410_gone_stops_sending_until_resumed(sessions, receiver):
    clock = Clock()
    out = EventsOut(sessions, (receiver.url,), SECRET, clock=clock)
    out.run_once()
    receiver.answer = 410
    write(sessions, "AS-G", 1, 1, 2)
    assert out.run_once()[receiver.url].gone
    receiver.answer = 200
    clock.now += timedelta(hours=1)
    out.run_once()
    assert receiver.accepted == []
    with sessions.begin() as session:
        assert status(session, (receiver.url,))[0]["state"] == "gone"
        assert resume(session, receiver.url)
    out.run_once()
    assert receiver.ids() == ["AS-G:1", "AS-G:2"]
    out.close()


def test_a_wrong_secret_is_refused_by_the_receiver(sessions, receiver):
    out = EventsOut(sessions, (receiver.url,), "not-the-secret", clock=Clock())
    out.run_once()
    write(sessions, "AS-S", 1, 1)
    out.run_once()
    assert receiver.accepted == [] and receiver.bad_signatures == 1
    out.close()


def test_low_water_never_passes_an_event_still_being_written(sessions, receiver):
    clock = Clock()
    out = EventsOut(sessions, (receiver.url,), SECRET, clock=clock)
    out.run_once()
    write(sessions, "AS-L1", 1, 1)
    out.run_once()
    clock.now += timedelta(minutes=2)
    out.run_once()  # low water may rise now, to what was seen a while ago
    with sessions() as session:
        low = session.get(EventSubscription, receiver.url).low_water
    write(sessions, "AS-L2", 1, 1)
    out.run_once()
    with sessions() as session:
        sub = session.get(EventSubscription, receiver.url)
        assert sub.low_water == low  # not past the new event at once
    assert receiver.ids() == ["AS-L1:1", "AS-L2:1"]
    out.close()


def test_a_dead_endpoint_does_not_hold_up_the_other(sessions, receiver):
    dead = "http://127.0.0.1:9/gone"  # nothing listens on the discard port
    out = EventsOut(sessions, (dead, receiver.url), SECRET, clock=Clock())
    out.run_once()
    write(sessions, "AS-D", 1, 1)
    reports = out.run_once()
    assert reports[dead].failed == 1 and reports[receiver.url].sent == 1
    out.close()


def test_a_case_whose_writes_land_out_of_order_waits_at_the_gap(sessions, receiver):
    clock = Clock()
    out = EventsOut(sessions, (receiver.url,), SECRET, clock=clock)
    out.run_once()
    write(sessions, "AS-X", 1, 1)
    write(sessions, "AS-X", 3, 3)  # version 3 lands before the retried version 2
    out.run_once()
    assert receiver.ids() == ["AS-X:1"]  # 3 waits for 2
    with sessions() as session:
        assert status(session, (receiver.url,))[0]["backlog"] == 1
    write(sessions, "AS-X", 2, 2)
    clock.now += timedelta(minutes=2)
    out.run_once()
    assert receiver.ids() == ["AS-X:1", "AS-X:2", "AS-X:3"]


def test_a_case_older_than_the_subscription_starts_after_what_it_had(sessions, receiver):
    clock = Clock()
    write(sessions, "AS-Y", 1, 1, 2)
    out = EventsOut(sessions, (receiver.url,), SECRET, clock=clock)
    out.run_once()
    write(sessions, "AS-Y", 2, 3)
    out.run_once()
    assert receiver.ids() == ["AS-Y:3"]
