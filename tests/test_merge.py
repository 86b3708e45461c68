"""Merging a duplicate into the same customer's case (docs/teams.md, "Merging
duplicates"): the action table's row, the REST action and its refusals, the survivor told
through its own workflow history, the customer's link to the duplicate, and the desk's
pages; on the real Temporal dev server, the order simulator over HTTP, and the read model
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import re
import time
from datetime import UTC, datetime

import pytest
from marshmallow import ValidationError
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus

from activities.messages import render
from db.accounts import create_token, create_user
from db.models import OutboxMessage
from tests.conftest import BackgroundWorker, make_settings, record_history_sync
from tests.test_attachment_files import pdf
from web import create_app
from web.schemas import MergeSchema
from workflows.case.contracts import Actor, CaseState, Customer, Resolution, workflow_id
from workflows.case.lifecycle import BY_NAME, MOVES, refusal
from workflows.case.vocabulary import OPEN_STAGES, Stage

# ---------------------------------------------------------------- the table, the schema


def state(stage: str = Stage.ANALYZE, **changes) -> CaseState:
    return CaseState(case_id="AS-2222222222", kind="complaint", channel="web",
                     order_id="SO-1", customer=Customer("C-1", "x"), items=[],
                     description="", status_token="", customer_url="", stage=stage,
                     **changes)


HANK = Actor("hank", "handler")
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_merge_is_a_row_of_the_action_table():
    merge = BY_NAME["merge"]
    assert (merge.update, merge.stages, merge.destructive) == ("merge", OPEN_STAGES, True)
    assert all((stage, Stage.CLOSED) in MOVES for stage in OPEN_STAGES)
    assert refusal(merge, state(), HANK, NOW) is None
    assert refusal(merge, state(Stage.CLOSED), HANK, NOW).kind == "WrongStage"
    assert refusal(merge, state(Stage.CANCELLED), HANK, NOW).kind == "WrongStage"


@pytest.mark.parametrize("resolution_state", ["planned", "running"])
def test_a_case_whose_resolution_runs_is_not_merged(resolution_state):
    running = state(Stage.RESOLVE, resolution=Resolution(type="refund", amount="1.00",
                                                         state=resolution_state))
    refused = refusal(BY_NAME["merge"], running, HANK, NOW)
    assert refused.kind == "WrongStage" and "resolution is running" in refused.message
    done = state(Stage.FEEDBACK, resolution=Resolution(type="refund", state="done"))
    assert refusal(BY_NAME["merge"], done, HANK, NOW) is None


def test_a_merged_case_takes_no_more_changes():
    merged = state(Stage.CLOSED, merged_into="AS-3333333333", closed_at=NOW)
    for name in ("reopen", "note", "tag", "reply", "message"):
        actor = Actor("customer", "customer") if name == "message" else HANK
        refused = refusal(BY_NAME[name], merged, actor, NOW)
        assert refused.kind == "WrongStage", name
        assert "merged into AS-3333333333" in refused.message, name


ODD_INTO = ["", "AS-", "as-2345678923", "AS-234567892", "AS-23456789234", "AS-0000000000",
            "AS-23456789I3", "AS-2345678923\n", " AS-2345678923", "AS-2345678923/../x",
            "../AS-2345678923", "AS-2345678923' OR '1'='1", "<script>AS-2345678923",
            "AS-２３４５６７８９２３", "AS-2345678923\x00", "AS-" + "2" * 4000]


@pytest.mark.parametrize("into", ODD_INTO)
def test_the_schema_refuses_what_is_not_a_case_id(into):
    with pytest.raises(ValidationError) as err:
        MergeSchema().load({"into": into})
    assert "into" in err.value.messages


@pytest.mark.parametrize("body", [{}, {"into": None}, {"into": 123},
                                  {"into": ["AS-2345678923"]},
                                  {"into": {"id": "AS-2345678923"}},
                                  {"into": "AS-2345678923", "reason": "dup"}])
def test_the_schema_refuses_a_missing_or_mistyped_into(body):
    with pytest.raises(ValidationError):
        MergeSchema().load(body)


# ---------------------------------------------------------------- the stack


def _stack(temporal_address, order_system_url, database_url):
    settings = make_settings(temporal_address, database_url, order_system_url)
    worker = BackgroundWorker(settings)
    worker.start()
    app = create_app(settings)
    tokens = {}
    with app.extensions["aftersales"].sessions.begin() as session:
        for name, role, teams in (("hank", "handler", ["complaints"]),
                                  ("rita", "handler", ["returns"]),
                                  ("sue", "supervisor", ["complaints"])):
            create_user(session, name, role, f"{name}-password", teams=teams)
            tokens[name] = create_token(session, name)
    return app, worker, tokens


@pytest.fixture
def stack(temporal_address, order_system_url, database_url):
    app, worker, tokens = _stack(temporal_address, order_system_url, database_url)
    yield Stack(app, tokens, temporal_address)
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()
    worker.stop()


@pytest.fixture
def sqlite_stack(temporal_address, order_system_url, sqlite_url):
    app, worker, tokens = _stack(temporal_address, order_system_url, sqlite_url)
    yield Stack(app, tokens, temporal_address)
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()
    worker.stop()



@pytest.fixture
def own_orders_stack(temporal_address, sqlite_url):
    """The stack over an order system of its own: a test that refunds a large amount
    cannot lean on what the session's shared simulator has left on an order."""
    from simulators import order_system
    from tests.test_resolutions import Served

    orders = Served(order_system.create_app(order_system.OrderSystem(state_file=None)))
    app, worker, tokens = _stack(temporal_address, orders.url, sqlite_url)
    yield Stack(app, tokens, temporal_address)
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()
    worker.stop()
    orders.stop()


