"""Quiet notifications: SLA warnings go to the case's assignee (an unassigned case's team,
else the supervisors) in one digest per person per AFTERSALES_DIGEST_INTERVAL, worded in
the recipient's language; urgent messages still go at once. On SQLite and PostgreSQL,
with the real projection writing the rows and a real SMTP server receiving the mail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from activities.messages import render
from activities.notifications import OutboxDelivery
from aftersales.mailsink import read_mailbox, start_sink
from aftersales.scheduler import Housekeeping
from aftersales.settings import Settings
from db import cases as case_store
from db import digests
from db.accounts import create_user
from db.engine import make_engine, make_sessionmaker
from db.models import OutboxMessage
from tests.conftest import make_settings
from tests.test_pages import app as app
from tests.test_pages_browser import ARTIFACTS
from tests.test_read_model import snapshot
from workflows.case.contracts import OutboxMessage as Message
from workflows.case.contracts import Projection, StageClock, TimelineEvent

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def sink(tmp_path):
    controller = start_sink(tmp_path / "mailbox.jsonl")
    yield controller, tmp_path / "mailbox.jsonl"
    controller.stop()


def settings_for(database_url: str, smtp_port: int, **extra) -> Settings:
    return make_settings("127.0.0.1:9", database_url, "http://127.0.0.1:9",
                         smtp_host="127.0.0.1", smtp_port=smtp_port, **extra)


class Cases:
    """Writes cases and their warnings through the read model's projection, the way
    the workflow's projection activity does."""

    def __init__(self, sessions) -> None:
        self.sessions = sessions
        self.versions: dict[str, int] = {}
        self.seqs: dict[str, int] = {}
        self.values: dict[str, dict] = {}

    def open(self, case_id: str, at: datetime, **values) -> None:
        values.setdefault("clocks", [StageClock(name="confirm", target=3600,
                                                running_since=at, state="running")])
        self.values[case_id] = values
        self.write(case_id, at)

    def write(self, case_id: str, at: datetime, events=(), outbox=(), **changes) -> None:
        self.values[case_id].update(changes)
        version = self.versions[case_id] = self.versions.get(case_id, 0) + 1
        case_store.write_projection(self.sessions, Projection(
            snapshot(case_id, version, created_at=T0, updated_at=at,
                     **self.values[case_id]),
            events=list(events), outbox=list(outbox)))

    def _seq(self, case_id: str) -> int:
        self.seqs[case_id] = self.seqs.get(case_id, 0) + 1
        return self.seqs[case_id]

    def warn(self, case_id: str, at: datetime, share: float, due: datetime,
             clock: str = "confirm") -> str:
        """The workflow's `_warn`: a timeline event and an outbox row, to the assignee
        or, unassigned, to every handler (as running workflows still write it)."""
        seq = self._seq(case_id)
        key = f"{case_id}:{seq}"
        assignee = self.values[case_id].get("assignee")
        rule = f"{share:.0%} of the {clock} target (1h) for P3"
        self.write(case_id, at, events=[TimelineEvent(
            seq=seq, at=at, actor="system", type="sla_warning", stage_before="confirm",
            stage_after="confirm", detail={"clock": clock, "share": share, "rule": rule,
                                           "due_at": due.isoformat()})],
            outbox=[Message(key=key, at=at, channel="staff",
                            recipient=assignee or "role:handler", template="sla_warning",
                            payload={"case_id": case_id, "clock": clock, "share": share,
                                     "rule": rule})])
        return key

    def notify(self, case_id: str, at: datetime, recipient: str, template: str,
               payload: dict) -> str:
        seq = self._seq(case_id)
        key = f"{case_id}:{seq}"
        self.write(case_id, at, outbox=[Message(
            key=key, at=at, channel="staff", recipient=recipient, template=template,
            payload={"case_id": case_id, **payload})])
        return key


def people(sessions) -> None:
    with sessions.begin() as session:
        create_user(session, "hana", "handler", email="hana@shop.example", locale="zh-CN",
                    teams=["returns"])
        create_user(session, "hugo", "handler", email="hugo@shop.example", locale="en",
                    teams=["returns"])
        create_user(session, "olga", "handler", email="olga@shop.example", locale="zh-CN",
                    teams=["complaints"])
        create_user(session, "sue", "supervisor", email="sue@shop.example", locale="zh-CN")


