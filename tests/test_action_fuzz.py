"""Fuzzing the case's action validators: any sequence of staff and customer actions,
valid or not, leaves the case in a valid stage, moves only along the lifecycle's
edges, and a refused action changes nothing."""

from __future__ import annotations

import os
import secrets

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import BackgroundWorker, make_settings
from web.commands import action_input
from web.gateway import ActionRefused, CaseGateway, CaseNotRunning
from workflows.case.contracts import (
    Actor,
    CaseInput,
    Customer,
    FeedbackInput,
    ReplyInput,
)
from workflows.case.lifecycle import BY_NAME, MOVES
from workflows.case.vocabulary import ID_ALPHABET, STAGES
from workflows.sla import SlaPolicy

pytestmark = pytest.mark.temporal  # the dev server; the second test reads the first's runs
# The lifecycle's edges: the action table's moves and the system's own.
EDGES = MOVES
# The case the fuzzed cases are merged into (a fresh id each run: the server may be shared).
SURVIVOR = "AS-" + "".join(secrets.choice(ID_ALPHABET) for _ in range(10))
BODIES = {
    "assign": st.just({"assignee": "alice"}),
    "confirm": st.sampled_from([{"note": "ok", "priority": None, "kind": None},
                                {"note": "urgent", "priority": "P1", "kind": None}]),
    "reject": st.just({"reason": "not ours"}),
    "analyze": st.just({"root_cause": "other", "responsible_party": "merchant", "note": "n"}),
    "resolve": st.sampled_from([
        {"resolution": {"type": "apology", "amount": None, "items": [], "coupon_code": None,
                        "points": None}, "note": ""},
        {"resolution": {"type": "compensation", "amount": None, "items": [],
                        "coupon_code": None, "points": 50}, "note": ""}]),
    "inspect": st.just({"passed": True, "note": ""}),
    "request-info": st.just({"question": "photo?"}),
    "note": st.just({"text": "called"}),
    "tag": st.sampled_from([{"add": ["vip"], "remove": []}, {"add": [], "remove": ["vip"]}]),
    "escalate": st.just({"reason": "angry"}),
    "approve": st.just({"note": ""}),
    "revisit": st.sampled_from([{"outcome": o, "note": ""}
                                for o in ("satisfied", "unsatisfied", "unreachable")]),
    "reopen": st.just({"reason": "again"}),
    "cancel": st.just({"reason": "withdrawn"}),
}
# Into the open case the fixture keeps, into an id no workflow has (the signal fails:
# refused, nothing changes), or not a case id at all. Only in the short random sequences:
# an accepted merge ends the case, and the long ones are there to reach the late stages.
merges = st.tuples(st.just("merge"), st.sampled_from([
    {"into": SURVIVOR}, {"into": "AS-" + "Z" * 10}, {"into": "AS-FZ000001"}]))
steps = st.one_of(
    *(st.tuples(st.just(action), body) for action, body in BODIES.items()),
    st.tuples(st.just("feedback"), st.integers(min_value=1, max_value=5)),
    st.tuples(st.just("reply"), st.just("here it is")),
)


HAPPY = [("confirm", {"note": "ok", "priority": None, "kind": None}),
         ("analyze", {"root_cause": "other", "responsible_party": "merchant", "note": "n"}),
         ("resolve", {"resolution": {"type": "apology", "amount": None, "items": [],
                                     "coupon_code": None, "points": None}, "note": ""}),
         ("feedback", 4),
         ("revisit", {"outcome": "satisfied", "note": ""})]


@st.composite
def along_the_lifecycle(draw) -> list:
    """The happy path, cut short anywhere, with random actions in between, so the fuzzer
    reaches every stage and not only the first."""
    sequence: list = []
    for step in HAPPY[:draw(st.integers(min_value=1, max_value=len(HAPPY)))]:
        sequence += draw(st.lists(steps, max_size=3))
        sequence.append(step)
    return sequence + draw(st.lists(steps, max_size=3))


sequences = st.one_of(st.lists(st.one_of(steps, merges), min_size=1, max_size=10),
                      along_the_lifecycle())


@pytest.fixture(scope="module")
def gateway(temporal_address, order_system_url, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'db.sqlite'}"
    from db.engine import migrate

    migrate(url)
    app_settings = make_settings(temporal_address, url, order_system_url)
    worker = BackgroundWorker(app_settings)
    worker.start()
    gateway = CaseGateway(app_settings)
    open_case(gateway, 0, SURVIVOR)
    yield gateway
    gateway.close()
    worker.stop()


def open_case(gateway: CaseGateway, n: int, case_id: str = "") -> str:
    case_id = case_id or f"AS-FZ{n:06d}"
    gateway.open_case(CaseInput(
        case_id=case_id, kind="complaint", channel="web", order_id="SO-10004",
        customer=Customer(id="C-1004", name="Emma Clarke"), items=[], description="fuzz",
        status_token=f"fuzz-{case_id}", customer_url="http://x/s/t", policy=SlaPolicy(),
        opened_by="alice"))
    return case_id


counter = iter(range(10**6))
ACCEPTED: list = []


# Derandomized: the same examples every run, so CI is repeatable (and the check below
# that the fuzzer reached every stage cannot flicker).
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
          database=None, derandomize=True)
@given(sequence=sequences)
# Merges, always: refused ones first (no such workflow, not a case id), then one that
# ends the case, from confirm and from feedback.
@example(sequence=[("merge", {"into": "AS-" + "Z" * 10}), ("merge", {"into": "AS-FZ000001"}),
                   ("merge", {"into": SURVIVOR}), ("note", {"text": "after"})])
@example(sequence=[*HAPPY[:3], ("merge", {"into": SURVIVOR}), ("reopen", {"reason": "x"})])
def test_any_sequence_of_actions_keeps_the_case_valid(gateway, sequence):
    case_id = open_case(gateway, next(counter) + os.getpid() % 1000 * 1000)
    before = gateway.snapshot(case_id)
    actor = Actor("sue", "supervisor")
    for action, body in sequence:
        if action == "feedback":
            update, arg = "feedback", FeedbackInput(body, "")
        elif action == "reply":
            update, arg = "reply", ReplyInput(body)
        else:
            update, arg = BY_NAME[action].update, action_input(BY_NAME[action], actor, body)
        try:
            gateway.act(case_id, update, arg)
            refused = False
            ACCEPTED.append((before.stage, action))
        except (ActionRefused, CaseNotRunning):
            refused = True
        if before.stage == "cancelled" or before.merged_into:
            break  # the workflow has ended; nothing more to ask it
        after = gateway.snapshot(case_id)
        assert after.stage in STAGES
        if refused:
            assert after.version == before.version, (action, before.stage)
            assert after.stage == before.stage
        elif after.stage != before.stage:
            assert (before.stage, after.stage) in EDGES, (action, before.stage, after.stage)
        open_names = [c.name for c in after.clocks if c.state in ("running", "paused")]
        assert len(open_names) == len(set(open_names)), open_names
        if after.stage in ("closed", "cancelled"):
            assert after.status == after.stage
            assert not after.overdue
        before = after


def test_the_fuzzer_reached_deep_stages():
    """Runs after the fuzz test: it must have got cases well past intake."""
    stages = {stage for stage, _ in ACCEPTED}
    assert {"confirm", "analyze", "resolve", "feedback", "revisit"} <= stages, stages
    assert "merge" in {action for _, action in ACCEPTED}  # and merged some
