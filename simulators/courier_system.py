"""A runnable stand-in for the courier: waybills, parcels that move, signed webhooks.

A waybill is created for a return pickup, an outbound replacement or a repair leg, and
its parcel moves created → picked_up → in_transit → delivered, one status every `step`
seconds (`AFTERSALES_SIM_COURIER_STEP`), or on demand through `/_control/*` for tests.
Every status change is an event POSTed to `AFTERSALES_COURIER_WEBHOOK_URL`, signed with
HMAC-SHA256 of the raw body (`X-Courier-Signature: sha256=<hex>`), from an outbox that
retries every second until the receiver answers 2xx, so events arrive at least once and
in order per waybill. State, including undelivered events, lives in a JSON file so it
survives a restart. `AFTERSALES_SIM_FAIL_RATE` makes that share of calls fail with a
503 or a hang past the client's timeout.

Never imported by production code; `aftersales dev` runs it as a child process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from simulators import order_system
from simulators.http import (
    Refused,
    command_line,
    iso,
    load_state,
    problem,
    save_state,
    simulator_app,
)

WAYBILL_TYPES = ("return_pickup", "outbound", "repair_pickup", "repair_return")
MOVEMENT = ("created", "picked_up", "in_transit", "delivered")
EXCEPTIONS = ("delayed", "lost", "damaged")
ACTIVE = ("created", "picked_up", "in_transit", "delayed")
SIGNATURE_HEADER = "X-Courier-Signature"
TIMESTAMP_HEADER = "X-Courier-Timestamp"
RETRY_SECONDS = 1.0
WEBHOOK_TIMEOUT_SECONDS = 5.0
STEP_DETAILS = {
    "picked_up": "parcel collected from the sender",
    "in_transit": "parcel left the origin hub",
    "delivered": "parcel delivered to the recipient",
}

log = logging.getLogger(__name__)


def sign(body: bytes, secret: str, timestamp: str | None = None) -> str:
    """The `X-Courier-Signature` value: `sha256=<hex HMAC-SHA256>` of `<timestamp>.<body>`
    (or of the body alone when no timestamp is given)."""
    signed = f"{timestamp}.".encode() + body if timestamp is not None else body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class CourierRefused(Refused):
    """A refusal of this system, answered with a problem whose `type` is `kind`."""


class CourierSystem:
    """The simulated courier's waybills and webhook outbox, guarded by one lock.

    `start()` runs the background threads (the parcel mover when `step` > 0, the
    webhook sender when `webhook_url` is set); `stop()` ends and joins them.
    """

    def __init__(self, state_file: Path | None, webhook_url: str | None = None,
                 webhook_secret: str = "", step: float = 3.0,
                 seed_orders: bool = False) -> None:
        self._lock = threading.Lock()
        self._state_file = state_file
        self.webhook_url = webhook_url
        self._secret = webhook_secret
        self.step = step
        self._rng = random.Random()
        state = self._load() or {"waybills": _delivery_parcels() if seed_orders else {},
                                 "outbox": []}
        self.waybills: dict[str, dict] = state["waybills"]
        # Events not yet accepted by the webhook receiver, oldest first.
        self.outbox: list[dict] = state["outbox"] if webhook_url else []
        self._keys = {w["idempotency_key"]: no for no, w in self.waybills.items()}
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._save()

    def start(self) -> None:
        """Start the parcel mover and the webhook sender threads."""
        if self._threads:
            raise RuntimeError("courier system already started")
        self._stopping.clear()
        if self.step > 0:
            self._threads.append(threading.Thread(target=self._move_parcels,
                                                  name="courier-mover", daemon=True))
        if self.webhook_url:
            self._threads.append(threading.Thread(target=self._send_webhooks,
                                                  name="courier-webhooks", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background threads and wait for them; undelivered events stay queued."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def create(self, key: str, body: dict) -> tuple[dict, bool]:
        """Create a waybill once per idempotency key; returns (waybill, created)."""
        with self._lock:
            existing_no = self._keys.get(key)
            if existing_no is not None:
                existing = self.waybills[existing_no]
                if existing["request"] != body:
                    raise CourierRefused(409, "idempotency_conflict",
                                         "Idempotency-Key reused with a different body")
                return _public(existing), False
            now = _now()
            record = {"waybill_no": self._new_number(), **body, "status": "created",
                      "idempotency_key": key, "created_at": now, "updated_at": now,
                      "events": [], "request": body}
            self.waybills[record["waybill_no"]] = record
            self._keys[key] = record["waybill_no"]
            self._save()
            return _public(record), True

    def get(self, waybill_no: str) -> dict:
        """One waybill with its events."""
        with self._lock:
            return _public(self._waybill(waybill_no))

    def waybill_list(self, reference: str | None = None) -> list[dict]:
        """Every waybill, oldest first, optionally only those of one case."""
        with self._lock:
            return [_public(w) for w in self.waybills.values()
                    if reference is None or w["reference"] == reference]

    def cancel(self, waybill_no: str) -> dict:
        """Cancel a waybill whose parcel has not been picked up; cancelling twice is a no-op."""
        with self._lock:
            record = self._waybill(waybill_no)
            if record["status"] == "cancelled":
                return _public(record)
            if _progress(record) != "created":
                raise CourierRefused(409, "already_picked_up",
                                     f"waybill {waybill_no} was already picked up")
            if record["status"] not in ACTIVE:
                raise CourierRefused(409, "not_active",
                                     f"waybill {waybill_no} is {record['status']}")
            self._emit(record, "cancelled", "waybill cancelled by the sender")
            self._save()
            return _public(record)

    def advance(self, waybill_no: str) -> dict:
        """Move one parcel to its next status now."""
        with self._lock:
            record = self._waybill(waybill_no)
            if record["status"] not in ACTIVE:
                raise CourierRefused(409, "not_active",
                                     f"waybill {waybill_no} is {record['status']}")
            self._step(record)
            self._save()
            return _public(record)

    def tick(self) -> int:
        """Move every active parcel one status; returns how many moved."""
        with self._lock:
            moving = [w for w in self.waybills.values() if w["status"] in ACTIVE]
            for record in moving:
                self._step(record)
            if moving:
                self._save()
            return len(moving)

    def report_exception(self, waybill_no: str, status: str, detail: str) -> dict:
        """Report a delay (the parcel keeps moving) or a loss or damage (it stops)."""
        with self._lock:
            record = self._waybill(waybill_no)
            if record["status"] not in ACTIVE:
                raise CourierRefused(409, "not_active",
                                     f"waybill {waybill_no} is {record['status']}")
            self._emit(record, status, detail)
            self._save()
            return _public(record)

    def pending_events(self) -> list[dict]:
        """Events the webhook receiver has not accepted yet, oldest first."""
        with self._lock:
            return [dict(event) for event in self.outbox]

    def _step(self, record: dict) -> None:
        status = MOVEMENT[MOVEMENT.index(_progress(record)) + 1]
        self._emit(record, status, STEP_DETAILS[status])

    def _emit(self, record: dict, status: str, detail: str) -> None:
        event = {"event_id": str(uuid.uuid4()), "waybill_no": record["waybill_no"],
                 "reference": record["reference"], "type": record["type"],
                 "status": status, "at": _now(), "detail": detail}
        record["status"] = status
        record["updated_at"] = event["at"]
        record["events"].append(event)
        if self.webhook_url:
            self.outbox.append(dict(event))
            self._wake.set()

    def _move_parcels(self) -> None:
        while not self._stopping.wait(self.step):
            self.tick()

    def _send_webhooks(self) -> None:
        with httpx.Client(timeout=WEBHOOK_TIMEOUT_SECONDS) as client:
            while not self._stopping.is_set():
                self._wake.clear()
                if self._deliver_round(client):
                    self._wake.wait(RETRY_SECONDS)
                else:
                    self._stopping.wait(RETRY_SECONDS)

    def _deliver_round(self, client: httpx.Client) -> bool:
        """POST queued events in order; returns False when any of them failed.

        A failed event holds back the later events of its waybill until the next round,
        so each waybill's events arrive in order; other waybills go on.
        """
        held_back: set[str] = set()
        for event in self.pending_events():
            if self._stopping.is_set():
                return True
            if event["waybill_no"] in held_back:
                continue
            if self._post(client, event):
                with self._lock:
                    self.outbox = [e for e in self.outbox if e["event_id"] != event["event_id"]]
                    self._save()
            else:
                held_back.add(event["waybill_no"])
        return not held_back

    def _post(self, client: httpx.Client, event: dict) -> bool:
        assert self.webhook_url is not None
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        # The timestamp is signed too, so a captured webhook cannot be replayed later.
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: stamp,
                   SIGNATURE_HEADER: sign(body, self._secret, stamp)}
        try:
            response = client.post(self.webhook_url, content=body, headers=headers)
        except httpx.HTTPError as err:
            log.warning("courier webhook %s failed: %s", event["event_id"], err)
            return False
        if not response.is_success:
            log.warning("courier webhook %s answered %s", event["event_id"],
                        response.status_code)
        return response.is_success

    def _waybill(self, waybill_no: str) -> dict:
        record = self.waybills.get(waybill_no)
        if record is None:
            raise CourierRefused(404, "about:blank", f"waybill {waybill_no} not found")
        return record

    def _new_number(self) -> str:
        while True:
            number = f"SF{self._rng.randrange(10**10):010d}"
            if number not in self.waybills:
                return number

    def _load(self) -> dict | None:
        return load_state(self._state_file)

    def _save(self) -> None:
        save_state(self._state_file, {"waybills": self.waybills, "outbox": self.outbox})


def _delivery_parcels() -> dict[str, dict]:
    """The demo orders' own delivery parcels (delivered, or still in transit), so a
    courier exception on an order's parcel can be reported."""
    now = datetime.now(UTC)
    parcels: dict[str, dict] = {}
    for order in order_system.demo_orders(now).values():
        number = order["waybill_no"]
        status = "delivered" if order["status"] == "delivered" else "in_transit"
        stamp = iso(now)
        parcels[number] = {
            "waybill_no": number, "type": "outbound", "reference": order["id"],
            "sender": {"name": "Shop warehouse", "address": "warehouse"},
            "recipient": {"name": order["customer"]["name"],
                          "address": f"customer {order['customer_id']}"},
            "items": [{"sku": line["sku"], "quantity": line["quantity"]}
                      for line in order["lines"]],
            "status": status, "idempotency_key": f"order-delivery:{order['id']}",
            "created_at": order["placed_at"], "updated_at": stamp, "events": [],
            "request": {},
        }
    return parcels


