"""The REST contract: the role matrix cell by cell, every row of the status table,
idempotent requests, the customer's link, and refused requests that change nothing."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import update
from temporalio.client import Client

from db.accounts import create_token, create_user, find_token
from db.engine import make_engine, make_sessionmaker
from db.models import Case
from tests.conftest import BackgroundWorker, make_settings, settled_history_length, staff_token
from web import create_app
from web.auth import OWNERSHIP, PERMISSIONS
from web.caseview import case_state
from workflows.case.contracts import Actor
from workflows.case.lifecycle import BY_NAME, STAFF, STAFF_ACTIONS, refusal
from workflows.case.vocabulary import ROLES

USERS = {"handler": "hank", "supervisor": "sue", "admin": "ada"}


@pytest.fixture(scope="module")
def api(temporal_address, order_system_url, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('contract-api') / 'db.sqlite'}"
    settings = make_settings(temporal_address, url, order_system_url)
    worker = BackgroundWorker(settings)
    worker.start()
    app = create_app(settings)
    sessions = make_sessionmaker(make_engine(url))
    tokens = {}
    with sessions.begin() as session:
        for role, name in USERS.items():
            create_user(session, name, role, f"{name}-password")
            tokens[role] = create_token(session, name)
        create_user(session, "alice", "handler", "alice-password")
        # The team dimension (shipped routing: returns and complaints queues): a handler
        # and a supervisor of returns, a colleague in returns, one in complaints.
        for name, role, teams in (("rita", "handler", ["returns"]),
                                  ("rex", "supervisor", ["returns"]),
                                  ("ray", "handler", ["returns"]),
                                  ("cy", "handler", ["complaints"])):
            create_user(session, name, role, teams=teams)
            tokens[name] = create_token(session, name)
    yield app.test_client(), tokens, sessions, temporal_address
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()
    worker.stop()


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def new_case_body(order_id: str = "SO-10003") -> dict:
    return {"kind": "complaint", "channel": "web", "order_id": order_id,
            "customer": {"id": "C-1003", "name": "张伟", "phone": "13900000003"},
            "description": "水壶漏水"}


def open_case(client, token: str, **changes) -> dict:
    response = client.post("/api/v1/cases", json={**new_case_body(), **changes},
                           headers=auth(token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


ACTION_BODIES = {
    "confirm": {"note": "ok"},
    "reject": {"reason": "not ours"},
    "analyze": {"root_cause": "product_quality", "responsible_party": "supplier",
                "note": "seal broken"},
    "resolve": {"resolution": {"type": "apology"}},
    "inspect": {"passed": True},
    "request-info": {"question": "photo please"},
    "note": {"text": "called the customer"},
    "reply": {"message": "we are on it"},
    "tag": {"add": ["vip"]},
    "escalate": {"reason": "angry"},
    "approve": {"note": "fine"},
    "deny": {"reason": "not covered"},
    "revisit": {"outcome": "satisfied"},
    "reopen": {"reason": "again"},
    "cancel": {"reason": "withdrawn"},
}


def api_sessions(client):
    return client.application.extensions["aftersales"].sessions


def request_for(permission: str, role: str, client, tokens):
    """One request that needs exactly `permission`."""
    if permission == "cases.create":
        return client.post("/api/v1/cases", json=new_case_body(), headers=auth(tokens[role]))
    if permission == "cases.list":
        return client.get("/api/v1/cases", headers=auth(tokens[role]))
    if permission == "reports.read":
        return client.get("/api/v1/reports/summary", headers=auth(tokens[role]))
    if permission == "triage.suggest":
        return client.post("/api/v1/triage", headers=auth(tokens[role]), json={
            "description": "快递箱子被压扁了，鸡蛋碎了一半", "channel": "app"})
    if permission == "users.list":
        return client.get("/api/v1/users", headers=auth(tokens[role]))
    if permission == "me.duty":
        return client.post("/api/v1/me/duty", json={"on_duty": True},
                           headers=auth(tokens[role]))
    if permission == "users.create":
        return client.post("/api/v1/users", headers=auth(tokens[role]), json={
            "name": f"u-{uuid.uuid4().hex[:8]}", "role": "handler", "password": "password1"})
    if permission.startswith(("users.", "tokens.")) and permission != "users.create":
        # A user of its own to act on: the cell's request never disturbs the fixture's.
        name = f"u-{uuid.uuid4().hex[:8]}"
        with api_sessions(client).begin() as session:
            create_user(session, name, "handler", "password-1")
            token_id = find_token(session, create_token(session, name)).id
        if permission == "tokens.revoke":
            return client.post(f"/api/v1/tokens/{token_id}/revoke",
                               headers=auth(tokens[role]))
        if permission == "tokens.list":
            return client.get(f"/api/v1/users/{name}/tokens", headers=auth(tokens[role]))
        if permission == "users.set-password":
            return client.post(f"/api/v1/users/{name}/password", headers=auth(tokens[role]),
                               json={"password": "a-new-password"})
        verb = permission.split(".", 1)[1]
        return client.post(f"/api/v1/users/{name}/{verb}", headers=auth(tokens[role]))
    if permission == "audit.read":
        return client.get("/api/v1/audit", headers=auth(tokens[role]))
    case = open_case(client, tokens["admin"])
    if permission == "cases.read":
        return client.get(f"/api/v1/cases/{case['id']}", headers=auth(tokens[role]))
    if permission == "cases.assign":
        body = {"assignee": USERS[role]}
        return client.post(f"/api/v1/cases/{case['id']}/assign", json=body,
                           headers=auth(tokens[role]))
    if permission == "cases.attach":
        image = io.BytesIO()
        Image.new("RGB", (8, 8)).save(image, "PNG")
        return client.post(f"/api/v1/cases/{case['id']}/attachments",
                           data={"file": (io.BytesIO(image.getvalue()), "p.png")},
                           content_type="multipart/form-data", headers=auth(tokens[role]))
    if permission == "cases.assign.others":
        return client.post(f"/api/v1/cases/{case['id']}/assign", json={"assignee": "alice"},
                           headers=auth(tokens[role]))
    if permission == "cases.merge":  # into another open case of the same customer
        survivor = open_case(client, tokens["admin"])
        return client.post(f"/api/v1/cases/{case['id']}/merge", json={"into": survivor["id"]},
                           headers=auth(tokens[role]))
    action = permission.split(".", 1)[1]
    return client.post(f"/api/v1/cases/{case['id']}/{action}", json=ACTION_BODIES[action],
                       headers=auth(tokens[role]))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
def test_role_matrix_cell(api, permission, role):
    client, tokens, _, _ = api
    response = request_for(permission, role, client, tokens)
    if role in PERMISSIONS[permission]:
        assert response.status_code not in (401, 403), response.get_json()
    else:
        assert response.status_code == 403, response.get_json()
        assert response.content_type == "application/problem+json"


def test_role_matrix_is_documented():
    text = (Path(__file__).parent.parent / "docs" / "roles.md").read_text(encoding="utf-8")
    for permission, roles in PERMISSIONS.items():
        row = next((line for line in text.splitlines() if f"`{permission}`" in line), None)
        assert row is not None, f"{permission} missing from docs/roles.md"
        cells = [c.strip() for c in row.strip().strip("|").split("|")][1:1 + len(ROLES)]
        assert cells == ["yes" if r in roles else "no" for r in ROLES], row


@pytest.mark.parametrize("method,path", [
    ("post", "/api/v1/cases"), ("get", "/api/v1/cases"), ("get", "/api/v1/cases/AS-X"),
    ("post", "/api/v1/cases/AS-X/note"), ("get", "/api/v1/users"), ("post", "/api/v1/users"),
])
def test_401_without_or_with_a_bad_token(api, method, path):
    client, _, _, _ = api
    for headers in ({}, auth("as_not-a-token"), {"Authorization": "Basic abc"}):
        response = getattr(client, method)(path, json={}, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        body = response.get_json()
        assert set(body) >= {"type", "title", "status", "detail"} and body["status"] == 401


def test_status_table(api):
    client, tokens, _, _ = api
    h = auth(tokens["handler"])
    created = client.post("/api/v1/cases", json=new_case_body(), headers=h)
    assert created.status_code == 201
    assert created.headers["Location"] == f"/api/v1/cases/{created.get_json()['id']}"
    case_id = created.get_json()["id"]
    assert client.get(f"/api/v1/cases/{case_id}", headers=h).status_code == 200
    malformed = client.post("/api/v1/cases", data=b'{"kind": ', headers={
        **h, "Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.content_type == "application/problem+json"
    assert client.post("/api/v1/cases", json=[1, 2], headers=h).status_code == 400
    assert client.get("/api/v1/cases/AS-NOSUCH", headers=h).status_code == 404
    assert client.post("/api/v1/cases/AS-NOSUCH/note", json={"text": "x"},
                       headers=h).status_code == 404
    assert client.post(f"/api/v1/cases/{case_id}/fly", json={}, headers=h).status_code == 404
    wrong_stage = client.post(f"/api/v1/cases/{case_id}/analyze",
                              json=ACTION_BODIES["analyze"], headers=h)
    assert wrong_stage.status_code == 409
    assert "confirm" in wrong_stage.get_json()["detail"]
    invalid = client.post("/api/v1/cases", headers=h, json={
        **new_case_body(), "kind": "moan", "extra": 1,
        "items": [{"sku": "A", "quantity": "two"}]})
    assert invalid.status_code == 422
    errors = invalid.get_json()["errors"]
    assert {"kind", "extra", "items.0.quantity"} <= set(errors)
    money = client.post(f"/api/v1/cases/{case_id}/confirm", json={"note": "ok"}, headers=h)
    assert money.status_code == 200
    client.post(f"/api/v1/cases/{case_id}/analyze", json=ACTION_BODIES["analyze"], headers=h)
    for amount in (12.5, "12.345", "-1", "abc"):
        response = client.post(f"/api/v1/cases/{case_id}/resolve", headers=h, json={
            "resolution": {"type": "compensation", "coupon_code": "C1", "amount": amount}})
        assert response.status_code == 422, amount
        assert "resolution.amount" in response.get_json()["errors"]
    unknown_order = client.post("/api/v1/cases", json=new_case_body("SO-00000"), headers=h)
    assert unknown_order.status_code == 422
    assert "order_id" in unknown_order.get_json()["errors"]
    assert client.delete("/api/v1/cases", headers=h).status_code == 405


def test_503_when_temporal_is_unreachable(tmp_path, order_system_url):
    from aftersales.devstack import free_port

    settings = make_settings(f"127.0.0.1:{free_port()}", f"sqlite:///{tmp_path / 'db'}",
                             order_system_url)
    app = create_app(settings)
    token = staff_token(app)
    client = app.test_client()
    response = client.post("/api/v1/cases", json=new_case_body(), headers=auth(token))
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.content_type == "application/problem+json"
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["checks"]["temporal"] != "ok"
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()


def test_503_when_the_database_is_unreachable(temporal_address, order_system_url):
    from aftersales.devstack import free_port

    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_app(make_settings(temporal_address, url, order_system_url),
                     run_migrations=False)
    client = app.test_client()
    for response in (client.get("/api/v1/cases", headers=auth("as_x")),
                     client.get("/api/v1/status/abc")):
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert response.get_json()["status"] == 503
    assert client.get("/healthz").status_code == 503
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()


def test_idempotent_intake(api):
    client, tokens, _, _ = api
    h = {**auth(tokens["handler"]), "Idempotency-Key": f"shop-{uuid.uuid4()}"}
    body = new_case_body("SO-10011")
    first = client.post("/api/v1/cases", json=body, headers=h)
    again = client.post("/api/v1/cases", json=body, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    other = client.post("/api/v1/cases", json={**body, "description": "another"}, headers=h)
    assert other.status_code == 409
    listing = client.get("/api/v1/cases?q=SO-10011", headers=h).get_json()
    assert listing["total"] == 1
    # The key belongs to its user: another user with the same key makes their own case.
    theirs = client.post("/api/v1/cases", json=body, headers={
        **auth(tokens["supervisor"]), "Idempotency-Key": h["Idempotency-Key"]})
    assert theirs.status_code == 201 and theirs.get_json()["id"] != first.get_json()["id"]
    assert theirs.get_json()["repeat_of"] == first.get_json()["id"]


def test_idempotent_action_is_recorded_once(api):
    client, tokens, _, _ = api
    case = open_case(client, tokens["handler"])
    h = {**auth(tokens["handler"]), "Idempotency-Key": "note-1"}
    first = client.post(f"/api/v1/cases/{case['id']}/note", json={"text": "called"}, headers=h)
    again = client.post(f"/api/v1/cases/{case['id']}/note", json={"text": "called"}, headers=h)
    assert first.status_code == again.status_code == 200
    timeline = client.get(f"/api/v1/cases/{case['id']}", headers=h).get_json()["timeline"]
    assert [e["type"] for e in timeline].count("note") == 1


def history_length(temporal_address: str, case_id: str) -> int:
    """The case's history length once its notification deliveries have finished."""
    async def fetch() -> int:
        client = await Client.connect(temporal_address)
        return await settled_history_length(client.get_workflow_handle(f"case-{case_id}"))

    return asyncio.run(fetch())


