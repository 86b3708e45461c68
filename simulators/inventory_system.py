"""A runnable stand-in for the retailer's warehouse inventory system.

Keeps stock per SKU (on hand, reserved, available) with real state: reservations for
replacement goods that are later shipped or released, restocks of returned goods that
passed inspection, and write-offs of goods that never went back to stock. Every write
honours an `Idempotency-Key`, and the state lives in a JSON file so it survives a
restart. `AFTERSALES_SIM_FAIL_RATE` makes that share of calls fail with a 503 or a
hang past the client's timeout.

Never imported by production code; `aftersales dev` runs it as a child process.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeGuard

from flask import Flask, jsonify, request

from simulators.http import (
    Refused,
    command_line,
    iso,
    load_state,
    problem,
    save_state,
    serve_forever,
    simulator_app,
)
from simulators.order_system import CATALOGUE, CATALOGUE_EXTRAS

OUT_OF_STOCK_SKU = "SKU-SHOES-41"
ID_PREFIXES = {"reservation": "RSV", "restock": "RST", "write_off": "WO"}
RESTOCK_LOCATIONS = ("stock", "open_box")


def demo_stock(seed: int = 11) -> dict[str, dict]:
    """Deterministic stock for the order system's catalogue; one SKU starts sold out."""
    rng = random.Random(seed)
    stock: dict[str, dict] = {}
    for sku, *_rest in CATALOGUE + CATALOGUE_EXTRAS:
        on_hand = 0 if sku == OUT_OF_STOCK_SKU else rng.randint(5, 50)
        stock[sku] = {"sku": sku, "on_hand": on_hand, "reserved": 0}
    return stock


class InventoryRefused(Refused):
    """A refusal of this system, answered with a problem whose `type` is `kind`."""