def create_app(system: CourierSystem, fail_rate: float = 0.0,
               hang_seconds: float = 8.0) -> Flask:
    """The courier's HTTP API over `system`, with optional fault injection."""
    app = simulator_app("courier_system_simulator", fail_rate, hang_seconds)

    @app.post("/waybills")
    def create_waybill():
        key = request.headers.get("Idempotency-Key")
        if not key:
            return problem(400, "Idempotency-Key header is required")
        body = request.get_json(silent=True)
        invalid = _invalid_waybill_fields(body)
        if invalid:
            return problem(422, "invalid or missing: " + ", ".join(invalid))
        fields = ("type", "reference", "sender", "recipient", "items")
        record, created = system.create(key, {name: body[name] for name in fields})
        return jsonify(record), 201 if created else 200

    @app.get("/waybills")
    def list_waybills():
        return jsonify(system.waybill_list(request.args.get("reference")))

    @app.get("/waybills/<waybill_no>")
    def get_waybill(waybill_no: str):
        return jsonify(system.get(waybill_no))

    @app.post("/waybills/<waybill_no>/cancel")
    def cancel(waybill_no: str):
        return jsonify(system.cancel(waybill_no))

    @app.post("/_control/tick")
    def tick():
        return {"moved": system.tick()}

    @app.post("/_control/waybills/<waybill_no>/advance")
    def advance(waybill_no: str):
        return jsonify(system.advance(waybill_no))

    @app.post("/_control/waybills/<waybill_no>/exception")
    def exception(waybill_no: str):
        body = request.get_json(silent=True)
        if (not isinstance(body, dict) or body.get("status") not in EXCEPTIONS
                or not isinstance(body.get("detail"), str)):
            return problem(422, "status must be one of " + ", ".join(EXCEPTIONS)
                            + " and detail a string")
        return jsonify(system.report_exception(waybill_no, body["status"], body["detail"]))

    return app