def to(mails: list[dict], address: str) -> list[dict]:
    return [m for m in mails if m["rcpt_to"] == [address]]


def test_a_handlers_twenty_minutes_end_with_a_couple_of_emails(database_url, sink):
    """The day of the issue: 9 warnings in 20 minutes, most on unassigned cases, and
    two urgent messages. The handler gets one digest with her own cases and the urgent
    reply at once; the team's unassigned cases go to the team's digests, the other
    team's case to its own handler, a case without team to the supervisor."""
    controller, mailbox = sink
    clock = Clock(T0)
    settings = settings_for(database_url, controller.port)
    jobs = Housekeeping(settings, holder="one", clock=clock)
    sessions = make_sessionmaker(make_engine(database_url))
    delivery = OutboxDelivery(sessions, settings, clock=clock)
    people(sessions)
    cases = Cases(sessions)
    cases.open("AS-H1", T0, assignee="hana", team="returns")
    cases.open("AS-H2", T0, assignee="hana", team="returns")
    cases.open("AS-U1", T0, team="returns")
    cases.open("AS-U2", T0, team="returns")
    cases.open("AS-O1", T0, assignee="olga", team="complaints")
    cases.open("AS-N1", T0)  # no team, nobody assigned
    due = T0 + timedelta(minutes=40)
    plan = {  # minute -> what the workflows write then
        1: [("warn", "AS-U1", 0.5)], 2: [("warn", "AS-H1", 0.5)],
        4: [("warn", "AS-U2", 0.5)], 6: [("warn", "AS-U1", 0.75)],
        8: [("warn", "AS-H2", 0.5), ("reply", "AS-H1")],
        11: [("warn", "AS-O1", 0.5)], 13: [("warn", "AS-H1", 0.75)],
        15: [("warn", "AS-N1", 0.5), ("overdue", "AS-U2")],
        18: [("warn", "AS-U1", 0.9)],
    }
    warnings: dict[str, str] = {}
    try:
        for minute in range(21):
            clock.at = T0 + minute * MIN
            for what, case_id, *share in plan.get(minute, []):
                if what == "warn":
                    key = cases.warn(case_id, clock.at, share[0], due)
                    warnings[key] = case_id
                elif what == "reply":
                    key = cases.notify(case_id, clock.at, "hana", "customer_replied",
                                       {"message": "还没收到退款"})
                else:
                    key = cases.notify(case_id, clock.at, "role:supervisor", "case_overdue",
                                       {"clock": "confirm", "rule": "100%",
                                        "assignee": None})
                # The workflow starts its delivery activity for the new row at once.
                report = delivery.deliver([key])
                if what == "warn":
                    assert report.digest == [key] and report.result.sent == []
                else:
                    assert report.result.sent == [key]
            jobs.run_job("warning_digest")
        assert len(warnings) == 9
        mails = read_mailbox(mailbox)
        assert not [m for m in mails if "时限已用" in m["subject"] or "%" in m["subject"]]
        hana = to(mails, "hana@shop.example")
        assert len(hana) <= 3, [m["subject"] for m in hana]
        assert sum("还没收到退款" in m["body"] for m in hana) == 1  # the reply, at once
        hana_digests = [m for m in hana if "即将超时" in m["subject"]]
        assert len(hana_digests) == 1  # the first warning opened her interval
        # Her first digest came with the first warning (minute 1, the team's AS-U1).
        assert hana_digests[0]["subject"].startswith("1 个工单即将超时：AS-U1 确认阶段剩余")
        assert "AS-O1" not in " ".join(m["body"] for m in hana)
        assert "AS-N1" not in " ".join(m["body"] for m in hana)
        olga = to(mails, "olga@shop.example")
        assert len(olga) == 1 and "AS-O1" in olga[0]["body"] and "AS-U1" not in olga[0]["body"]
        sue = to(mails, "sue@shop.example")
        assert any("AS-N1" in m["body"] and "即将超时" in m["subject"] for m in sue)
        assert any("AS-U2" in m["body"] and "即将超时" not in m["subject"] for m in sue)

        # At the end of her interval the rest comes in one more digest: every warning of
        # hers and her team's, one line per case, the most urgent first.
        clock.at = T0 + 31 * MIN
        jobs.run_job("warning_digest")
        hana = [m for m in to(read_mailbox(mailbox), "hana@shop.example")
                if "即将超时" in m["subject"]]
        assert len(hana) == 2
        body = hana[1]["body"]
        assert hana[1]["subject"] == "4 个工单即将超时：AS-H1 确认阶段剩余 9 分钟"
        for case_id in ("AS-H1", "AS-H2", "AS-U1", "AS-U2"):  # AS-U1 warned twice since
            assert body.count(f"- {case_id} ") == 1, body
        assert "剩余 9 分钟" in body and "confirm" not in body and "%" not in body
        hugo = [m for m in to(read_mailbox(mailbox), "hugo@shop.example")]
        assert all(m["subject"].startswith(("1 case", "2 cases", "3 cases", "4 cases"))
                   for m in hugo) and len(hugo) == 2
        with sessions() as session:
            unsent = session.scalars(select(OutboxMessage.key).where(
                OutboxMessage.sent_at.is_(None))).all()
            assert unsent == []
        # Nothing more to say: later runs write nothing.
        clock.at = T0 + 70 * MIN
        assert jobs.warning_digests() == []
    finally:
        jobs.close()
        sessions.kw["bind"].dispose()