class InventorySystem:
    """The simulated warehouse's stock and movements, guarded by one lock."""

    def __init__(self, state_file: Path | None) -> None:
        self._lock = threading.Lock()
        self._state_file = state_file
        state = self._load() or {"stock": demo_stock(), "movements": {}}
        self.stock: dict[str, dict] = state["stock"]
        # Every reservation, restock and write-off by id, in the order they were made.
        self.movements: dict[str, dict] = state["movements"]
        self._keys = {(m["kind"], m["idempotency_key"]): m["id"]
                      for m in self.movements.values()}
        self._save()

    def stock_view(self, sku: str) -> dict | None:
        """One SKU's stock with what is still available to reserve, or None."""
        with self._lock:
            item = self.stock.get(sku)
            return _with_available(item) if item is not None else None

    def all_stock(self) -> list[dict]:
        """Every SKU's stock, in catalogue order."""
        with self._lock:
            return [_with_available(item) for item in self.stock.values()]

    def set_on_hand(self, sku: str, on_hand: int) -> tuple[dict, bool]:
        """Set a SKU's on-hand count (simulator control); returns (stock, created)."""
        with self._lock:
            item = self.stock.get(sku)
            created = item is None
            if item is None:
                item = self.stock[sku] = {"sku": sku, "on_hand": 0, "reserved": 0}
            if on_hand < item["reserved"]:
                raise InventoryRefused(409, "below_reserved",
                                       f"{sku} has {item['reserved']} reserved; on_hand "
                                       f"cannot go below that")
            item["on_hand"] = on_hand
            self._save()
            return _with_available(item), created

    def reserve(self, key: str, body: dict) -> tuple[dict, bool]:
        """Reserve stock once per idempotency key; returns (reservation, created)."""
        with self._lock:
            existing = self._replay("reservation", key, body)
            if existing is not None:
                return _public(existing), False
            item = self._item(body["sku"])
            available = item["on_hand"] - item["reserved"]
            if body["quantity"] > available:
                raise InventoryRefused(409, "insufficient_stock",
                                       f"{body['sku']}: {body['quantity']} requested, "
                                       f"{available} available")
            item["reserved"] += body["quantity"]
            record = self._record("reservation", key, body, state="reserved")
            self._save()
            return _public(record), True

    def release(self, reservation_id: str) -> dict:
        """Give a reservation's goods back to available stock; releasing twice is a no-op."""
        with self._lock:
            record = self._reservation(reservation_id)
            if record["state"] == "shipped":
                raise InventoryRefused(409, "already_shipped",
                                       f"reservation {reservation_id} was already shipped")
            if record["state"] == "reserved":
                self.stock[record["sku"]]["reserved"] -= record["quantity"]
                record["state"] = "released"
                record["updated_at"] = _now()
                self._save()
            return _public(record)

    def ship(self, reservation_id: str) -> dict:
        """Take a reservation's goods out of the warehouse; shipping twice is a no-op."""
        with self._lock:
            record = self._reservation(reservation_id)
            if record["state"] == "released":
                raise InventoryRefused(409, "released",
                                       f"reservation {reservation_id} was released")
            if record["state"] == "reserved":
                item = self.stock[record["sku"]]
                item["reserved"] -= record["quantity"]
                item["on_hand"] -= record["quantity"]
                record["state"] = "shipped"
                record["updated_at"] = _now()
                self._save()
            return _public(record)

    def restock(self, key: str, body: dict) -> tuple[dict, bool]:
        """Put goods back on hand once per idempotency key; returns (restock, created)."""
        with self._lock:
            existing = self._replay("restock", key, body)
            if existing is not None:
                return _public(existing), False
            item = self._item(body["sku"])
            # Open-box goods (graded B at inspection) are sold apart from new stock.
            if body.get("location", "stock") == "open_box":
                item["open_box"] = item.get("open_box", 0) + body["quantity"]
            else:
                item["on_hand"] += body["quantity"]
            record = self._record("restock", key, body)
            self._save()
            return _public(record), True

    def write_off(self, key: str, body: dict) -> tuple[dict, bool]:
        """Record goods written off once per idempotency key; on_hand does not change."""
        with self._lock:
            existing = self._replay("write_off", key, body)
            if existing is not None:
                return _public(existing), False
            self._item(body["sku"])
            record = self._record("write_off", key, body)
            self._save()
            return _public(record), True

    def movement_list(self, reference: str | None = None) -> list[dict]:
        """Every reservation, restock and write-off, oldest first, optionally of one case."""
        with self._lock:
            return [_public(m) for m in self.movements.values()
                    if reference is None or m["reference"] == reference]

    def _replay(self, kind: str, key: str, body: dict) -> dict | None:
        movement_id = self._keys.get((kind, key))
        if movement_id is None:
            return None
        record = self.movements[movement_id]
        if record["request"] != body:
            raise InventoryRefused(409, "idempotency_conflict",
                                   "Idempotency-Key reused with a different body")
        return record

    def _item(self, sku: str) -> dict:
        item = self.stock.get(sku)
        if item is None:
            raise InventoryRefused(404, "unknown_sku", f"SKU {sku} not found")
        return item

    def _reservation(self, reservation_id: str) -> dict:
        record = self.movements.get(reservation_id)
        if record is None or record["kind"] != "reservation":
            raise InventoryRefused(404, "about:blank",
                                   f"reservation {reservation_id} not found")
        return record

    def _record(self, kind: str, key: str, body: dict, **extra) -> dict:
        count = sum(1 for m in self.movements.values() if m["kind"] == kind)
        now = _now()
        record = {"id": f"{ID_PREFIXES[kind]}-{count + 1:05d}", "kind": kind, **body, **extra,
                  "idempotency_key": key, "created_at": now, "updated_at": now,
                  "request": body}
        self.movements[record["id"]] = record
        self._keys[(kind, key)] = record["id"]
        return record

    def _load(self) -> dict | None:
        return load_state(self._state_file)

    def _save(self) -> None:
        save_state(self._state_file, {"stock": self.stock, "movements": self.movements})


