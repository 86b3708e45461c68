"""POST /webhooks/courier: tracking events from the courier system, HMAC-signed.

A verified event becomes a signal to the case's workflow, which records each event
once and ignores one that arrives after a later status (duplicates and reordering are
normal for webhooks). Events for unknown or ended cases are acknowledged and dropped,
so the courier's retry queue never jams on them.
"""

from __future__ import annotations

import re
import time

from flask import Blueprint, current_app, request
from marshmallow import Schema, fields, validate

from activities.signing import signature_matches, webhook_signature
from db import cases as case_store
from web.characters import refuse_unstorable_json
from web.gateway import ActionRefused, CaseNotRunning
from web.intake import case_input
from web.problems import Problem
from workflows.case.contracts import CourierEvent, Customer, LogisticsException
from workflows.case.vocabulary import PARCEL_EXCEPTIONS, PARCEL_STATUSES

webhooks = Blueprint("webhooks", __name__)
SIGNATURE_HEADER = "X-Courier-Signature"
TIMESTAMP_HEADER = "X-Courier-Timestamp"
# How far a webhook's signed timestamp may be from our clock.
REPLAY_WINDOW_S = 300
# The only form a right signature has (activities/signing.py).
SIGNATURE_FORMAT = re.compile(r"sha256=[0-9a-f]{64}")
EXCEPTIONS = PARCEL_EXCEPTIONS


class CourierEventSchema(Schema):
    event_id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    waybill_no = fields.String(required=True, validate=validate.Length(min=1, max=64))
    reference = fields.String(required=True, validate=validate.Length(min=1, max=64))
    type = fields.String(required=True, validate=validate.Length(max=32))
    status = fields.String(required=True, validate=validate.OneOf(PARCEL_STATUSES))
    at = fields.AwareDateTime(required=True)
    detail = fields.String(load_default="", allow_none=True,
                           validate=validate.Length(max=1000))


# The courier signs its webhooks the way we sign ours (activities/signing.py).
signature = webhook_signature


@webhooks.post("/webhooks/courier")
def courier():
    state = current_app.extensions["aftersales"]
    secret = state.settings.courier_webhook_secret
    given = request.headers.get(SIGNATURE_HEADER, "")
    stamp = request.headers.get(TIMESTAMP_HEADER, "")
    # What the headers alone can tell is checked before the body is read: a request
    # that cannot be the courier's costs us no more than its headers.
    if not secret or not SIGNATURE_FORMAT.fullmatch(given) or not stamp:
        raise Problem(401, "Unauthorized",
                      f"missing or wrong {SIGNATURE_HEADER} / {TIMESTAMP_HEADER}")
    if not (stamp.isascii() and stamp.isdigit()) or \
            abs(time.time() - int(stamp)) > REPLAY_WINDOW_S:
        raise Problem(401, "Unauthorized", f"{TIMESTAMP_HEADER} is outside the "
                      f"{REPLAY_WINDOW_S} s window: a replayed or delayed webhook")
    body = request.get_data()  # at most AFTERSALES_MAX_BODY (web/body_limit.py)
    if not signature_matches(given, body, secret, stamp):
        raise Problem(401, "Unauthorized",
                      f"missing or wrong {SIGNATURE_HEADER} / {TIMESTAMP_HEADER}")
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise Problem(400, "Malformed JSON", "the body must be a JSON object")
    refuse_unstorable_json(payload)
    data = CourierEventSchema().load(payload)
    with state.sessions() as session:
        known = case_store.get_case(session, data["reference"]) is not None
    if not known:
        if data["status"] in EXCEPTIONS:
            return _order_parcel_exception(state, data)
        return {"accepted": False, "reason": "unknown reference"}, 202
    event = CourierEvent(event_id=data["event_id"], waybill_no=data["waybill_no"],
                         status=data["status"], at=data["at"],
                         detail=data["detail"] or "")
    try:
        state.gateway.signal(data["reference"], "courier_event", event)
    except CaseNotRunning:
        return {"accepted": False, "reason": "the case has ended"}, 202
    return {"accepted": True}, 202


def _order_parcel_exception(state, data: dict):
    """An exception on an order's own delivery: update the order's open cases, or open
    one (a complaint the customer did not have to make)."""
    order_id = data["reference"]
    event = LogisticsException(event_id=data["event_id"], waybill_no=data["waybill_no"],
                               status=data["status"], at=data["at"],
                               detail=data["detail"] or "")
    with state.sessions() as session:
        open_ids = case_store.open_cases_on_order(session, order_id)
    opened = None
    if not open_ids:
        inp = case_input(
            kind="complaint", channel="system", order_id=order_id,
            customer=Customer(id="", name=""), items=[], opened_by="courier",
            description=f"The courier reported parcel {data['waybill_no']} "
                        f"{data['status']}. {data['detail'] or ''}".strip())
        try:
            state.gateway.open_case(inp)
        except ActionRefused:
            return {"accepted": False, "reason": "unknown order"}, 202
        open_ids, opened = [inp.case_id], inp.case_id
    for case_id in open_ids:
        try:
            state.gateway.signal(case_id, "logistics_exception", event)
        except CaseNotRunning:
            continue
    return {"accepted": True, "cases": open_ids, "opened": opened}, 202
