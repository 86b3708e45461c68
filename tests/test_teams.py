"""Teams, routing and ownership (docs/teams.md): the routing file and its refusals, the
assignment rules, and routing at intake on the real Temporal dev server with the order
simulator serving the orders."""

from __future__ import annotations

import os

import pytest

from activities.order_system import order_from_json
from aftersales.routing import RoutingError, load_routing, parse_routing
from db.accounts import create_token, create_user
from db.engine import make_engine, make_sessionmaker
from db.teams import teams_of
from tests.conftest import BackgroundWorker, make_settings, record_history_sync
from tests.test_cli import run
from web import create_app
from workflows.routing import (
    CaseFacts,
    TeamMember,
    TeamRoster,
    TeamRule,
    pick_assignee,
    team_for,
)

ROUTING = """\
[[teams]]
name = "returns"
match = { kind = ["return", "refund", "exchange"] }
assign = "round_robin"
max_open = 30

[[teams]]
name = "vip"
match = { tier = "vip", escalation_risk = true }
assign = "least_loaded"

[[teams]]
name = "complaints"
match = {}
assign = "least_loaded"
"""


def facts(**changes) -> CaseFacts:
    values = {"kind": "complaint", "channel": "web", "store": "online", "priority": "P3",
              "tier": "regular", "locale": "", "escalation_risk": False, **changes}
    return CaseFacts(**values)


# ---------------------------------------------------------------- the routing file


def test_the_shipped_routing_file_loads_and_ends_with_a_catch_all():
    policy = load_routing()
    assert [rule.name for rule in policy.teams] == ["returns", "complaints"]
    assert policy.teams[-1].match.is_catch_all()


def test_first_matching_team_wins():
    policy = parse_routing(ROUTING)
    assert team_for(policy, facts(kind="return")).name == "returns"
    assert team_for(policy, facts(tier="vip", escalation_risk=True)).name == "vip"
    assert team_for(policy, facts(tier="vip")).name == "complaints"
    # A vip return is the returns team's: it comes first.
    assert team_for(policy, facts(kind="return", tier="vip", escalation_risk=True)
                    ).name == "returns"
    assert policy.teams[0].max_open == 30


@pytest.mark.parametrize(("text", "line", "words"), [
    (ROUTING.replace('max_open = 30', 'max_opened = 30'), 5, "unknown team key 'max_opened'"),
    (ROUTING.replace('"exchange"]', '"swap"]'), 3, "unknown kind 'swap'"),
    (ROUTING.replace('tier = "vip"', 'tier = "vip", colour = "red"'), 9,
     "unknown match key 'colour'"),
    (ROUTING.replace('tier = "vip"', 'channel = "fax"'), 9, "unknown channel 'fax'"),
    (ROUTING.replace('tier = "vip"', 'priority = "P9"'), 9, "unknown priority 'P9'"),
    (ROUTING.replace('assign = "least_loaded"\n\n[[teams]]', 'assign = "random"\n\n'
                                                             '[[teams]]'), 10,
     "unknown assign 'random'"),
    (ROUTING.replace('match = {}', 'match = { kind = "complaint" }'), 14,
     "some cases match no team"),
    (ROUTING.replace('tier = "vip", escalation_risk = true', ''), 13,
     "comes after the catch-all"),
    (ROUTING.replace('max_open = 30', 'max_open = 0'), 5, "max_open"),
    (ROUTING + "\n[[teams]]\nname = \"returns\"\nmatch = {}\n", 18, "listed twice"),
    (ROUTING.replace('name = "vip"', 'name = "vip team"'), 8, "team needs a name"),
    ("owner = \"ops\"\n" + ROUTING, 1, "unknown key 'owner'"),
    (ROUTING.replace("match = {}", "match = {"), 14, "not valid TOML"),
])
def test_a_bad_routing_file_is_refused_naming_the_line(text, line, words):
    with pytest.raises(RoutingError) as err:
        parse_routing(text, "routing.toml")
    assert f"routing.toml line {line}:" in str(err.value)
    assert words in str(err.value)
    assert err.value.line == line