def test_a_digest_written_before_a_crash_is_sent_once_and_its_warnings_never_again(
        database_url, sink, tmp_path):
    """The scheduler writes the digest and marks its warnings in one transaction; the
    mail server is down, so the send fails. The next run sends that digest (once) and
    does not write the warnings into another."""
    controller, mailbox = sink
    clock = Clock(T0)
    sessions = make_sessionmaker(make_engine(database_url))
    people(sessions)
    cases = Cases(sessions)
    cases.open("AS-C1", T0, assignee="hana", team="returns")
    key = cases.warn("AS-C1", T0, 0.5, T0 + 30 * MIN)
    down = Housekeeping(settings_for(database_url, 9), holder="down", clock=clock)
    try:
        written = down.warning_digests()
        assert [w.recipient for w in written] == ["hana"]
    finally:
        down.close()
    with sessions() as session:
        row = session.get(OutboxMessage, written[0].key)
        assert row is not None and row.sent_at is None and row.last_error
        warning = session.get(OutboxMessage, key)
        assert warning is not None and warning.sent_at is not None
        assert warning.sent_at.replace(tzinfo=UTC) == T0
        assert warning.delivered == ["digest:hana"]
    clock.at = T0 + MIN
    up = Housekeeping(settings_for(database_url, controller.port), holder="up", clock=clock)
    try:
        assert up.warning_digests() == []  # nothing new to write
        assert up.warning_digests() == []
    finally:
        up.close()
        sessions.kw["bind"].dispose()
    mails = read_mailbox(mailbox)
    assert len(mails) == 1 and mails[0]["rcpt_to"] == ["hana@shop.example"]
    assert mails[0]["subject"] == "1 个工单即将超时：AS-C1 确认阶段剩余 30 分钟"


def test_warnings_follow_the_case_as_it_stands_when_the_digest_is_written(sqlite_url, sink):
    """Assigned since the warning: to the new assignee, not the team; closed or past the
    clock since: dropped, with the reason on the row; a team with nobody on duty: the
    supervisors."""
    controller, mailbox = sink
    clock = Clock(T0 + 5 * MIN)
    sessions = make_sessionmaker(make_engine(sqlite_url))
    people(sessions)
    with sessions.begin() as session:
        create_user(session, "nina", "handler", email="nina@shop.example", teams=["night"])
        from db.models import User
        user = session.get(User, "nina")
        assert user is not None
        user.on_duty = False
    cases = Cases(sessions)
    for case_id, team in (("AS-A1", "returns"), ("AS-A2", "returns"), ("AS-A3", "returns"),
                          ("AS-A4", "night")):
        cases.open(case_id, T0, team=team)
    keys = {case_id: cases.warn(case_id, T0 + MIN, 0.5, T0 + 31 * MIN)
            for case_id in ("AS-A1", "AS-A2", "AS-A3", "AS-A4")}
    cases.write("AS-A1", T0 + 2 * MIN, assignee="olga")
    cases.write("AS-A2", T0 + 2 * MIN, stage="cancelled", status="cancelled")
    cases.write("AS-A3", T0 + 2 * MIN, stage="analyze", clocks=[StageClock(
        name="confirm", target=3600, used=120, state="met")])
    jobs = Housekeeping(settings_for(sqlite_url, controller.port), holder="one", clock=clock)
    try:
        written = {w.recipient: w.count for w in jobs.warning_digests()}
    finally:
        jobs.close()
    assert written == {"olga": 1, "sue": 1}
    with sessions() as session:
        rows = {case_id: session.get(OutboxMessage, key) for case_id, key in keys.items()}
        assert rows["AS-A2"].last_error == "case closed before the digest"
        assert rows["AS-A3"].last_error == "the confirm clock stopped before the digest"
        assert all(r.sent_at is not None for r in rows.values())
    sessions.kw["bind"].dispose()
    mails = read_mailbox(mailbox)
    assert {m["rcpt_to"][0] for m in mails} == {"olga@shop.example", "sue@shop.example"}
    olga = to(mails, "olga@shop.example")[0]
    assert "AS-A1" in olga["body"] and "处理人 olga" in olga["body"]
    sue = to(mails, "sue@shop.example")[0]
    assert "AS-A4" in sue["body"] and "未分派，night 团队" in sue["body"]


