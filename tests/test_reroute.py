"""Re-routing and team working hours (docs/teams.md): a case whose kind changes or whose
priority rises is routed again by the same rules, with the rosters read from the read
model at that moment; a team with a calendar has nobody on duty outside its hours. The
workflow runs on the real Temporal dev server, the read model on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import os
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from aftersales.demo import DEMO_TEAMS, DEMO_USERS, demo_routing_file
from aftersales.policy import PolicyError, load_policy, parse_policy
from aftersales.routing import RoutingError, load_routing, parse_routing
from db.accounts import create_token, create_user
from db.engine import make_engine, make_sessionmaker
from db.models import OutboxMessage
from tests.conftest import BackgroundWorker, make_settings, record_history_sync
from tests.test_cli import run
from tests.test_pages import signed_in
from web import create_app
from workflows.routing import (
    TeamMember,
    TeamRoster,
    TeamRule,
    holder_after_move,
    working,
)
from workflows.sla import WEEKDAYS, BusinessCalendar, CalendarSpec

SHANGHAI = CalendarSpec(timezone="Asia/Shanghai", hours="09:00-18:00",
                        workdays=["mon", "tue", "wed", "thu", "fri"], holidays=["2026-10-01"])


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ---------------------------------------------------------------- working hours


def test_a_calendar_says_whether_an_instant_is_in_working_hours():
    office = BusinessCalendar.from_spec(SHANGHAI)
    # Tuesday 2026-12-01: 09:00-18:00 in Shanghai is 01:00-10:00 UTC.
    assert office.is_working(utc(2026, 12, 1, 1, 0))  # opening counts
    assert office.is_working(utc(2026, 12, 1, 9, 59))
    assert not office.is_working(utc(2026, 12, 1, 10, 0))  # closing does not
    assert not office.is_working(utc(2026, 12, 1, 0, 59))
    assert not office.is_working(utc(2026, 12, 5, 3, 0))  # Saturday
    assert not office.is_working(utc(2026, 10, 1, 3, 0))  # a holiday, a Thursday
    assert BusinessCalendar.from_spec(CalendarSpec()).is_working(utc(2026, 12, 5, 3, 0))
    with pytest.raises(ValueError, match="time-zone aware"):
        office.is_working(datetime(2026, 12, 1, 3, 0))


def test_a_team_works_by_its_calendar_and_always_without_one():
    calendars = {"office": SHANGHAI}
    assert working(TeamRule("t", calendar="office"), calendars, utc(2026, 12, 1, 3, 0))
    assert not working(TeamRule("t", calendar="office"), calendars, utc(2026, 12, 1, 12, 0))
    assert working(TeamRule("t"), calendars, utc(2026, 12, 1, 12, 0))


def test_a_case_that_moves_keeps_an_assignee_on_duty_in_the_new_team():
    rule = TeamRule("t", assign="round_robin", max_open=1)
    team = TeamRoster("t", [TeamMember("ann", 5), TeamMember("bea", 0)])
    # ann already holds it and is on duty there: it stays hers whatever her load.
    assert holder_after_move(rule, team, "ann") == "ann"
    # Someone not on duty in the new team: the rule picks (ann is full: bea).
    assert holder_after_move(rule, team, "cy") == "bea"
    assert holder_after_move(rule, None, "cy") is None  # nobody on duty: the queue


# ---------------------------------------------------------------- the files

POLICY = """\
[calendar]
timezone = "UTC"

[calendars.office]
timezone = "Asia/Shanghai"
hours = "09:00-18:00"
workdays = ["mon", "tue", "wed", "thu", "fri"]

[calendars.nights]
hours = "20:00-23:59"
"""

ROUTING = """\
[[teams]]
name = "returns"
match = { kind = ["return", "refund", "exchange"] }
assign = "round_robin"
calendar = "office"