class Stack:
    def __init__(self, app, tokens: dict[str, str], temporal: str) -> None:
        self.app, self.tokens, self.temporal = app, tokens, temporal
        self.client = app.test_client()

    def call(self, method: str, path: str, who: str = "hank", **kwargs):
        return self.client.open(path, method=method, headers={
            "Authorization": f"Bearer {self.tokens[who]}"}, **kwargs)

    def open_case(self, order_id: str = "SO-10002", customer: str = "C-1002",
                  kind: str = "complaint") -> dict:
        response = self.call("POST", "/api/v1/cases", json={
            "kind": kind, "channel": "phone", "order_id": order_id,
            "customer": {"id": customer, "name": "李娜"}, "items": [],
            "description": "the tea box arrived crushed"})
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def get(self, case_id: str) -> dict:
        response = self.call("GET", f"/api/v1/cases/{case_id}")
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def act(self, case_id: str, action: str, body: dict, who: str = "hank"):
        return self.call("POST", f"/api/v1/cases/{case_id}/{action}", who=who, json=body)

    def merge(self, case_id: str, into, who: str = "hank"):
        return self.act(case_id, "merge", {"into": into}, who=who)

    def wait(self, case_id: str, predicate, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            case = self.get(case_id)
            if predicate(case):
                return case
            assert time.monotonic() < deadline, (case["stage"], case["timeline"][-1])
            time.sleep(0.1)


def token_of(case: dict) -> str:
    return case["customer_url"].rsplit("/", 1)[-1]


def workflow_status(temporal: str, case_id: str):
    async def describe():
        client = await Client.connect(temporal)
        return (await client.get_workflow_handle(workflow_id(case_id)).describe()).status
    return asyncio.run(describe())


def survivor_signals(temporal: str, case_id: str) -> list[str]:
    """The signals in the survivor's own history, by name."""
    async def fetch():
        client = await Client.connect(temporal)
        history = await client.get_workflow_handle(workflow_id(case_id)).fetch_history()
        return [e.workflow_execution_signaled_event_attributes.signal_name
                for e in history.events
                if e.HasField("workflow_execution_signaled_event_attributes")]
    return asyncio.run(fetch())


def refused(response, status: int) -> dict:
    assert response.status_code == status, response.get_json()
    assert response.content_type == "application/problem+json"
    return response.get_json()


# ---------------------------------------------------------------- merging


def test_merging_a_duplicate_closes_it_and_the_survivor_records_it(stack):
    survivor = stack.open_case()
    assert stack.act(survivor["id"], "confirm", {"note": "ok"}).status_code == 200
    duplicate = stack.open_case()
    upload = stack.call("POST", f"/api/v1/cases/{duplicate['id']}/attachments",
                        data={"file": (io.BytesIO(pdf()), "receipt.pdf")},
                        content_type="multipart/form-data")
    assert upload.status_code == 201, upload.get_json()
    evidence = upload.get_json()

    # A supervisor merges it; the survivor is hank's, so hank is told.
    answer = stack.merge(duplicate["id"], survivor["id"], who="sue")
    assert answer.status_code == 200, answer.get_json()
    merged = answer.get_json()
    assert (merged["stage"], merged["status"], merged["close_reason"],
            merged["merged_into"]) == ("closed", "closed", "duplicate", survivor["id"])
    assert merged["closed_at"] is not None and merged["merged_from"] == []
    entry = merged["timeline"][-1]
    assert (entry["type"], entry["actor"], entry["stage_after"], entry["detail"]) == (
        "merged", "sue", "closed", {"into": survivor["id"], "reason": "duplicate"})
    # Its clocks stopped where they stood; nothing is due, no rating, no revisit.
    assert [c["state"] for c in merged["deadlines"]["clocks"]
            if c["state"] in ("running", "paused")] == []
    assert merged["deadlines"]["stage_due_at"] is None
    assert merged["deadlines"]["feedback_due_at"] is None
    assert merged["deadlines"]["revisit_due_at"] is None
    # Its workflow ended: a duplicate takes no more actions.
    deadline = time.monotonic() + 30
    while workflow_status(stack.temporal, duplicate["id"]) != \
            WorkflowExecutionStatus.COMPLETED:
        assert time.monotonic() < deadline, "the duplicate's workflow did not end"
        time.sleep(0.2)
    for action, body in (("note", {"text": "x"}), ("reopen", {"reason": "x"}),
                         ("merge", {"into": survivor["id"]})):
        refused(stack.act(duplicate["id"], action, body), 409)

    # The survivor heard it through its own history, and shows it.
    kept = stack.wait(survivor["id"], lambda c: c["merged_from"] == [duplicate["id"]])
    assert survivor_signals(stack.temporal, survivor["id"]) == ["merged_in"]
    heard = [e for e in kept["timeline"] if e["type"] == "merged_in"]
    assert [(e["actor"], e["detail"]) for e in heard] == [
        ("sue", {"case_id": duplicate["id"]})]
    with stack.app.extensions["aftersales"].sessions() as session:
        told = [(m.recipient, m.payload) for m in session.scalars(select(OutboxMessage).where(
            OutboxMessage.case_id == survivor["id"],
            OutboxMessage.template == "case_merged_in"))]
    assert [(who, payload["duplicate"], payload["by"]) for who, payload in told] == [
        ("hank", duplicate["id"], "sue")]
    text = render("case_merged_in", "zh-CN", {**told[0][1], "case_id": survivor["id"],
                                             "recipient_name": "hank", "desk_url": "u"})
    assert duplicate["id"] in text.subject and "sue" in text.body
    assert (kept["stage"], kept["close_reason"], kept["merged_into"]) == (
        "analyze", None, None)
    # The duplicate's evidence is still its own and downloads from there.
    file = stack.call("GET", f"/api/v1/cases/{duplicate['id']}/attachments/{evidence['id']}")
    assert file.status_code == 200 and file.data.startswith(b"%PDF")
    record_history_sync(stack.temporal, duplicate["id"], "merged_duplicate")
    record_history_sync(stack.temporal, survivor["id"], "merged_survivor")

    # The customer's link to the duplicate leads to the survivor.
    view = stack.client.get(f"/api/v1/status/{token_of(merged)}").get_json()
    assert view["merged_into"] == {"case_id": survivor["id"],
                                   "customer_url": survivor["customer_url"]}
    assert view["can_write"] is False and survivor["id"] in view["next_step"]
    assert "Joined with your other request" in " ".join(h["what"] for h in view["history"])
    page = stack.client.get(f"/s/{token_of(merged)}")
    assert page.status_code == 302
    assert page.headers["Location"].endswith(f"/s/{token_of(survivor)}")
    assert stack.client.get(f"/api/v1/status/{token_of(survivor)}").get_json()[
        "merged_into"] is None
    written = stack.client.post(f"/api/v1/status/{token_of(merged)}/messages",
                                json={"message": "any news?"})
    refused(written, 409)

    # The desk: the survivor links the duplicate's timeline and files; the duplicate
    # says where it went.
    login = stack.client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login).group(1)
    assert stack.client.post("/login", data={"username": "hank", "password": "hank-password",
                                             "csrf_token": csrf}).status_code == 302
    html = stack.client.get(f"/desk/cases/{survivor['id']}").get_data(as_text=True)
    section = html[html.index('id="merged"'):html.index('id="timeline-h"')]
    assert f"/desk/cases/{duplicate['id']}#timeline-h" in section
    file_url = f"/desk/cases/{duplicate['id']}/files/{evidence['id']}"
    assert file_url in section and "receipt.pdf" in section
    assert stack.client.get(file_url).data.startswith(b"%PDF")
    html = stack.client.get(f"/desk/cases/{duplicate['id']}").get_data(as_text=True)
    assert re.search(r'id="merged-into">[^<]*duplicate[^<]*<a href="/desk/cases/'
                     + survivor["id"], html)
    assert 'id="act-merge"' not in html