def test_the_digest_is_worded_for_people_in_chinese_and_english():
    """Rendered as a handler reads it: no stage key, no percentage-only subject, time
    left in hours and minutes, past deadlines said as overdue, a link per case."""
    cases = [
        {"id": "AS-20261207-0001", "clock": "confirm", "share": 0.75, "stage": "confirm",
         "assignee": "", "team": "returns", "customer": "王芳", "order_id": "SO-10001",
         "due_at": "", "minutes_left": 25},
        {"id": "AS-20261207-0002", "clock": "resolution", "share": 0.5, "stage": "resolve",
         "assignee": "hana", "team": "returns", "customer": "李雷", "order_id": "SO-10002",
         "due_at": "", "minutes_left": 150},
        {"id": "AS-20261207-0003", "clock": "reply", "share": 0.9, "stage": "analyze",
         "assignee": "hana", "team": "", "customer": "韩梅梅", "order_id": "SO-10003",
         "due_at": "", "minutes_left": -65},
    ]
    context = {"count": 3, "cases": cases, "more": 0, "case_id": "",
               "desk_url": "https://shop.example/desk", "public_url": "https://shop.example",
               "customer_url": "", "recipient_name": "hana"}
    zh = render(digests.TEMPLATE, "zh-CN", context)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # kept beside the pages' screenshots
    (ARTIFACTS / "warning-digest-zh.txt").write_text(f"Subject: {zh.subject}\n\n{zh.body}",
                                                      encoding="utf-8")
    assert zh.subject == "3 个工单即将超时：AS-20261207-0001 确认阶段剩余 25 分钟"
    assert "- AS-20261207-0001 确认阶段剩余 25 分钟（王芳，订单 SO-10001，未分派，returns 团队）" \
        in zh.body
    assert "- AS-20261207-0002 处理阶段剩余 2 小时 30 分钟（李雷，订单 SO-10002，处理人 hana）" \
        in zh.body
    assert "- AS-20261207-0003 回复客户阶段已超时 1 小时 5 分钟" in zh.body
    assert "https://shop.example/desk/cases/AS-20261207-0002" in zh.body
    for raw in ("confirm", "resolution", "reply", "%", "服务单", "售后单"):
        assert raw not in zh.subject + zh.body.replace("https://shop.example", ""), raw
    en = render(digests.TEMPLATE, "en", context)
    assert en.subject == "3 cases close to a deadline: AS-20261207-0001 confirmation 25 min left"
    assert ("- AS-20261207-0002 resolution: 2 h 30 min left (李雷, order SO-10002, "
            "handled by hana)") in en.body
    assert "overdue by 1 h 5 min" in en.body


