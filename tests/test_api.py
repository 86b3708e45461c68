"""The REST API through Flask's test client, against a real Temporal dev server, a
real worker, the order-system simulator over HTTP and the read model."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from db.accounts import create_token, create_user
from db.engine import make_engine, make_sessionmaker
from tests.conftest import BackgroundWorker, make_settings, record_history_sync
from web import create_app


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stack(request, temporal_address, order_system_url):
    database_url = request.getfixturevalue(f"{request.param}_url")
    settings = make_settings(temporal_address, database_url, order_system_url)
    worker = BackgroundWorker(settings)
    worker.start()
    app = create_app(settings)
    sessions = make_sessionmaker(make_engine(database_url))
    tokens = {}
    with sessions.begin() as session:
        for name, role in (("alice", "handler"), ("bob", "handler"), ("sam", "supervisor")):
            create_user(session, name, role, f"{name}-pw")
            tokens[name] = create_token(session, name)
    client = app.test_client()
    yield client, tokens
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()
    worker.stop()


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


COMPLAINT = {
    "kind": "complaint",
    "channel": "phone",
    "order_id": "SO-10002",
    "customer": {"id": "C-1002", "name": "李娜", "phone": "13800000002", "tier": "regular"},
    "items": [{"sku": "SKU-TEA-001", "quantity": 1, "reason": "盒子压坏"}],
    "description": "茶叶盒子到货时已经压坏了",
}


def wait_for_stage(client, token, case_id, stage, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        case = client.get(f"/api/v1/cases/{case_id}", headers=auth(token)).get_json()
        if case["stage"] == stage:
            return case
        time.sleep(0.1)
    raise AssertionError(f"case {case_id} stayed in {case['stage']}, wanted {stage}")


def test_complaint_walks_all_six_stages_to_closed(stack, temporal_address, request):
    client, tokens = stack
    alice = auth(tokens["alice"])
    response = client.post("/api/v1/cases", json=COMPLAINT, headers=alice)
    assert response.status_code == 201, response.get_json()
    case = response.get_json()
    case_id = case["id"]
    assert case["stage"] == "confirm"
    assert case["order"]["id"] == "SO-10002"
    assert case["deadlines"]["stage_due_at"] is not None
    assert case["deadlines"]["resolution_due_at"] is not None
    assert case["customer_url"].startswith("http://testserver/s/")
    token = case["customer_url"].rsplit("/", 1)[1]

    steps = [
        ("confirm", {"note": "已电话确认"}, "analyze"),
        ("analyze", {"root_cause": "damaged_in_transit", "responsible_party": "courier",
                     "note": "快递外包装破损"}, "resolve"),
    ]
    for action, body, stage in steps:
        response = client.post(f"/api/v1/cases/{case_id}/{action}", json=body, headers=alice)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["stage"] == stage

    response = client.post(f"/api/v1/cases/{case_id}/resolve", headers=alice, json={
        "resolution": {"type": "compensation", "coupon_code": "SORRY20", "amount": "20.00"},
        "note": "补偿 20 元优惠券"})
    assert response.status_code == 200, response.get_json()
    case = wait_for_stage(client, tokens["alice"], case_id, "feedback")
    assert case["resolution"]["state"] == "done"

    view = client.get(f"/api/v1/status/{token}").get_json()
    assert view["can_rate"] is True
    assert "assignee" not in view and "customer" not in view
    # What the case is about, as the customer knows it: the order, its shop, the item.
    assert view["order"] == {"id": "SO-10002", "store": "上海南京东路店", "products": [
        {"name": "West Lake Longjing tea 250g", "quantity": 1}]}
    # The coupon's expiry, from the order system's receipt; no refund on this case.
    expires = datetime.fromisoformat(view["resolution"]["coupon_expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    assert view["resolution"]["refund_arrives_in_working_days"] is None
    response = client.post(f"/api/v1/status/{token}/feedback",
                           json={"rating": 5, "comment": "处理很快"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["stage"] == "revisit"

    response = client.post(f"/api/v1/cases/{case_id}/revisit", headers=alice,
                           json={"outcome": "satisfied", "note": "客户满意"})
    assert response.status_code == 200, response.get_json()
    case = response.get_json()
    assert case["stage"] == "closed"
    assert case["status"] == "closed"
    types = [e["type"] for e in case["timeline"]]
    assert types[:2] == ["created", "recorded"]
    for expected in ("confirmed", "analyzed", "resolution_planned", "resolution_step",
                     "resolved", "feedback", "revisited", "closed"):
        assert expected in types
    seqs = [e["seq"] for e in case["timeline"]]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    if "sqlite" in request.node.name:
        record_history_sync(temporal_address, case_id, "complaint")


def test_wrong_stage_action_is_409_and_changes_nothing(stack):
    client, tokens = stack
    alice = auth(tokens["alice"])
    case = client.post("/api/v1/cases", json=COMPLAINT, headers=alice).get_json()
    before = client.get(f"/api/v1/cases/{case['id']}", headers=alice).get_json()
    response = client.post(f"/api/v1/cases/{case['id']}/revisit", headers=alice,
                           json={"outcome": "satisfied"})
    assert response.status_code == 409
    assert response.content_type == "application/problem+json"
    assert "revisit" in response.get_json()["detail"]
    # The refusal's stable code beside the English detail; no input to point at.
    assert response.get_json()["code"] == "wrong_stage"
    assert "field" not in response.get_json()
    after = client.get(f"/api/v1/cases/{case['id']}", headers=alice).get_json()
    assert after == before


def test_bad_bodies_get_problem_json_never_500(stack):
    client, tokens = stack
    alice = auth(tokens["alice"])
    assert client.post("/api/v1/cases", data="{not json", headers={
        **alice, "Content-Type": "application/json"}).status_code == 400
    bad = {**COMPLAINT, "kind": "grumble", "items": [{"sku": "X", "quantity": 0}]}
    response = client.post("/api/v1/cases", json=bad, headers=alice)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert "kind" in errors and "items.0.quantity" in errors
    response = client.post("/api/v1/cases", json={**COMPLAINT, "order_id": "SO-99999"},
                           headers=alice)
    assert response.status_code == 422
    assert "SO-99999" in response.get_json()["detail"]
    assert client.get("/api/v1/cases").status_code == 401
    assert client.get("/api/v1/cases", headers=auth("nope")).status_code == 401
    assert client.get("/api/v1/cases/AS-NOPE", headers=alice).status_code == 404
    assert client.get("/api/v1/status/not-a-token").status_code == 404


def test_request_info_pauses_until_customer_replies(stack):
    client, tokens = stack
    alice = auth(tokens["alice"])
    case = client.post("/api/v1/cases", json=COMPLAINT, headers=alice).get_json()
    token = case["customer_url"].rsplit("/", 1)[1]
    response = client.post(f"/api/v1/cases/{case['id']}/request-info", headers=alice,
                           json={"question": "请提供破损照片"})
    assert response.status_code == 200
    paused = response.get_json()
    assert paused["status"] == "waiting_on_customer"
    assert paused["deadlines"]["stage_due_at"] is None
    view = client.get(f"/api/v1/status/{token}").get_json()
    assert view["question"] == "请提供破损照片"
    response = client.post(f"/api/v1/status/{token}/reply", json={"message": "照片已上传"})
    assert response.status_code == 200
    resumed = client.get(f"/api/v1/cases/{case['id']}", headers=alice).get_json()
    assert resumed["status"] == "open"
    assert resumed["deadlines"]["stage_due_at"] > case["deadlines"]["stage_due_at"]


def test_second_open_case_on_same_order_is_a_repeat(stack):
    client, tokens = stack
    alice = auth(tokens["alice"])
    first = client.post("/api/v1/cases", json=COMPLAINT, headers=alice).get_json()
    second = client.post("/api/v1/cases", json=COMPLAINT, headers=alice).get_json()
    assert second["repeat_of"] == first["id"]
    assert any(first["id"] in r for r in second["priority_reasons"])
    listing = client.get("/api/v1/cases?stage=confirm&per_page=200", headers=alice).get_json()
    ids = [c["id"] for c in listing["items"]]
    assert first["id"] in ids and second["id"] in ids
    assert client.get("/api/v1/cases?stage=nope", headers=alice).status_code == 422


def test_tags_are_added_shown_filtered_and_removed(stack):
    client, tokens = stack
    alice = auth(tokens["alice"])
    case = client.post("/api/v1/cases", json=COMPLAINT, headers=alice).get_json()
    url = f"/api/v1/cases/{case['id']}/tag"
    assert case["tags"] == []
    tagged = client.post(url, json={"add": ["破损", "vip", "vip"]}, headers=alice)
    assert tagged.status_code == 200, tagged.get_json()
    assert tagged.get_json()["tags"] == ["破损", "vip"]
    assert [e["detail"] for e in tagged.get_json()["timeline"] if e["type"] == "tagged"] == [
        {"added": ["破损", "vip"], "removed": []}]
    listed = client.get("/api/v1/cases?tag=vip", headers=alice).get_json()
    assert [c["id"] for c in listed["items"]] == [case["id"]]
    assert client.get("/api/v1/cases?tag=nope", headers=alice).get_json()["total"] == 0
    after = client.post(url, json={"remove": ["vip"]}, headers=alice).get_json()
    assert after["tags"] == ["破损"]
    assert client.get("/api/v1/cases?tag=vip", headers=alice).get_json()["total"] == 0
    assert client.get("/api/v1/cases?tag=破损", headers=alice).get_json()["total"] == 1


BAD_TAG_BODIES = [
    {},                                   # nothing to do
    {"add": []},
    {"add": [""]},
    {"add": [" vip"]},                    # leading space
    {"add": ["a,b"]},                     # a comma would split it on the desk
    {"add": ["x" * 41]},                  # too long
    {"add": [f"t{n}" for n in range(21)]},
    {"add": "vip"},                       # not a list
    {"add": [7]},
    {"remove": [None]},
]


def test_a_bad_tag_request_is_refused_and_changes_nothing(stack):
    # One case and one stack for every kind of bad body: each is refused alone.
    client, tokens = stack
    alice = auth(tokens["alice"])
    case = client.post("/api/v1/cases", json=COMPLAINT, headers=alice).get_json()
    for body in BAD_TAG_BODIES:
        response = client.post(f"/api/v1/cases/{case['id']}/tag", json=body, headers=alice)
        assert response.status_code == 422, (body, response.get_json())
        assert response.content_type == "application/problem+json"
        again = client.get(f"/api/v1/cases/{case['id']}", headers=alice).get_json()
        assert again["version"] == case["version"] and again["tags"] == [], body


def test_more_than_twenty_tags_in_all_are_refused_by_the_workflow(stack):
    client, tokens = stack
    alice = auth(tokens["alice"])
    case = client.post("/api/v1/cases", json=COMPLAINT, headers=alice).get_json()
    url = f"/api/v1/cases/{case['id']}/tag"
    first = client.post(url, json={"add": [f"a{n}" for n in range(15)]}, headers=alice)
    assert first.status_code == 200
    refused = client.post(url, json={"add": [f"b{n}" for n in range(6)]}, headers=alice)
    assert refused.status_code == 422, refused.get_json()
    assert "at most 20 tags" in refused.get_json()["detail"]
    assert (refused.get_json()["code"], refused.get_json()["field"]) == ("too_many_tags", "add")
    again = client.get(f"/api/v1/cases/{case['id']}", headers=alice).get_json()
    assert len(again["tags"]) == 15 and again["version"] == first.get_json()["version"]


def test_an_action_reads_the_case_once_and_an_unknown_case_is_404(stack, monkeypatch):
    from db import cases as case_store

    client, tokens = stack
    alice = auth(tokens["alice"])
    case = client.post("/api/v1/cases", json=COMPLAINT, headers=alice).get_json()
    reads = []
    real = case_store.get_case

    def counted(session, case_id):
        reads.append(case_id)
        return real(session, case_id)

    monkeypatch.setattr(case_store, "get_case", counted)
    response = client.post(f"/api/v1/cases/{case['id']}/note", json={"text": "called"},
                           headers=alice)
    assert response.status_code == 200 and response.get_json()["version"] > case["version"]
    assert reads == [case["id"]]
    missing = client.post("/api/v1/cases/AS-NOSUCHCASE/note", json={"text": "x"},
                          headers=alice)
    assert missing.status_code == 404, missing.get_json()


def test_a_handler_cannot_hand_their_case_to_a_colleague_and_a_no_op_tag_writes_nothing(
        stack):
    client, tokens = stack
    alice = auth(tokens["alice"])
    case = client.post("/api/v1/cases", json=COMPLAINT, headers=alice).get_json()
    url = f"/api/v1/cases/{case['id']}"
    assert client.post(f"{url}/assign", json={"assignee": "alice"},
                       headers=alice).status_code == 200
    handed = client.post(f"{url}/assign", json={"assignee": "bob"}, headers=alice)
    assert handed.status_code == 403, handed.get_json()
    assert "cases.assign.others" in handed.get_json()["detail"]
    assert (handed.get_json()["code"], handed.get_json()["field"]) == ("wrong_role", "assignee")
    tagged = client.post(f"{url}/tag", json={"add": ["vip"]}, headers=alice).get_json()
    again = client.post(f"{url}/tag", json={"add": ["vip"], "remove": ["nope"]},
                        headers=alice)
    assert again.status_code == 200
    assert again.get_json()["version"] == tagged["version"]
    assert [e["type"] for e in again.get_json()["timeline"]].count("tagged") == 1