def create_app(system: InventorySystem, fail_rate: float = 0.0,
               hang_seconds: float = 8.0) -> Flask:
    """The inventory system's HTTP API over `system`, with optional fault injection."""
    app = simulator_app("inventory_system_simulator", fail_rate, hang_seconds)

    @app.get("/stock")
    def list_stock():
        return jsonify(system.all_stock())

    @app.get("/stock/<sku>")
    def get_stock(sku: str):
        item = system.stock_view(sku)
        if item is None:
            return problem(404, f"SKU {sku} not found", "unknown_sku")
        return jsonify(item)

    @app.put("/_control/stock/<sku>")
    def set_stock(sku: str):
        body = request.get_json(silent=True)
        on_hand = body.get("on_hand") if isinstance(body, dict) else None
        if not _is_count(on_hand, minimum=0):
            return problem(422, "on_hand must be an integer >= 0")
        item, created = system.set_on_hand(sku, on_hand)
        return jsonify(item), 201 if created else 200

    @app.post("/reservations")
    def reserve():
        return _write(system.reserve, ("sku", "quantity", "reference"))

    @app.post("/reservations/<reservation_id>/release")
    def release(reservation_id: str):
        return jsonify(system.release(reservation_id))

    @app.post("/reservations/<reservation_id>/ship")
    def ship(reservation_id: str):
        return jsonify(system.ship(reservation_id))

    @app.post("/restocks")
    def restock():
        body = request.get_json(silent=True)
        location = body.get("location", "stock") if isinstance(body, dict) else "stock"
        if location not in RESTOCK_LOCATIONS:
            return problem(422, "location must be one of " + ", ".join(RESTOCK_LOCATIONS))
        # Kept out of the body for plain stock, so a restock's replay compares as before.
        return _write(system.restock, ("sku", "quantity", "reference"),
                      {"location": location} if location != "stock" else None)

    @app.post("/write-offs")
    def write_off():
        return _write(system.write_off, ("sku", "quantity", "reference", "reason"))

    @app.get("/movements")
    def list_movements():
        return jsonify(system.movement_list(request.args.get("reference")))

    return app


def _write(operation: Callable[[str, dict], tuple[dict, bool]], fields: tuple[str, ...],
           extra: dict | None = None):
    """Checks in order: header (400), body (422), key replay (200/409), then the write;
    `extra` holds optional fields the caller has checked already."""
    key = request.headers.get("Idempotency-Key")
    if not key:
        return problem(400, "Idempotency-Key header is required")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return problem(422, "the body must be a JSON object")
    invalid = [name for name in fields
               if not (_is_count(body.get(name), minimum=1) if name == "quantity"
                       else isinstance(body.get(name), str) and body[name].strip())]
    if invalid:
        return problem(422, "invalid or missing: " + ", ".join(invalid)
                        + " (quantity is an integer >= 1, the others non-empty strings)")
    record, created = operation(key, {**{name: body[name] for name in fields},
                                      **(extra or {})})
    return jsonify(record), 201 if created else 200


def _with_available(item: dict) -> dict:
    return {**item, "available": item["on_hand"] - item["reserved"]}


def _is_count(value: object, minimum: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _public(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "request"}


def _now() -> str:
    return iso(datetime.now(UTC))


def serve(host: str, port: int, data_dir: str | None, fail_rate: float) -> None:
    """Serve the simulator until interrupted, state in `data_dir` when given."""
    state_file = Path(data_dir) / "inventory_system.json" if data_dir else None
    serve_forever(create_app(InventorySystem(state_file), fail_rate=fail_rate), host, port)


def main() -> None:
    """Command-line entry point: `python -m simulators.inventory_system`."""
    args, fail_rate = command_line("Simulated inventory system", 5102)
    serve(args.host, args.port, args.data_dir, fail_rate)


if __name__ == "__main__":
    main()