def test_each_person_has_their_own_interval(database_url, sink):
    """Hana chose 15 minutes on the desk, Hugo has the settings' 30: a warning 16
    minutes after the first digest reaches Hana at once and waits for Hugo's interval;
    an interval that is not offered is refused."""
    controller, mailbox = sink
    clock = Clock(T0)
    sessions = make_sessionmaker(make_engine(database_url))
    people(sessions)
    with sessions.begin() as session:
        digests.set_interval(session, "hana", 15 * 60)
        for wrong in (0, 60, -900, 1801):
            with pytest.raises(ValueError):
                digests.set_interval(session, "hugo", wrong)
    cases = Cases(sessions)
    cases.open("AS-P1", T0, team="returns")
    jobs = Housekeeping(settings_for(database_url, controller.port), holder="one",
                        clock=clock)
    try:
        cases.warn("AS-P1", T0, 0.5, T0 + 2 * timedelta(hours=1))
        assert {w.recipient for w in jobs.warning_digests()} == {"hana", "hugo"}
        clock.at = T0 + 16 * MIN
        cases.warn("AS-P1", clock.at, 0.75, T0 + 2 * timedelta(hours=1))
        assert [w.recipient for w in jobs.warning_digests()] == ["hana"]
        clock.at = T0 + 30 * MIN
        assert [w.recipient for w in jobs.warning_digests()] == ["hugo"]
    finally:
        jobs.close()
        sessions.kw["bind"].dispose()
    mails = read_mailbox(mailbox)
    assert len(to(mails, "hana@shop.example")) == 2 and len(to(mails, "hugo@shop.example")) == 2


def test_two_runs_at_the_same_time_put_a_warning_in_one_digest(postgres_url):
    """A run whose lease ran out while it still works, and the next run beside it, on
    PostgreSQL: the second skips the warnings the first holds, so none is in two
    digests."""
    sessions = make_sessionmaker(make_engine(postgres_url))
    people(sessions)
    cases = Cases(sessions)
    cases.open("AS-T1", T0, assignee="hana", team="returns")
    key = cases.warn("AS-T1", T0, 0.5, T0 + 30 * MIN)
    try:
        with sessions.begin() as first:
            written = digests.write_digests(first, T0 + MIN, timedelta(minutes=30))
            assert [w.recipient for w in written] == ["hana"]
            with sessions.begin() as second:  # while the first has not committed
                # Waiting for the first's locks would be an error here, not a hang.
                second.execute(text("SET LOCAL lock_timeout = '2s'"))
                assert digests.write_digests(second, T0 + 2 * MIN,
                                             timedelta(minutes=30)) == []
        with sessions.begin() as third:
            assert digests.write_digests(third, T0 + 40 * MIN, timedelta(minutes=30)) == []
        with sessions() as session:
            rows = session.scalars(select(OutboxMessage).where(
                OutboxMessage.template == digests.TEMPLATE)).all()
            assert len(rows) == 1 and rows[0].payload["cases"][0]["id"] == "AS-T1"
            warning = session.get(OutboxMessage, key)
            assert warning is not None and warning.delivered == ["digest:hana"]
    finally:
        sessions.kw["bind"].dispose()


def test_mail_names_clocks_and_stages_in_its_own_language_as_the_pages_do(app):
    """One table of names per mail language (names.toml beside the texts), the same
    words as the pages say in that language; the overdue digest names the stage."""
    from activities.messages import NAMES
    from web.caseview import CLOCK_NAMES, STAGE_NAMES

    for locale, accept in (("zh-CN", "zh-CN"), ("en", "en")):
        with app.test_request_context(headers={"Accept-Language": accept}):
            assert NAMES[locale]["clocks"] == {k: str(v) for k, v in CLOCK_NAMES.items()}
            assert NAMES[locale]["stages"] == {k: str(v) for k, v in STAGE_NAMES.items()}
    context = {"count": 1, "hour": "2026-12-07T09:00Z", "desk_url": "https://shop.example/desk",
               "case_id": "", "public_url": "https://shop.example", "customer_url": "",
               "recipient_name": "sam",
               "cases": [{"id": "AS-20261207-0002", "priority": "P2", "stage": "resolve",
                          "stage_due_at": "2026-12-07T08:00Z", "assignee": "hana"}]}
    zh = render("overdue_digest", "zh-CN", context)
    assert "- AS-20261207-0002  P2  待处理  截止 2026-12-07T08:00Z  hana" in zh.body
    en = render("overdue_digest", "en", context)
    assert "- AS-20261207-0002  P2  To resolve  due 2026-12-07T08:00Z  hana" in en.body
    overdue = {"case_id": "AS-20261207-0002", "clock": "resolution", "rule": "", "assignee": "",
               "public_url": "https://shop.example", "desk_url": "", "customer_url": "",
               "recipient_name": "sam"}
    assert render("case_overdue", "zh-CN", overdue).subject == "超时：工单 AS-20261207-0002（处理）"
    assert render("case_overdue_again", "en", overdue).subject == (
        "Still overdue: case AS-20261207-0002 (resolution)")