def test_refused_requests_change_nothing(api):
    client, tokens, _, temporal_address = api
    h = auth(tokens["handler"])
    case = open_case(client, tokens["handler"])
    before = client.get(f"/api/v1/cases/{case['id']}", headers=h).get_json()
    events = history_length(temporal_address, case["id"])
    refused = [
        client.post(f"/api/v1/cases/{case['id']}/revisit", json={"outcome": "satisfied"},
                    headers=h),                                            # 409 wrong stage
        client.post(f"/api/v1/cases/{case['id']}/confirm", json={"note": ""}, headers=h),
        client.post(f"/api/v1/cases/{case['id']}/confirm", json={"note": "x", "bad": 1},
                    headers=h),                                            # 422 unknown field
        client.post(f"/api/v1/cases/{case['id']}/approve", json={}, headers=h),   # 403
        client.post(f"/api/v1/cases/{case['id']}/assign", json={"assignee": "ghost"},
                    headers=auth(tokens["supervisor"])),                    # 422 no such user
    ]
    assert [r.status_code for r in refused] == [409, 422, 422, 403, 422]
    after = client.get(f"/api/v1/cases/{case['id']}", headers=h).get_json()
    assert after == before
    assert history_length(temporal_address, case["id"]) == events


def test_customer_link_shows_only_what_the_customer_may_see(api):
    client, tokens, sessions, _ = api
    h = auth(tokens["handler"])
    case = open_case(client, tokens["handler"])
    token = case["customer_url"].rsplit("/", 1)[1]
    assert len(token) >= 22  # at least 128 bits of randomness
    client.post(f"/api/v1/cases/{case['id']}/note", json={"text": "客户很难缠 internal"},
                headers=h)
    client.post(f"/api/v1/cases/{case['id']}/confirm", json={"note": "核实 internal"},
                headers=h)
    response = client.get(f"/api/v1/status/{token}")
    assert response.status_code == 200
    view = response.get_json()
    text = json.dumps(view, ensure_ascii=False)
    for secret in ("hank", "internal", "13900000003", "张伟", "priority", "assignee"):
        assert secret not in text, secret
    assert view["stage"] == "analyze" and view["next_step"]
    other = "y" if token.endswith("x") else "x"  # one character off, never the same
    assert client.get(f"/api/v1/status/{token[:-1]}{other}").status_code == 404

    # The link stops working 30 days after the case closes.
    with sessions.begin() as session:
        session.execute(update(Case).where(Case.id == case["id"]).values(
            closed_at=datetime.now(UTC) - timedelta(days=31)))
    expired = client.get(f"/api/v1/status/{token}")
    assert expired.status_code == 404 and "expired" in expired.get_json()["detail"]


