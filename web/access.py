"""The access lifecycle's commands, for the API and the admin page alike: deactivate a
user (their cases back to the queue through the gateway), and read or export the audit
log (an export is itself audited)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Response, current_app, request

from aftersales.access import Deactivation, deactivate
from db import auditlog
from db.accounts import AccountError
from db.cases import jsonable
from web.auth import check, current_user
from web.gateway import ActionRefused, CaseNotRunning, TemporalUnavailable
from web.problems import Problem
from web.reports import rows_to_csv
from workflows.case.contracts import Actor, UnassignInput


def _state():
    return current_app.extensions["aftersales"]


def _return_cases(case_ids: list[str], inp: UnassignInput
                  ) -> dict[str, str | Exception]:
    """Each case back to the queue; the ones that are not, with the error that says why
    (the API says it in English, the admin page in its language: failure_words)."""
    gateway = _state().gateway
    failed: dict[str, str | Exception] = {}
    for case_id in case_ids:
        try:
            gateway.act(case_id, "unassign", inp)
        except (ActionRefused, CaseNotRunning, TemporalUnavailable) as err:
            failed[case_id] = err
    return failed


def failure_english(why: str | Exception) -> str:
    """Why a case was not returned, in English (the API's `cases_not_returned`)."""
    if isinstance(why, ActionRefused):
        return why.message
    if isinstance(why, CaseNotRunning):
        return "the case's workflow has ended"
    return str(why)


def deactivate_user(name: str) -> Deactivation:
    """Deactivate `name` as the calling admin; a Problem if it cannot be done."""
    check("users.deactivate")
    user = current_user()
    if name == user.name:
        raise Problem(409, "Conflict", "you cannot deactivate your own account; another "
                                       "admin can")
    st = _state()
    try:
        return deactivate(st.settings, st.sessions, name, Actor(user.name, user.role),
                          _return_cases)
    except AccountError as err:
        raise Problem(404, "Not found", str(err)) from err


def audit_filter(query: dict) -> auditlog.AuditFilter:
    """The filter of a loaded AuditQuery."""
    return auditlog.AuditFilter(
        actor=query.get("actor"), case_id=query.get("case_id"), action=query.get("action"),
        start=query.get("start"), end=query.get("end"))


def _audit_cell(value):
    """A cell of the audit CSV: `detail` as compact JSON, the rest as in the API."""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return jsonable(value)


def audit_csv(audit_filter: auditlog.AuditFilter) -> Response:
    """The matching audit entries as CSV; the export goes into the log too."""
    check("audit.read")
    user = current_user()
    with _state().sessions.begin() as session:
        rows = auditlog.export(session, audit_filter)
        body = rows_to_csv(list(auditlog.COLUMNS),
                           [[_audit_cell(getattr(row, c)) for c in auditlog.COLUMNS]
                            for row in rows])
        auditlog.record(session, actor=user.name, role=user.role, method=request.method,
                        path=request.full_path.rstrip("?"), status=200,
                        action="audit-export", remote_addr=request.remote_addr,
                        at=datetime.now(UTC))
    return Response(body, content_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": "attachment; filename=aftersales-audit.csv"})