def _invalid_waybill_fields(body) -> list[str]:
    """Names of the fields of a waybill request that are missing or wrong."""
    if not isinstance(body, dict):
        return ["body (a JSON object)"]
    invalid = []
    if body.get("type") not in WAYBILL_TYPES:
        invalid.append("type (one of " + ", ".join(WAYBILL_TYPES) + ")")
    if not _is_text(body.get("reference")):
        invalid.append("reference")
    for party in ("sender", "recipient"):
        value = body.get(party)
        if not (isinstance(value, dict) and _is_text(value.get("name"))
                and _is_text(value.get("address"))):
            invalid.append(f"{party} (name, address)")
    items = body.get("items")
    if not (isinstance(items, list) and items and all(
            isinstance(item, dict) and _is_text(item.get("sku"))
            and isinstance(item.get("quantity"), int)
            and not isinstance(item.get("quantity"), bool) and item["quantity"] >= 1
            for item in items)):
        invalid.append("items (a non-empty list of sku, quantity >= 1)")
    return invalid


def _progress(record: dict) -> str:
    """How far the parcel has moved, ignoring exceptions such as a delay."""
    moves = [e["status"] for e in record["events"] if e["status"] in MOVEMENT]
    return moves[-1] if moves else "created"


def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _public(record: dict) -> dict:
    return {k: ([dict(e) for e in v] if k == "events" else v)
            for k, v in record.items() if k != "request"}


