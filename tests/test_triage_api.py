"""POST /api/v1/triage: suggestions for a description, and every bad input refused with
a clear 422 (or answered with low confidence), never a 500."""

from __future__ import annotations

import pytest

from tests.conftest import make_settings, staff_token
from web import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # No Temporal needed: triage reads no case and starts no workflow.
    url = f"sqlite:///{tmp_path_factory.mktemp('triage-api') / 'db.sqlite'}"
    app = create_app(make_settings("127.0.0.1:9", url, "http://127.0.0.1:9"))
    token = staff_token(app)
    yield app.test_client(), {"Authorization": f"Bearer {token}"}
    app.extensions["aftersales"].gateway.close()
    app.extensions["aftersales"].engine.dispose()


def suggest(client, body):
    test_client, headers = client
    return test_client.post("/api/v1/triage", json=body, headers=headers)


def test_a_chinese_description_gets_suggestions_with_confidence_and_reasons(client):
    description = "收到的羽绒服和图片色差太大，而且面料不是描述的那种，想退货"
    response = suggest(client, {"description": description, "channel": "app",
                                "order_id": "SO-10001"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["root_cause"]["value"] == "description_mismatch"
    assert body["kind"]["value"] == "return"
    for name in ("kind", "root_cause", "priority", "sentiment", "escalation_risk"):
        assert 0 <= body[name]["confidence"] <= 1
        assert isinstance(body[name]["reasons"], list)
    assert body["root_cause"]["reasons"] and body["reasons"]
    assert body["escalation_risk"]["value"] is False
    assert body["low_confidence"] is False
    assert body["model_version"]


def test_an_escalation_threat_is_flagged_with_the_rule(client):
    body = suggest(client, {"description": "Your courier lost my laptop and nobody answers. "
                                           "I've contacted my lawyer and I'm filing a "
                                           "chargeback.", "channel": "email"}).get_json()
    assert body["escalation_risk"]["value"] is True
    assert {"rule: lawyer", "rule: chargeback"} <= set(body["escalation_risk"]["reasons"])
    assert body["root_cause"]["value"] == "lost_parcel"
    assert body["priority"]["value"] in ("P1", "P2")
    assert body["sentiment"]["value"] == "negative"


@pytest.mark.parametrize("body,field", [
    ({"channel": "web"}, "description"),
    ({"description": "", "channel": "web"}, "description"),
    ({"description": "   \n\t ", "channel": "web"}, "description"),
    ({"description": "x" * 5001, "channel": "web"}, "description"),
    ({"description": 12315, "channel": "web"}, "description"),
    ({"description": ["坏了"], "channel": "web"}, "description"),
    ({"description": None, "channel": "web"}, "description"),
    ({"description": "12345 ??? !!!", "channel": "web"}, "description"),
    ({"description": "坏了"}, "channel"),
    ({"description": "坏了", "channel": "pigeon"}, "channel"),
    ({"description": "坏了", "channel": "web", "order_id": ""}, "order_id"),
    ({"description": "坏了", "channel": "web", "mood": "angry"}, "mood"),
])
def test_bad_input_is_a_422_naming_the_field(client, body, field):
    response = suggest(client, body)
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert field in response.get_json()["errors"]


def test_malformed_json_is_a_400(client):
    test_client, headers = client
    response = test_client.post("/api/v1/triage", data=b'{"description": ',
                                headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 400


@pytest.mark.parametrize("description", [
    "Это ужасный товар, верните деньги немедленно",
    "هذا المنتج سيء جدا أريد استرداد المال",
    "🙂🙂 ок да нет 🙂",
])
def test_another_script_gets_a_low_confidence_answer(client, description):
    response = suggest(client, {"description": description, "channel": "chat"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["low_confidence"] is True and body["notes"]
    assert body["root_cause"]["confidence"] < 0.3


def test_the_longest_allowed_description_is_answered_quickly(client):
    text = ("快递箱子被压扁了，鸡蛋碎了。The box arrived crushed. " * 120)[:5000]
    response = suggest(client, {"description": text, "channel": "web"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["root_cause"]["value"] == "damaged_in_transit"
    assert body["elapsed_ms"] < 1000


def test_without_a_token_it_is_401(client):
    test_client, _ = client
    response = test_client.post("/api/v1/triage", json={"description": "坏了", "channel": "web"})
    assert response.status_code == 401
