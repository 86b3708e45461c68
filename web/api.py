"""REST API v1 for staff and integrators: open, list, read and act on cases."""

from __future__ import annotations

from flask import Blueprint, current_app, g, request

from db import accounts, auditlog, teams
from db import cases as case_store
from web import intake
from web.access import audit_csv, audit_filter, deactivate_user, failure_english
from web.auth import check, current_user, require
from web.characters import refuse_unstorable_json
from web.commands import perform_action
from web.export import export_cases
from web.gateway import CaseNotRunning
from web.idempotency import idempotent
from web.intake import case_input
from web.pagination import decode_cursor, encode_cursor
from web.problems import Problem
from web.representation import audit_json, case_json, token_json, user_json
from web.schemas import (
    ACTION_SCHEMAS,
    AuditQuery,
    CaseCreateSchema,
    CaseListQuery,
    DutySchema,
    PasswordSetSchema,
    TriageRequestSchema,
    UserCreateSchema,
)
from workflows.case.contracts import CaseItem, Customer
from workflows.case.lifecycle import BY_NAME
from workflows.case.vocabulary import LOCALES

api = Blueprint("api", __name__)

def state():
    return current_app.extensions["aftersales"]


def json_body() -> dict:
    """The request's JSON object, or a 400 problem when it is not one."""
    body = request.get_json(silent=True)
    if body is None:
        if not request.get_data():
            return {}
        raise Problem(400, "Malformed JSON", "the request body is not valid JSON")
    if not isinstance(body, dict):
        raise Problem(400, "Malformed JSON", "the request body must be a JSON object")
    refuse_unstorable_json(body)
    return body


@api.post("/cases")
@require("cases.create")
@idempotent
def open_case():
    data = CaseCreateSchema().load(json_body())
    st = state()
    customer = Customer(**data["customer"])
    if not customer.locale:
        customer.locale = (request.accept_languages.best_match(LOCALES)
                           or st.settings.default_locale)
    row = intake.open_case(case_input(
        kind=data["kind"], channel=data["channel"], order_id=data["order_id"],
        customer=customer,
        items=[CaseItem(**item) for item in data["items"]],
        description=data["description"], opened_by=current_user().name,
        priority=data["priority"]))
    with st.sessions() as session:
        body = case_json(row, case_store.timeline(session, row.id))
    return body, 201, {"Location": f"/api/v1/cases/{row.id}"}


@api.get("/cases")
@require("cases.list")
def list_cases():
    query = CaseListQuery().load(request.args.to_dict())
    sort, per_page = query.pop("sort"), query.pop("per_page")
    if query.pop("format") == "csv":
        if "per_page" in request.args:
            raise Problem(422, "Invalid request", "an export holds every matching case",
                          errors={"per_page": ["an export holds every matching case; it "
                                               "has no pages"]})
        return export_cases(case_store.CaseFilter(**query), sort,
                            case_store.jsonable({**query, "sort": sort}), "cases")
    page, cursor = query.pop("page", None), query.pop("cursor", None)
    after = decode_cursor(cursor, sort) if cursor else None
    with state().sessions() as session:
        rows, total, next_key = case_store.list_cases(
            session, case_store.CaseFilter(**query), sort=sort, per_page=per_page,
            page=page or (None if after else 1), after=after)
        items = [case_json(row) for row in rows]
    return {
        "items": items,
        "total": total,
        "per_page": per_page,
        "page": page,
        "next_cursor": encode_cursor(sort, next_key) if next_key else None,
    }


@api.get("/cases/<case_id>")
@require("cases.read")
def get_case(case_id: str):
    with state().sessions() as session:
        row = case_store.get_case(session, case_id)
        if row is None:
            raise Problem(404, "Not found", f"no case {case_id}")
        return case_json(row, case_store.timeline(session, case_id))


@api.post("/cases/<case_id>/<action>")
@idempotent
def act(case_id: str, action: str):
    if action not in ACTION_SCHEMAS:
        current_user()
        raise Problem(404, "Not found", f"no action '{action}'")
    check(BY_NAME[action].permission)
    data = ACTION_SCHEMAS[action]().load(json_body())
    try:
        result = perform_action(case_id, action, data)
    except CaseNotRunning:
        with state().sessions() as session:
            if case_store.get_case(session, case_id) is None:
                raise Problem(404, "Not found", f"no case {case_id}") from None
        raise
    # The update returns once its change is in the read model: one read answers. (A
    # later write of the case can still be on its way; the row is at least this one's.)
    with state().sessions() as session:
        row = case_store.get_case(session, result.case_id)
        if row is None:
            raise Problem(503, "Case not yet visible", f"case {case_id} changed but is not "
                          "in the read model yet; read it again shortly",
                          headers={"Retry-After": "2"})
        return case_json(row, case_store.timeline(session, case_id))


