"""Personal data in Temporal: sealed by the payload codec, and keys that rotate."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from aftersales.codec import EncryptionCodec, KeyError_, new_key_setting, parse_keys
from tests.conftest import BackgroundWorker, make_settings, staff_token
from web import create_app

NAME, PHONE = "隐私测试客户", "13912345678"


def test_round_trip_and_rotation():
    old = parse_keys(new_key_setting("2026-10"))
    new = parse_keys(new_key_setting("2026-11"))
    payload = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(NAME).encode())

    async def run():
        sealed = await EncryptionCodec(old).encode([payload])
        assert NAME.encode() not in sealed[0].data
        assert sealed[0].metadata["encryption-key-id"] == b"2026-10"
        # After rotation the new key seals, the old one still opens old payloads.
        rotated = EncryptionCodec(new + old)
        assert (await rotated.decode(sealed))[0] == payload
        assert (await rotated.encode([payload]))[0].metadata["encryption-key-id"] == b"2026-11"
        with pytest.raises(KeyError_):
            await EncryptionCodec(new).decode(sealed)

    asyncio.run(run())


@pytest.mark.parametrize("setting", ["nokey", "k:notbase64!", "k:" + base64.b64encode(
    b"short").decode()])
def test_bad_key_settings_are_refused(setting):
    with pytest.raises(KeyError_):
        parse_keys(setting)


def test_keys_new_prints_a_usable_entry():
    out = subprocess.run([sys.executable, "-m", "aftersales.cli", "keys", "new", "2026-12"],
                         capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 0
    assert parse_keys(out.stdout.strip())[0][0] == "2026-12"


def test_case_payloads_are_sealed_in_temporal_and_survive_rotation(
        temporal_address, sqlite_url, order_system_url):
    first_key = new_key_setting("k1")
    settings = make_settings(temporal_address, sqlite_url, order_system_url,
                             payload_keys=first_key)
    worker = BackgroundWorker(settings)
    worker.start()
    app = create_app(settings)
    token = staff_token(app)
    headers = {"Authorization": f"Bearer {token}"}
    case = app.test_client().post("/api/v1/cases", headers=headers, json={
        "kind": "complaint", "channel": "phone", "order_id": "SO-10004",
        "customer": {"id": "C-1004", "name": NAME, "phone": PHONE},
        "description": "包装破损"}).get_json()
    assert case["customer"]["name"] == NAME  # the read model has it in the clear
    app.extensions["aftersales"].gateway.close()
    worker.stop()

    async def raw_history() -> str:
        plain = await Client.connect(temporal_address)  # no codec: what Temporal stores
        history = await plain.get_workflow_handle(f"case-{case['id']}").fetch_history()
        return history.to_json()

    stored = asyncio.run(raw_history())
    assert NAME not in stored and PHONE not in stored
    assert base64.b64encode(NAME.encode()).decode() not in stored

    # Rotate: a new key first, the old one kept for what is already sealed.
    rotated = replace(settings, payload_keys=new_key_setting("k2") + "," + first_key)
    worker = BackgroundWorker(rotated)
    worker.start()
    app2 = create_app(rotated)
    response = app2.test_client().post(f"/api/v1/cases/{case['id']}/confirm",
                                       headers=headers, json={"note": "核实"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["stage"] == "analyze"
    stored = asyncio.run(raw_history())
    # Key ids sit base64-encoded in the payload metadata: both keys have sealed payloads.
    assert base64.b64encode(b"k2").decode() in stored
    assert base64.b64encode(b"k1").decode() in stored
    app2.extensions["aftersales"].gateway.close()
    app2.extensions["aftersales"].engine.dispose()
    app.extensions["aftersales"].engine.dispose()
    worker.stop()


def test_no_personal_data_in_logs_search_attributes_or_workflow_ids(
        temporal_address, sqlite_url, order_system_url, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    settings = make_settings(temporal_address, sqlite_url, order_system_url,
                             payload_keys=new_key_setting("k1"))
    worker = BackgroundWorker(settings)
    worker.start()
    app = create_app(settings)
    try:
        token = staff_token(app)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        case = client.post("/api/v1/cases", headers=headers, json={
            "kind": "complaint", "channel": "phone", "order_id": "SO-10007",
            "customer": {"id": "C-1007", "name": NAME, "phone": PHONE,
                         "email": "privacy@example.com"},
            "description": f"{NAME} 的快递丢了，电话 {PHONE}"}).get_json()
        for action, body in (("confirm", {"note": f"called {PHONE}"}),
                             ("analyze", {"root_cause": "lost_parcel",
                                          "responsible_party": "courier", "note": "lost"}),
                             ("resolve", {"resolution": {"type": "compensation",
                                                         "points": 200}})):
            assert client.post(f"/api/v1/cases/{case['id']}/{action}", headers=headers,
                               json=body).status_code == 200

        async def described() -> tuple[str, str]:
            plain = await Client.connect(temporal_address)
            handle = plain.get_workflow_handle(f"case-{case['id']}")
            description = await handle.describe()
            return handle.id, repr(description.typed_search_attributes)

        workflow_id, attributes = asyncio.run(described())
        for secret in (NAME, PHONE, "privacy@example.com"):
            assert secret not in caplog.text, f"{secret} appeared in the logs"
            assert secret not in attributes and secret not in workflow_id
        assert "CaseStage" in attributes  # the attributes are there, just without PII
    finally:
        app.extensions["aftersales"].gateway.close()
        app.extensions["aftersales"].engine.dispose()
        worker.stop()