def test_listing_pages_with_cursor_and_refuses_bad_filters(api):
    client, tokens, _, _ = api
    h = auth(tokens["handler"])
    for _ in range(3):
        open_case(client, tokens["handler"], channel="store")
    seen, cursor = [], None
    while True:
        query = "channel=store&per_page=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"/api/v1/cases?{query}", headers=h).get_json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == page["total"] >= 3
    for bad in ("stage=nope", "overdue=maybe", "per_page=0", "page=1&cursor=abc",
                "cursor=!!!", "sort=random", "created_from=yesterday", "colour=red"):
        response = client.get(f"/api/v1/cases?{bad}", headers=h)
        assert response.status_code == 422, bad


def test_guessing_status_links_is_slowed_down(api):
    client, tokens, _, _ = api
    case = open_case(client, tokens["handler"])
    token = case["customer_url"].rsplit("/", 1)[1]
    guesser = {"REMOTE_ADDR": "203.0.113.9"}
    answers = [client.get(f"/api/v1/status/guess-{n}", environ_base=guesser).status_code
               for n in range(25)]
    assert answers[:20] == [404] * 20 and set(answers[20:]) == {429}
    limited = client.get(f"/api/v1/status/{token}", environ_base=guesser)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    # Another address with the right link is not affected.
    assert client.get(f"/api/v1/status/{token}",
                      environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 200


def test_staff_changes_are_audited_and_the_log_is_append_only(api):
    from sqlalchemy import delete, select
    from sqlalchemy import update as sql_update
    from sqlalchemy.exc import DatabaseError

    from db.models import AuditEntry

    client, tokens, sessions, _ = api
    case = open_case(client, tokens["handler"])
    client.post(f"/api/v1/cases/{case['id']}/note", json={"text": "called"},
                headers={**auth(tokens["handler"]), "Idempotency-Key": "audit-1"})
    client.post(f"/api/v1/cases/{case['id']}/approve", json={}, headers=auth(tokens["handler"]))
    with sessions() as session:
        entries = list(session.scalars(select(AuditEntry).where(
            AuditEntry.case_id == case["id"]).order_by(AuditEntry.id)))
    assert [(e.actor, e.action, e.status) for e in entries] == [
        ("hank", "note", 200), ("hank", "approve", 403)]
    assert entries[0].idempotency_key == "audit-1"
    for statement in (sql_update(AuditEntry).values(actor="someone else"),
                      delete(AuditEntry)):
        with pytest.raises(DatabaseError), sessions.begin() as session:
            session.execute(statement)


def test_security_headers_on_every_answer(api):
    client, _, _, _ = api
    for response in (client.get("/healthz"), client.get("/api/v1/cases"),
                     client.get("/api/v1/status/nope"), client.get("/api/v1/openapi.json")):
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"


# The caller of each role in the team dimension: all but the admin are in `returns`.
TEAM_USERS = {"handler": "rita", "supervisor": "rex", "admin": "admin"}


def case_standing_as(standing: str, role: str, client, tokens, sessions) -> dict:
    """A case that stands `standing` to the role's caller (web/auth.OWNERSHIP)."""
    returns = {**new_case_body(), "kind": "return",
               "items": [{"sku": sku_of("SO-10003", client), "quantity": 1}]}
    body = new_case_body() if "another team" in standing or "without" in standing \
        else returns
    response = client.post("/api/v1/cases", json=body, headers=auth(tokens["admin"]))
    assert response.status_code == 201, response.get_json()
    case = response.get_json()
    assert case["team"] == ("complaints" if body is not returns else "returns")
    assignee = {"assigned to the caller": USERS[role] if role == "admin" else TEAM_USERS[role],
                "assigned to a colleague, in a team of the caller": "ray",
                "assigned to someone, in another team": "cy"}.get(standing)
    if assignee:
        answer = client.post(f"/api/v1/cases/{case['id']}/assign",
                             json={"assignee": assignee}, headers=auth(tokens["admin"]))
        assert answer.status_code == 200, answer.get_json()
    if "without a team" in standing:  # as a case opened before routing
        with sessions.begin() as session:
            session.execute(update(Case).where(Case.id == case["id"]).values(team=None))
    return case


def sku_of(order_id: str, client) -> str:
    return client.application.extensions["aftersales"].orders.get(order_id).lines[0].sku


# A closed case of the caller's: the stage dimension of the matrix (docs/roles.md).
CLOSED = "closed, assigned to the caller"
STANDINGS = (*sorted(OWNERSHIP), CLOSED)


def cell_order() -> list:
    """Every staff action of the action table, in the order a cell tries them: those that
    keep the stage first, then those that move it, so each meets the case where the
    test put it; `assign` last, as taking the case changes where it stands."""
    return sorted(STAFF_ACTIONS, key=lambda a: (a.name == "assign", bool(a.moves)))


def closed_case_of(caller: str, client, tokens) -> dict:
    """A case assigned to `caller` and walked to closed (by an admin)."""
    admin = auth(tokens["admin"])
    case = open_case(client, tokens["admin"])
    steps = [("assign", {"assignee": caller}), ("confirm", {"note": "ok"}),
             ("analyze", ACTION_BODIES["analyze"]), ("resolve", ACTION_BODIES["resolve"])]
    for action, body in steps:
        answer = client.post(f"/api/v1/cases/{case['id']}/{action}", json=body, headers=admin)
        assert answer.status_code == 200, (action, answer.get_json())
    wait_for_stage(client, admin, case["id"], "feedback")
    token = case["customer_url"].rsplit("/", 1)[1]
    rated = client.post(f"/api/v1/status/{token}/feedback", json={"rating": 5})
    assert rated.status_code == 200, rated.get_json()
    closed = client.post(f"/api/v1/cases/{case['id']}/revisit", headers=admin,
                         json={"outcome": "satisfied"})
    assert closed.status_code == 200 and closed.get_json()["stage"] == "closed"
    return closed.get_json()


def wait_for_stage(client, headers: dict, case_id: str, stage: str) -> None:
    deadline = time.monotonic() + 30
    while client.get(f"/api/v1/cases/{case_id}", headers=headers).get_json()["stage"] != stage:
        assert time.monotonic() < deadline, f"{case_id} did not reach {stage}"
        time.sleep(0.1)


def expected_answer(action, role: str, caller: str, standing: str, row) -> tuple[int, str]:
    """What the API must answer, from the tables: the role's permission (PERMISSIONS),
    then whose case it is (OWNERSHIP, by how the test made the case stand), then the
    action table's rules on the case as it is now."""
    if role not in PERMISSIONS[action.permission]:
        return 403, "Forbidden"
    if role not in OWNERSHIP["assigned to the caller" if standing == CLOSED else standing]:
        return 403, "Not your case"
    refused = refusal(action, case_state(row), Actor(caller, role), datetime.now(UTC))
    if refused is None:
        return 200, ""
    return (403, "Forbidden") if refused.kind == "Forbidden" else (409, "Action not allowed")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("standing", STANDINGS)
def test_ownership_cell(api, standing, role):
    """One cell of the matrix: every staff action of the action table, sent through the
    REST API by the role's caller on a case that stands so to them; each answer is the
    tables' and a refusal leaves the case's history as it was."""
    client, tokens, sessions, temporal_address = api
    caller_token = "admin" if role == "admin" else TEAM_USERS[role]
    caller = USERS["admin"] if role == "admin" else TEAM_USERS[role]
    case = (closed_case_of(caller, client, tokens) if standing == CLOSED
            else case_standing_as(standing, role, client, tokens, sessions))
    assert set(ACTION_BODIES) | {"assign", "merge"} == {a.name for a in STAFF_ACTIONS}
    # What `merge` points at: another open case of the same customer.
    survivor = open_case(client, tokens["admin"])
    events = history_length(temporal_address, case["id"])
    answers = []

    def now_standing():
        if "without a team" in standing:  # each write projects the workflow's team again
            with sessions.begin() as session:
                session.execute(update(Case).where(Case.id == case["id"]).values(team=None))
        with sessions() as session:
            row = session.get(Case, case["id"])
            assert row is not None
            session.expunge(row)
        return row

    # A file first (an action of staff and customer alike, with its own endpoint): a
    # refusal stores no byte.
    store = client.application.extensions["aftersales"].blobs
    stored = {sha for sha, _ in store.list()}
    status, title = expected_answer(BY_NAME["attach"], role, caller, standing,
                                    now_standing())
    picture = io.BytesIO()
    Image.new("RGB", (8, 8), (len(stored) % 256, ROLES.index(role), 7)).save(picture, "PNG")
    sent = client.post(f"/api/v1/cases/{case['id']}/attachments",
                       data={"file": (io.BytesIO(picture.getvalue()), "cell.png")},
                       headers=auth(tokens[caller_token]), content_type="multipart/form-data")
    answers.append(("attach", sent.status_code))
    if status == 200:
        assert sent.status_code == 201, sent.get_json()
        assert {sha for sha, _ in store.list()} > stored
        events = history_length(temporal_address, case["id"])
    else:
        assert (sent.status_code, sent.get_json()["title"]) == (status, title)
        assert {sha for sha, _ in store.list()} == stored
        assert history_length(temporal_address, case["id"]) == events

    for action in cell_order():
        row = now_standing()
        status, title = expected_answer(action, role, caller, standing, row)
        body = ({"assignee": caller} if action.name == "assign"
                else {"into": survivor["id"]} if action.name == "merge"
                else ACTION_BODIES[action.name])
        response = client.post(f"/api/v1/cases/{case['id']}/{action.name}", json=body,
                               headers=auth(tokens[caller_token]))
        answers.append((action.name, response.status_code))
        assert response.status_code == status, (action.name, response.get_json())
        if status == 200:
            events = history_length(temporal_address, case["id"])
            continue
        assert response.content_type == "application/problem+json"
        problem = response.get_json()
        assert problem["title"] == title, (action.name, problem)
        if title == "Not your case" and standing.startswith("assigned"):
            assert "taking over is a supervisor's assign" in problem["detail"]
        assert history_length(temporal_address, case["id"]) == events, action.name
    # Every cell the table allows lets some action through; every other refuses them all.
    owned = role in OWNERSHIP.get(standing, STAFF)
    assert any(code == 200 for _, code in answers) == owned, answers


def test_ownership_is_documented():
    text = (Path(__file__).parent.parent / "docs" / "roles.md").read_text(encoding="utf-8")
    for standing, roles in OWNERSHIP.items():
        row = next((line for line in text.splitlines() if f"| {standing} |" in line), None)
        assert row is not None, f"{standing} missing from docs/roles.md"
        cells = [c.strip() for c in row.strip().strip("|").split("|")][1:1 + len(ROLES)]
        assert cells == ["yes" if r in roles else "no" for r in ROLES], row