def test_refused_merges_change_nothing(sqlite_stack):
    stack = sqlite_stack
    survivor = stack.open_case()
    duplicate = stack.open_case()
    other_customer = stack.open_case("SO-10003", "C-1003")
    before = stack.get(duplicate["id"])

    def unchanged() -> None:
        now = stack.get(duplicate["id"])
        assert (now["version"], now["stage"], len(now["timeline"]), now["merged_into"]) == (
            before["version"], before["stage"], len(before["timeline"]), None)

    body = refused(stack.merge(duplicate["id"], duplicate["id"]), 422)
    assert "itself" in body["errors"]["into"][0]
    body = refused(stack.merge(duplicate["id"], "AS-ZZZZZZZZZZ"), 422)
    assert body["errors"]["into"] == ["no case AS-ZZZZZZZZZZ"]
    body = refused(stack.merge(duplicate["id"], other_customer["id"]), 422)
    assert "another customer's" in body["errors"]["into"][0]
    for odd in ("AS-../../etc", "AS-2345678923'--", "<img src=x>", "AS-2345678923\r\nX: y",
                survivor["id"].lower(), survivor["id"] + " ", 42, None, [survivor["id"]]):
        body = refused(stack.merge(duplicate["id"], odd), 422)
        assert "into" in body["errors"], odd
    body = refused(stack.act(duplicate["id"], "merge", {"into": survivor["id"],
                                                        "close": True}), 422)
    assert "close" in body["errors"]
    # Another team's handler: not theirs to touch (docs/roles.md#whose-case).
    body = refused(stack.merge(duplicate["id"], survivor["id"], who="rita"), 403)
    assert body["title"] == "Not your case"
    # The desk's form: the same refusals, explained on the page.
    login = stack.client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login).group(1)
    assert stack.client.post("/login", data={"username": "hank", "password": "hank-password",
                                             "csrf_token": csrf}).status_code == 302
    page = stack.client.get(f"/desk/cases/{duplicate['id']}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    for into, shown in (("AS-../x", "Check “The customer’s case this one duplicates"),
                        (other_customer["id"], f"case {other_customer['id']} is another "
                                               "customer’s")):
        sent = stack.client.post(f"/desk/cases/{duplicate['id']}/merge",
                                 data={"csrf_token": csrf, "into": into, "confirmed": "yes"})
        # The page again, the case id typed still in the form, the reason beside it.
        assert sent.status_code == 422
        html = sent.get_data(as_text=True)
        assert shown in html.replace("&#39;", "’").replace("'", "’"), into
        assert f'value="{into}" aria-invalid="true"' in html
    unchanged()
    # Nothing reached the survivor either.
    assert stack.get(survivor["id"])["merged_from"] == []
    assert survivor_signals(stack.temporal, survivor["id"]) == []
    # An unknown case in the URL is 404.
    refused(stack.merge("AS-ZZZZZZZZZZ", survivor["id"]), 404)

    # Into a closed (merged) case, or a cancelled one: 409.
    assert stack.merge(duplicate["id"], survivor["id"], who="sue").status_code == 200
    third = stack.open_case()
    body = refused(stack.merge(third["id"], duplicate["id"]), 409)
    assert f"case {duplicate['id']} is closed" in body["detail"]
    cancelled = stack.open_case()
    assert stack.act(cancelled["id"], "cancel", {"reason": "withdrawn"}).status_code == 200
    body = refused(stack.merge(third["id"], cancelled["id"]), 409)
    assert "cancelled" in body["detail"]
    # A case already merged: 409, whatever it names now.
    body = refused(stack.merge(duplicate["id"], third["id"]), 409)
    assert f"already merged into {survivor['id']}" in body["detail"]
    assert stack.get(third["id"])["stage"] == "confirm"
    assert stack.get(third["id"])["merged_from"] == []