[[teams]]
name = "complaints"
match = {}
assign = "least_loaded"
"""


def test_the_sla_policy_has_named_calendars():
    policy = parse_policy(POLICY, "sla.toml")
    assert set(policy.calendars) == {"office", "nights"}
    assert policy.calendars["office"].timezone == "Asia/Shanghai"
    assert policy.calendars["nights"].hours == "20:00-23:59"
    assert policy.calendar.hours == "24x7"  # the clocks' own calendar is unchanged
    assert load_policy().calendars == {}


@pytest.mark.parametrize(("text", "line", "words"), [
    (POLICY.replace('"09:00-18:00"', '"9 to 5"'), 6, "hours in [calendars.office]"),
    (POLICY.replace('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"'), 5,
     "timezone in [calendars.office]"),
    (POLICY.replace('"thu", "fri"]', '"thu", "fry"]'), 7, "workdays in [calendars.office]"),
    (POLICY.replace("[calendars.nights]", "[calendars.nights]\ncolour = 1"), 10,
     "unknown calendar key 'colour' in [calendars.nights]"),
    (POLICY.replace("[calendars.nights]", '[calendars."night shift"]'), 9,
     "calendar name 'night shift'"),
    ("calendars = 3\n", 1, "[calendars] must be a table"),
])
def test_a_bad_named_calendar_is_refused_naming_the_line(text, line, words):
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "sla.toml")
    assert f"sla.toml line {line}:" in str(err.value) and words in str(err.value)


def test_sla_check_lists_the_named_calendars(tmp_path):
    (tmp_path / "sla.toml").write_text(POLICY)
    result = run(["sla", "check", str(tmp_path / "sla.toml")], dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "calendar: UTC, 24x7, mon,tue,wed,thu,fri,sat,sun\n" in result.stdout
    assert ("calendar office: Asia/Shanghai, 09:00-18:00, mon,tue,wed,thu,fri\n"
            in result.stdout)
    assert "calendar nights: UTC, 20:00-23:59, mon,tue,wed,thu,fri,sat,sun\n" in result.stdout


def test_a_team_names_one_of_the_policys_calendars():
    routing = parse_routing(ROUTING, "routing.toml", {"office", "nights"})
    assert [rule.calendar for rule in routing.teams] == ["office", None]


@pytest.mark.parametrize(("text", "calendars", "words"), [
    (ROUTING.replace('"office"', '"weekends"'), {"office"},
     "unknown calendar 'weekends' in team 'returns' (expected one of office)"),
    (ROUTING, set(), "unknown calendar 'office' in team 'returns' (expected a "
                     "[calendars.<name>] table of the SLA policy, which has none)"),
    (ROUTING.replace('"office"', "3"), {"office"}, "unknown calendar 3"),
    (ROUTING.replace('"office"', '["office"]'), {"office"}, "unknown calendar ['office']"),
])
def test_a_team_with_an_unknown_calendar_is_refused_naming_the_line(text, calendars, words):
    with pytest.raises(RoutingError) as err:
        parse_routing(text, "routing.toml", calendars)
    assert "routing.toml line 5:" in str(err.value) and words in str(err.value)
    assert err.value.line == 5


def test_an_unknown_calendar_stops_the_process_naming_the_line(tmp_path):
    (tmp_path / "sla.toml").write_text(POLICY)
    (tmp_path / "routing.toml").write_text(ROUTING.replace('"office"', '"offices"'))
    env = {**os.environ, "AFTERSALES_ROUTING_FILE": str(tmp_path / "routing.toml"),
           "AFTERSALES_SLA_FILE": str(tmp_path / "sla.toml"),
           "AFTERSALES_SECRET_KEY": "a-secret-key-of-at-least-32-bytes-long",
           "AFTERSALES_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    result = run(["web", "--port", "0"], env)
    assert result.returncode != 0
    assert "line 5" in result.stderr and "unknown calendar 'offices'" in result.stderr


def test_the_demo_routing_file_loads_and_every_team_has_a_demo_handler():
    routing = load_routing(demo_routing_file(), load_policy().calendars)
    handlers = {name for name, role, _ in DEMO_USERS if role == "handler"}
    members = {team for name, teams in DEMO_TEAMS.items() if name in handlers
               for team in teams}
    assert [rule.name for rule in routing.teams] == ["vip", "returns", "complaints"]
    assert members == {rule.name for rule in routing.teams if rule.assign != "none"}


# ---------------------------------------------------------------- on the dev server

REROUTING = """\
[[teams]]
name = "urgent"
match = { priority = "P1" }
assign = "round_robin"
max_open = 1

[[teams]]
name = "returns"
match = { kind = ["return", "refund", "exchange"] }
assign = "round_robin"