def test_a_bad_routing_file_stops_the_process_naming_the_line(tmp_path):
    routing = tmp_path / "routing.toml"
    routing.write_text(ROUTING.replace('"exchange"]', '"swap"]'))
    env = {**os.environ, "AFTERSALES_ROUTING_FILE": str(routing),
           "AFTERSALES_SECRET_KEY": "a-secret-key-of-at-least-32-bytes-long",
           "AFTERSALES_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    result = run(["web", "--port", "0"], env)
    assert result.returncode != 0
    assert "line 3" in result.stderr and "swap" in result.stderr


# ---------------------------------------------------------------- assignment


def roster(*members: tuple[str, int], last: str | None = None) -> TeamRoster:
    return TeamRoster("t", [TeamMember(name, n) for name, n in members], last)


def test_round_robin_goes_on_after_the_last_assignee_and_wraps():
    rule = TeamRule("t", assign="round_robin")
    team = [("ann", 3), ("bea", 0), ("cy", 1)]
    assert pick_assignee(rule, roster(*team)) == "ann"
    assert pick_assignee(rule, roster(*team, last="ann")) == "bea"
    assert pick_assignee(rule, roster(*team, last="cy")) == "ann"
    # The last one has gone away since: the next name after theirs.
    assert pick_assignee(rule, roster(*team, last="bob")) == "cy"


def test_least_loaded_takes_the_fewest_open_cases_then_the_name():
    rule = TeamRule("t", assign="least_loaded")
    assert pick_assignee(rule, roster(("ann", 3), ("bea", 1), ("cy", 1))) == "bea"


def test_members_at_max_open_are_passed_over():
    rule = TeamRule("t", assign="round_robin", max_open=2)
    assert pick_assignee(rule, roster(("ann", 2), ("bea", 1), last="bea")) == "bea"
    assert pick_assignee(TeamRule("t", assign="least_loaded", max_open=1),
                         roster(("ann", 2), ("bea", 1))) is None


def test_all_members_away_or_no_assignment_leave_the_case_in_the_queue():
    assert pick_assignee(TeamRule("t", assign="round_robin"), roster()) is None
    assert pick_assignee(TeamRule("t", assign="least_loaded"), None) is None
    assert pick_assignee(TeamRule("t", assign="none"), roster(("ann", 0))) is None


def test_orders_carry_their_store_and_old_ones_decode_without_it():
    order = {"id": "SO-1", "customer_id": "C-1", "status": "delivered", "currency": "CNY",
             "total": "1.00", "placed_at": "2026-11-01T00:00:00Z"}
    assert order_from_json(order).store_id == ""
    assert order_from_json({**order, "store_id": "hz-westlake"}).store_id == "hz-westlake"


def test_users_create_puts_the_user_in_each_team(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env = {**os.environ, "AFTERSALES_DATABASE_URL": url}
    result = run(["users", "create", "ann", "--role", "handler", "--team", "returns",
                  "--team", "complaints"], env)
    assert result.returncode == 0, result.stderr
    bad = run(["users", "create", "bea", "--role", "handler", "--team", "no such"], env)
    assert bad.returncode != 0 and "team name" in bad.stderr
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        assert teams_of(session, "ann") == ["complaints", "returns"]
        assert teams_of(session, "bea") == []
    engine.dispose()


# ---------------------------------------------------------------- routing at intake


@pytest.fixture
def teams_stack(tmp_path, temporal_address, order_system_url):
    routing = tmp_path / "routing.toml"
    routing.write_text(ROUTING)
    database_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    settings = make_settings(temporal_address, database_url, order_system_url,
                             routing_file=str(routing))
    worker = BackgroundWorker(settings)
    worker.start()
    app = create_app(settings)
    sessions = make_sessionmaker(make_engine(database_url))
    tokens = {}
    with sessions.begin() as session:
        for name, role, teams in (("ann", "handler", ["returns"]),
                                  ("bea", "handler", ["returns"]),
                                  ("cy", "handler", ["complaints"]),
                                  ("dee", "handler", ["complaints"]),
                                  ("flo", "handler", []),
                                  ("sue", "supervisor", ["returns"]),
                                  ("ada", "admin", [])):
            create_user(session, name, role, teams=teams)
            tokens[name] = create_token(session, name)
    yield app.test_client(), tokens
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()
    worker.stop()


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def new_case(client, token: str, kind: str, order_id: str = "SO-10002") -> dict:
    order = client.application.extensions["aftersales"].orders.get(order_id)
    body = {"kind": kind, "channel": "web", "order_id": order_id,
            "customer": {"id": order.customer_id, "name": order.customer.name},
            "items": [{"sku": order.lines[0].sku, "quantity": 1}],
            "description": "the kettle leaks"}
    response = client.post("/api/v1/cases", json=body, headers=auth(token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_cases_are_routed_to_a_team_and_a_handler_at_intake(teams_stack, temporal_address):
    client, tokens = teams_stack
    first = new_case(client, tokens["ada"], "return")
    record_history_sync(temporal_address, first["id"], "routed_return")
    assert (first["team"], first["assignee"], first["store"]) == (
        "returns", "ann", "sh-nanjing-rd")
    recorded = next(e for e in first["timeline"] if e["type"] == "recorded")
    assert recorded["detail"]["team"] == "returns"
    # Round robin: the next member after the last one given a case, then around.
    refund = new_case(client, tokens["ada"], "refund", "SO-10003")
    assert (refund["assignee"], refund["store"]) == ("bea", "bj-wangfujing")
    assert new_case(client, tokens["ada"], "exchange", "SO-10004")["assignee"] == "ann"
    # Least loaded: cy and dee hold none; cy first by name, then dee.
    complaint = new_case(client, tokens["ada"], "complaint", "SO-10005")
    assert (complaint["team"], complaint["assignee"]) == ("complaints", "cy")
    assert new_case(client, tokens["ada"], "complaint", "SO-10006")["assignee"] == "dee"

    listed = client.get("/api/v1/cases?team=returns", headers=auth(tokens["ada"])).get_json()
    assert listed["total"] == 3 and {c["team"] for c in listed["items"]} == {"returns"}
    by_store = client.get("/api/v1/cases?store=bj-wangfujing",
                          headers=auth(tokens["ada"])).get_json()
    assert [c["id"] for c in by_store["items"]] == [refund["id"]]
    bad = client.get("/api/v1/cases?team=no%20such", headers=auth(tokens["ada"]))
    assert bad.status_code == 422 and "team" in bad.get_json()["errors"]

    made = client.post("/api/v1/users", headers=auth(tokens["ada"]), json={
        "name": "gus", "role": "handler", "teams": ["returns", "vip"]})
    assert made.status_code == 201, made.get_json()
    assert (made.get_json()["teams"], made.get_json()["on_duty"]) == (["returns", "vip"], True)
    # gus is next in the returns round after ann (bea, then around: ann, bea, gus).
    assert new_case(client, tokens["ada"], "return", "SO-10008")["assignee"] == "bea"
    assert new_case(client, tokens["ada"], "return", "SO-10009")["assignee"] == "gus"


def test_with_every_member_away_the_case_waits_in_the_team_queue(teams_stack):
    client, tokens = teams_stack
    for name in ("cy", "dee"):
        answer = client.post("/api/v1/me/duty", json={"on_duty": False},
                             headers=auth(tokens[name]))
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["on_duty"] is False
        assert answer.get_json()["teams"] == ["complaints"]
    assert client.post("/api/v1/me/duty", json={"on_duty": "no"},
                       headers=auth(tokens["cy"])).status_code == 422
    case = new_case(client, tokens["ada"], "complaint")
    assert (case["team"], case["assignee"]) == ("complaints", None)
    client.post("/api/v1/me/duty", json={"on_duty": True}, headers=auth(tokens["dee"]))
    assert new_case(client, tokens["ada"], "complaint", "SO-10007")["assignee"] == "dee"
