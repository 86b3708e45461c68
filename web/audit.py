"""The audit log: every staff request that asks for a change, whatever the answer.

Written after the response is made, in its own transaction, so a refused request is
logged too. The table is append-only (database triggers), and no endpoint changes it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Flask, g, request

from db.auditlog import record

log = logging.getLogger("aftersales.audit")
CHANGING = ("POST", "PUT", "PATCH", "DELETE")


def register(app: Flask) -> None:
    @app.after_request
    def audit(response):
        user = g.get("user")
        if request.method not in CHANGING or user is None:
            return response
        view_args = request.view_args or {}
        try:
            with app.extensions["aftersales"].sessions.begin() as session:
                # A view that is not a case action names what it did (g.audit_action).
                record(session, at=datetime.now(UTC), actor=user.name, role=user.role,
                       method=request.method, path=request.path,
                       case_id=view_args.get("case_id"),
                       action=view_args.get("action") or g.get("audit_action"),
                       status=response.status_code,
                       idempotency_key=request.headers.get("Idempotency-Key"),
                       remote_addr=request.remote_addr)
        except Exception:
            log.exception("could not write the audit log for %s %s", request.method,
                          request.path)
        return response