[[teams]]
name = "office"
match = { channel = "chat" }
assign = "least_loaded"
calendar = "open"

[[teams]]
name = "late"
match = { priority = "P2" }
assign = "least_loaded"
calendar = "closed"

[[teams]]
name = "complaints"
match = {}
assign = "least_loaded"
"""

STAFF = (("ann", ["returns"]), ("bea", ["returns"]), ("cy", ["complaints"]),
         ("dee", ["complaints"]), ("uma", ["urgent"]), ("una", ["urgent"]),
         ("oli", ["office"]), ("lou", ["late"]))


def sla_text(confirm_p3: str = "8h") -> str:
    """Two calendars around now (UTC): `open` works today and tomorrow, `closed` on
    every other day, so neither answer depends on when the test runs."""
    today = datetime.now(UTC).weekday()
    near = [WEEKDAYS[today], WEEKDAYS[(today + 1) % 7]]
    rest = [day for day in WEEKDAYS if day not in near]
    return (f"[calendars.open]\nworkdays = {near!r}\n\n"
            f"[calendars.closed]\nhours = \"00:00-23:59\"\nworkdays = {rest!r}\n\n"
            f"[targets.default]\nP3 = {{ confirm = \"{confirm_p3}\" }}\n").replace("'", '"')


class Stack:
    def __init__(self, app, tokens, sessions):
        self.app, self.client = app, app.test_client()
        self.tokens, self.sessions = tokens, sessions
        self.phones = itertools.count(13900000001)

    def auth(self, name: str) -> dict:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def open(self, channel: str = "phone", priority: str | None = None) -> dict:
        """An orderless complaint with a phone of its own (no repeats, priority P3
        unless given)."""
        phone = str(next(self.phones))
        body = {"kind": "complaint", "channel": channel,
                "customer": {"id": f"W-{phone}", "name": "Lin", "phone": phone},
                "description": "the kettle does not heat"}
        if priority:
            body["priority"] = priority
        answer = self.client.post("/api/v1/cases", json=body, headers=self.auth("ada"))
        assert answer.status_code == 201, answer.get_json()
        return answer.get_json()

    def act(self, name: str, case: dict, action: str, body: dict, status: int = 200) -> dict:
        answer = self.client.post(f"/api/v1/cases/{case['id']}/{action}", json=body,
                                  headers=self.auth(name))
        assert answer.status_code == status, answer.get_json()
        return answer.get_json()

    def away(self, *names: str) -> None:
        for name in names:
            answer = self.client.post("/api/v1/me/duty", json={"on_duty": False},
                                      headers=self.auth(name))
            assert answer.status_code == 200, answer.get_json()

    def assigned_mail(self, case: dict) -> list[str]:
        with self.sessions() as session:
            return list(session.scalars(select(OutboxMessage.recipient).where(
                OutboxMessage.case_id == case["id"],
                OutboxMessage.template == "case_assigned").order_by(OutboxMessage.key)))


def events(case: dict, kind: str) -> list[dict]:
    return [e for e in case["timeline"] if e["type"] == kind]


@pytest.fixture
def make_stack(tmp_path, temporal_address, order_system_url, database_url):
    made = []

    def make(confirm_p3: str = "8h") -> Stack:
        (tmp_path / "routing.toml").write_text(REROUTING)
        (tmp_path / "sla.toml").write_text(sla_text(confirm_p3))
        settings = make_settings(temporal_address, database_url, order_system_url,
                                 routing_file=str(tmp_path / "routing.toml"),
                                 sla_file=str(tmp_path / "sla.toml"))
        worker = BackgroundWorker(settings)
        worker.start()
        app = create_app(settings)
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        made.append((worker, app, engine))
        tokens = {}
        with sessions.begin() as session:
            for name, teams in STAFF:
                # ann signs in to the desk (tests.test_pages.signed_in's password).
                create_user(session, name, "handler", f"{name}-password" if name == "ann"
                            else None, teams=teams)
                tokens[name] = create_token(session, name)
            create_user(session, "ada", "admin")
            tokens["ada"] = create_token(session, "ada")
        return Stack(app, tokens, sessions)

    yield make
    for worker, app, engine in made:
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()
        engine.dispose()
        worker.stop()


def test_a_kind_changed_at_confirm_moves_the_case_to_the_team_that_now_takes_it(
        make_stack, temporal_address):
    stack = make_stack()
    case = stack.open()
    assert (case["team"], case["assignee"], case["priority"]) == ("complaints", "cy", "P3")
    moved = stack.act("cy", case, "confirm", {"note": "it is a return", "kind": "return"})
    record_history_sync(temporal_address, case["id"], "rerouted_confirm")
    assert (moved["kind"], moved["team"], moved["assignee"]) == ("return", "returns", "ann")
    [rerouted] = events(moved, "rerouted")
    assert rerouted["actor"] == "system"
    assert rerouted["detail"] == {
        "from": "complaints", "to": "returns", "kind": {"from": "complaint", "to": "return"},
        "assign": "round_robin", "assignee": {"from": "cy", "to": "ann"}}
    # The timeline says it after the confirmation that caused it.
    types = [e["type"] for e in moved["timeline"]]
    assert types.index("confirmed") < types.index("rerouted")
    assert stack.assigned_mail(case) == ["cy", "ann"]
    # cy gave it away: it is ann's now, and cy's action is refused and changes nothing.
    stack.act("cy", case, "note", {"text": "mine?"}, status=403)
    analyzed = stack.act("ann", case, "analyze", {
        "root_cause": "product_quality", "responsible_party": "supplier", "note": "faulty"})
    assert (analyzed["stage"], analyzed["team"]) == ("resolve", "returns")
    listed = stack.client.get("/api/v1/cases?team=returns", headers=stack.auth("ada"))
    assert [c["id"] for c in listed.get_json()["items"]] == [case["id"]]
    # The desk's timeline says where it went, in English and in Chinese.
    for lang, words in (("en", "routed the case to another team <span class=\"detail\">— "
                               "from complaints to returns"),
                        ("zh_CN", "将工单转给另一个团队 <span class=\"detail\">— 从 "
                                  "complaints 转到 returns")):
        page = signed_in(stack.app, "ann", lang).get(f"/desk/cases/{case['id']}")
        assert page.status_code == 200
        assert words in " ".join(page.get_data(as_text=True).split()), lang


def test_a_case_that_stays_in_its_team_stays_with_who_took_it(make_stack):
    stack = make_stack()
    stack.away("cy", "dee")
    case = stack.open(priority="P4")
    assert (case["team"], case["assignee"]) == ("complaints", None)
    taken = stack.act("dee", case, "assign", {"assignee": "dee"})
    assert taken["assignee"] == "dee"
    # P4 to P3 is a rise, but the complaints team still takes a P3 complaint: no move.
    confirmed = stack.act("dee", case, "confirm", {"note": "urgent-ish", "priority": "P3"})
    assert (confirmed["team"], confirmed["assignee"]) == ("complaints", "dee")
    assert events(confirmed, "rerouted") == []
    # A lower priority is no rise: no routing again either.
    lowered = stack.open()
    stack.act("ada", lowered, "assign", {"assignee": "cy"})
    done = stack.act("cy", lowered, "confirm", {"note": "minor", "priority": "P4"})
    assert (done["team"], done["assignee"], events(done, "rerouted")) == (
        "complaints", "cy", [])


def test_with_every_member_of_the_new_team_away_the_case_goes_to_its_queue(make_stack):
    stack = make_stack()
    stack.away("ann", "bea")
    case = stack.open()
    moved = stack.act("cy", case, "confirm", {"note": "a return", "kind": "return"})
    assert (moved["team"], moved["assignee"]) == ("returns", None)
    [rerouted] = events(moved, "rerouted")
    assert rerouted["detail"]["assignee"] == {"from": "cy", "to": None}
    # In the returns queue now: a returns handler takes it, cy may not.
    stack.act("cy", case, "note", {"text": "still mine?"}, status=403)
    assert stack.act("bea", case, "assign", {"assignee": "bea"})["assignee"] == "bea"


def test_a_rerouted_case_passes_over_a_handler_at_max_open(make_stack):
    stack = make_stack()
    first = stack.open(priority="P1")
    second = stack.open(priority="P1")
    assert [(c["team"], c["assignee"]) for c in (first, second)] == [
        ("urgent", "uma"), ("urgent", "una")]
    # Both at max_open = 1: a P1 confirmed now waits in the urgent queue.
    full = stack.open()
    queued = stack.act("cy", full, "confirm", {"note": "urgent", "priority": "P1"})
    assert (queued["team"], queued["assignee"]) == ("urgent", None)
    # una's case ends: round robin would go on from una to uma, but uma is full.
    stack.act("ada", second, "cancel", {"reason": "withdrawn"})
    case = stack.open()
    moved = stack.act(case["assignee"], case, "confirm", {"note": "urgent", "priority": "P1"})
    assert (moved["team"], moved["assignee"]) == ("urgent", "una")
    [rerouted] = events(moved, "rerouted")
    assert rerouted["detail"]["priority"] == {"from": "P3", "to": "P1"}


def test_outside_its_working_hours_a_team_has_nobody_on_duty(make_stack):
    stack = make_stack()
    # office works today: its on-duty member gets the chat case.
    chat = stack.open(channel="chat")
    assert (chat["team"], chat["assignee"]) == ("office", "oli")
    # late does not work today: a P2 case waits in its queue though lou is on duty.
    late = stack.open(priority="P2")
    assert (late["team"], late["assignee"]) == ("late", None)
    recorded = events(late, "recorded")[0]["detail"]
    assert (recorded["team"], recorded["assignee"]) == ("late", None)
    # Routed again into it, the same: the queue, and the timeline says why.
    case = stack.open()
    moved = stack.act("cy", case, "confirm", {"note": "sooner", "priority": "P2"})
    assert (moved["team"], moved["assignee"]) == ("late", None)
    [rerouted] = events(moved, "rerouted")
    assert rerouted["detail"]["outside_working_hours"] == "closed"


def test_an_overdue_escalation_that_raises_the_priority_routes_the_case_again(make_stack):
    stack = make_stack(confirm_p3="3s")
    case = stack.open()
    assert (case["team"], case["assignee"]) == ("complaints", "cy")
    deadline = time.monotonic() + 30
    while True:
        seen = stack.client.get(f"/api/v1/cases/{case['id']}", headers=stack.auth("ada"))
        seen = seen.get_json()
        if events(seen, "rerouted"):
            break
        assert time.monotonic() < deadline, [e["type"] for e in seen["timeline"]]
        time.sleep(0.2)
    # P3 to P2 by the breach: the late team takes P2 cases, and it is not at work.
    assert (seen["priority"], seen["team"], seen["assignee"]) == ("P2", "late", None)
    [rerouted] = events(seen, "rerouted")
    assert rerouted["detail"]["priority"] == {"from": "P3", "to": "P2"}
    types = [e["type"] for e in seen["timeline"]]
    assert types.index("escalated") < types.index("rerouted")


async def test_a_case_that_no_rule_matches_any_more_keeps_its_team(
        temporal_address, sqlite_url, order_system_url):
    """A routing file whose last team is not a catch-all is refused at start
    (test_teams), so a case always matches some rule; given rules that no longer match
    it, the workflow keeps the case where it is rather than fail."""
    from dataclasses import replace

    from temporalio.client import Client

    from tests.test_case_workflow import case_input, case_worker, events_of, start_case
    from workflows.case.contracts import Actor, ConfirmInput
    from workflows.case.workflow import CaseWorkflow
    from workflows.routing import RoutingPolicy, TeamMatch

    only_complaints = RoutingPolicy([TeamRule("complaints", TeamMatch(kind=["complaint"]),
                                              assign="least_loaded")])
    inp = replace(case_input(), routing=only_complaints,
                  rosters=[TeamRoster("complaints", [TeamMember("cy")])])
    client = await Client.connect(temporal_address)
    async with case_worker(client, sqlite_url, order_system_url) as (queue, sessions):
        handle = await start_case(client, queue, inp)
        snap = await handle.query(CaseWorkflow.snapshot)
        assert (snap.team, snap.assignee) == ("complaints", "cy")
        await handle.execute_update(CaseWorkflow.confirm, ConfirmInput(
            Actor("cy", "handler"), "a return after all", kind="return"))
        snap = await handle.query(CaseWorkflow.snapshot)
        assert (snap.kind, snap.stage, snap.team, snap.assignee) == (
            "return", "analyze", "complaints", "cy")
        assert "rerouted" not in [e.type for e in events_of(sessions, inp.case_id)]
