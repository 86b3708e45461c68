"""What the simulated systems share: problem answers, timestamps, fault injection and
how they are served from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

FAULTS = ("refuse", "hang", "lose_answer")


def problem(status: int, detail: str, kind: str = "about:blank"):
    """A problem+json answer; `kind` is the machine-readable reason."""
    body = {"type": kind, "title": "error", "status": status, "detail": detail}
    return jsonify(body), status, {"Content-Type": "application/problem+json"}


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def install_faults(app: Flask, fail_rate: float, hang_seconds: float) -> dict[str, int]:
    """Make `fail_rate` of the calls fail (not /health, not /_control/*): refused with a
    503, hung past a client's timeout then refused, or done but the answer lost. Returns
    the live count of faults by kind and method, for tests to see they happened."""
    rng = random.Random()
    faults: dict[str, int] = app.extensions.setdefault("faults", {})

    @app.before_request
    def inject_faults():
        if (request.path == "/health" or request.path.startswith("/_control/")
                or fail_rate <= 0 or rng.random() >= fail_rate):
            return None
        fault = rng.choice(FAULTS)
        faults[f"{fault} {request.method}"] = faults.get(f"{fault} {request.method}", 0) + 1
        if fault == "lose_answer":
            # The work is done but the caller never hears: the hardest case for
            # exactly-once, which only an idempotency key gets right.
            request.environ["aftersales.lose_answer"] = True
            return None
        if fault == "hang":
            time.sleep(hang_seconds)
        return problem(503, "simulated outage")

    @app.after_request
    def lose_answer(response):
        if request.environ.get("aftersales.lose_answer"):
            time.sleep(hang_seconds)
            return app.make_response(problem(503, "simulated outage after the work was done"))
        return response

    return faults


def command_line(description: str, default_port: int) -> tuple[argparse.Namespace, float]:
    """Parse `--host --port --data-dir`, read AFTERSALES_SIM_FAIL_RATE, quiet the logs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # Werkzeug logs every request at INFO; keep the dev stack's output readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return args, float(os.environ.get("AFTERSALES_SIM_FAIL_RATE", "0") or 0)


def serve_forever(app: Flask, host: str, port: int) -> None:
    make_server(host, port, app, threaded=True).serve_forever()


class Refused(Exception):
    """A business refusal, answered with a problem whose `type` is `kind`."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail


def simulator_app(name: str, fail_rate: float, hang_seconds: float) -> Flask:
    """A simulator's Flask app: fault injection, `/health`, refusals as problems."""
    app = Flask(name)
    install_faults(app, fail_rate, hang_seconds)

    @app.errorhandler(Refused)
    def refused(err: Refused):
        return problem(err.status, err.detail, err.kind)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    return app


def load_state(path: Path | None) -> dict | None:
    """A simulator's saved state, if it has a file and the file exists."""
    if path is not None and path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    return None


def save_state(path: Path | None, state: dict) -> None:
    """Write the state atomically (a crash leaves the old file or the new one)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)