def test_a_survivor_whose_workflow_ended_meanwhile_is_refused_by_the_signal(sqlite_stack):
    """The read model still shows the survivor open, but its workflow has ended (here
    terminated; in life, its reopen window ran out): the signal fails, the merge is
    refused and the duplicate is unchanged."""
    stack = sqlite_stack
    survivor = stack.open_case()
    duplicate = stack.open_case()

    async def terminate():
        client = await Client.connect(stack.temporal)
        await client.get_workflow_handle(workflow_id(survivor["id"])).terminate("test")
    asyncio.run(terminate())
    before = stack.get(duplicate["id"])
    body = refused(stack.merge(duplicate["id"], survivor["id"]), 409)
    assert f"case {survivor['id']} has ended" in body["detail"]
    after = stack.get(duplicate["id"])
    assert (after["version"], after["stage"], after["merged_into"]) == (
        before["version"], "confirm", None)
    # The duplicate's workflow goes on: it still takes actions.
    assert stack.act(duplicate["id"], "note", {"text": "still here"}).status_code == 200


def test_a_case_whose_resolution_runs_is_refused_by_its_workflow(own_orders_stack):
    stack = own_orders_stack
    survivor = stack.open_case("SO-10003", "C-1003")
    duplicate = stack.open_case("SO-10003", "C-1003", kind="refund")
    # A refund is the returns team's (the shipped routing file): rita's to work.
    assert duplicate["team"] == "returns"
    assert stack.act(duplicate["id"], "confirm", {"note": "ok"}, who="rita").status_code == 200
    assert stack.act(duplicate["id"], "analyze", {
        "root_cause": "product_quality", "responsible_party": "supplier",
        "note": "faulty"}, who="rita").status_code == 200
    # Above the approval limit: the refund waits for a supervisor, its saga running.
    assert stack.act(duplicate["id"], "resolve", {"resolution": {
        "type": "refund", "amount": "600.00"}}, who="rita").status_code == 200
    waiting = stack.wait(duplicate["id"],
                         lambda c: (c["resolution"] or {}).get("awaiting") == "approval")
    body = refused(stack.merge(duplicate["id"], survivor["id"], who="rita"), 409)
    assert "resolution is running" in body["detail"]
    # Nothing changed (the version may still move: the approval's own notices land
    # after the wait saw it waiting).
    after = stack.get(duplicate["id"])
    assert after["merged_into"] is None and after["stage"] == waiting["stage"]
    assert not {"merged", "merged_in"} & {e["type"] for e in after["timeline"]}
    assert (after["resolution"] or {}).get("awaiting") == "approval"
    assert stack.get(survivor["id"])["merged_from"] == []