@api.post("/me/duty")
@require("me.duty")
def set_duty():
    """On duty (routing may give the caller new cases) or away (docs/teams.md)."""
    data = DutySchema().load(json_body())
    user = current_user()
    with state().sessions.begin() as session:
        accounts.set_on_duty(session, user.name, data["on_duty"])
        row = accounts.get_user(session, user.name)
        assert row is not None
        return user_json(row, teams.teams_of(session, user.name))


@api.post("/triage")
@require("triage.suggest")
def triage():
    """Suggestions for a description before (or without) opening a case."""
    data = TriageRequestSchema().load(json_body())
    return case_store.jsonable(intake.suggest(data["description"], data["channel"]))


@api.get("/users")
@require("users.list")
def list_users():
    with state().sessions() as session:
        return {"items": [user_json(u, teams.teams_of(session, u.name))
                          for u in accounts.list_users(session)]}


@api.post("/users")
@require("users.create")
@idempotent
def create_user():
    data = UserCreateSchema().load(json_body())
    try:
        with state().sessions.begin() as session:
            user = accounts.create_user(session, data["name"], data["role"], data["password"],
                                        email=data["email"], locale=data["locale"],
                                        display_name=data["display_name"],
                                        teams=data["teams"])
            body = user_json(user, teams.teams_of(session, user.name))
    except accounts.AccountError as err:
        raise Problem(422, "Invalid request", str(err), errors={"name": [str(err)]}) from err
    return body, 201


def _known_user(session, name: str):
    user = accounts.get_user(session, name)
    if user is None:
        raise Problem(404, "Not found", f"no user '{name}'")
    return user


@api.post("/users/<name>/deactivate")
@require("users.deactivate")
def deactivate_user_endpoint(name: str):
    """Sessions end and tokens stop at once; open cases go back to the queue."""
    g.audit_action = "users.deactivate"
    done = deactivate_user(name)
    with state().sessions() as session:
        body = user_json(_known_user(session, name))
    return {**body, "returned_cases": done.returned, "cases_not_returned": {
        case_id: failure_english(why) for case_id, why in done.failed.items()}}


@api.post("/users/<name>/activate")
@require("users.activate")
def activate_user(name: str):
    g.audit_action = "users.activate"
    with state().sessions.begin() as session:
        _known_user(session, name)
        return user_json(accounts.set_active(session, name, True))


@api.post("/users/<name>/password")
@require("users.set-password")
def set_password(name: str):
    """An admin's reset: every sign-in session of the user ends."""
    g.audit_action = "users.set-password"
    data = PasswordSetSchema().load(json_body())
    with state().sessions.begin() as session:
        _known_user(session, name)
        return user_json(accounts.set_password(session, name, data["password"]))


@api.get("/users/<name>/tokens")
@require("tokens.list")
def list_tokens(name: str):
    with state().sessions() as session:
        _known_user(session, name)
        return {"items": [token_json(t) for t in accounts.list_tokens(session, name)]}


@api.post("/tokens/<token_id>/revoke")
@require("tokens.revoke")
def revoke_token(token_id: str):
    """By the token's public id only: a token never travels in a URL."""
    g.audit_action = "tokens.revoke"
    if token_id.startswith(accounts.TOKEN_PREFIX):
        raise Problem(404, "Not found", "revoke a token by its id (tk_…), never by the "
                                        "token in a URL")
    try:
        with state().sessions.begin() as session:
            return token_json(accounts.revoke_token(session, token_id))
    except accounts.AccountError as err:
        raise Problem(404, "Not found", str(err)) from err


@api.get("/audit")
@require("audit.read")
def audit_log():
    """The audit log, filtered, newest first; `format=csv` exports every match."""
    query = AuditQuery().load(request.args.to_dict())
    if query["format"] == "csv":
        return audit_csv(audit_filter(query))
    with state().sessions() as session:
        rows, total = auditlog.find(session, audit_filter(query), query["page"],
                                    query["per_page"])
        return {"items": [audit_json(r) for r in rows], "total": total,
                "page": query["page"], "per_page": query["per_page"]}