def _now() -> str:
    return iso(datetime.now(UTC))


def serve(host: str, port: int, data_dir: str | None, fail_rate: float, *,
          webhook_url: str | None, webhook_secret: str, step: float) -> None:
    """Serve the simulator until interrupted, state in `data_dir` when given."""
    state_file = Path(data_dir) / "courier_system.json" if data_dir else None
    system = CourierSystem(state_file, webhook_url, webhook_secret, step, seed_orders=True)
    server = make_server(host, port, create_app(system, fail_rate=fail_rate), threaded=True)
    system.start()
    try:
        server.serve_forever()
    finally:
        system.stop()
        server.server_close()


def main() -> None:
    """Command-line entry point: `python -m simulators.courier_system`."""
    args, fail_rate = command_line("Simulated courier system", 5103)
    step = float(os.environ.get("AFTERSALES_SIM_COURIER_STEP", "3") or 0)
    webhook_url = os.environ.get("AFTERSALES_COURIER_WEBHOOK_URL") or None
    webhook_secret = os.environ.get("AFTERSALES_COURIER_WEBHOOK_SECRET", "")
    if webhook_url and not webhook_secret:
        log.warning("AFTERSALES_COURIER_WEBHOOK_SECRET is empty: webhooks are signed "
                    "with an empty key")
    serve(args.host, args.port, args.data_dir, fail_rate,
          webhook_url=webhook_url, webhook_secret=webhook_secret, step=step)


if __name__ == "__main__":
    main()
