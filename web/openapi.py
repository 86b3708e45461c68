"""GET /api/v1/openapi.json: OpenAPI 3.1, generated from the marshmallow schemas that
validate the requests and describe the answers."""

from __future__ import annotations

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app
from marshmallow import Schema

from web import schemas as s
from web.auth import PERMISSIONS
from web.reports import ReportQuery
from workflows.case.lifecycle import BY_NAME, STAFF_ACTIONS

openapi = Blueprint("openapi", __name__)

PROBLEM_TEXT = {
    400: "The body is not valid JSON",
    401: "No token, or an unknown one",
    403: "The caller's role may not do this",
    404: "No such case, action or link",
    405: "Method not allowed on this path",
    429: "Too many unknown status links from this address; retry after `Retry-After`",
    409: "Not allowed in the case's current stage, or an Idempotency-Key reused with "
         "another body",
    422: "Invalid field values; `errors` is keyed by field path",
    503: "Temporal or the database cannot be reached; retry after `Retry-After` seconds",
}
IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Same key and body within 24 h: the same answer, done once. Same key "
                   "with another body: 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}
def _problems(*codes: int) -> dict:
    out = {}
    for code in codes:
        response: dict = {
            "description": PROBLEM_TEXT[code],
            "content": {"application/problem+json": {"schema": "Problem"}},
        }
        if code in (429, 503):
            response["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        out[str(code)] = response
    return out


def _json(schema: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _roles(permission: str) -> str:
    return "Roles: " + ", ".join(PERMISSIONS[permission]) + "."


def build_spec() -> dict:
    spec = APISpec(
        title="Aftersales API",
        version="1",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": "Complaint and after-sales cases as durable workflows. "
                             "Errors are application/problem+json (RFC 9457)."},
    )
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    named: tuple[tuple[str, type[Schema]], ...] = (
        # Triage before Case, which nests it.
        ("Problem", s.ProblemSchema), ("Triage", s.TriageSchema), ("Case", s.CaseSchema),
        ("CaseList", s.CaseListSchema),
        ("CustomerView", s.CustomerViewSchema), ("User", s.UserSchema),
        ("UserList", s.UserListSchema), ("Health", s.HealthSchema),
        ("CaseCreate", s.CaseCreateSchema), ("UserCreate", s.UserCreateSchema),
        ("Feedback", s.FeedbackSchema), ("Reply", s.ReplySchema),
        ("TriageRequest", s.TriageRequestSchema),
    )
    for name, model in named:
        spec.components.schema(name, schema=model)
    secured: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    case_id = {"name": "case_id", "in": "path", "required": True, "schema": {"type": "string"}}
    token = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "The last path segment of the case's customer_url"}

    spec.path("/healthz", operations={"get": {
        "summary": "Health: ok once the database and Temporal answer",
        "responses": {"200": _json("Health", "Healthy"),
                      "503": {**_json("Health", "Database or Temporal unavailable"),
                              "headers": {"Retry-After": {"schema": {"type": "string"}}}}},
    }})
    spec.path("/api/v1/openapi.json", operations={"get": {
        "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }})
    spec.path("/api/v1/cases", operations={
        "post": {
            "summary": "Open a case", "description": _roles("cases.create"),
            "security": secured, "parameters": [IDEMPOTENCY_HEADER],
            "requestBody": _body("CaseCreate"),
            "responses": {"201": {**_json("Case", "The new case, recorded"),
                                  "headers": {"Location": {"schema": {"type": "string"}}}},
                          **_problems(400, 401, 403, 409, 422, 503)},
        },
        "get": {
            "summary": "List cases", "description": _roles("cases.list"),
            "security": secured,
            "parameters": [{"in": "query", "schema": s.CaseListQuery}],
            "responses": {"200": _json("CaseList", "One page of cases"),
                          **_problems(401, 403, 422, 503)},
        },
    })
    spec.path("/api/v1/cases/{case_id}", operations={"get": {
        "summary": "One case with its timeline and deadlines",
        "description": _roles("cases.read"), "security": secured, "parameters": [case_id],
        "responses": {"200": _json("Case", "The case"), **_problems(401, 403, 404, 503)},
    }})
    for action in STAFF_ACTIONS:
        spec.path(f"/api/v1/cases/{{case_id}}/{action.name}", operations={"post": {
            "summary": action.summary,
            "description": f"{_roles(action.permission)} Allowed in stages: "
                           f"{', '.join(action.stages)}.",
            "security": secured, "parameters": [case_id, IDEMPOTENCY_HEADER],
            "requestBody": _body(s.ACTION_SCHEMAS[action.name]),
            "responses": {"200": _json("Case", "The case after the action"),
                          **_problems(400, 401, 403, 404, 409, 422, 503)},
        }})
    spec.path("/api/v1/status/{token}", operations={"get": {
        "summary": "The customer's view of their case (no login)", "parameters": [token],
        "responses": {"200": _json("CustomerView", "The case as the customer sees it"),
                      **_problems(404, 429, 503)},
    }})
    for name, body_name in (("feedback", "Feedback"), ("reply", "Reply")):
        spec.path(f"/api/v1/status/{{token}}/{name}", operations={"post": {
            "summary": BY_NAME[name].summary, "parameters": [token],
            "requestBody": _body(body_name),
            "responses": {"200": _json("CustomerView", "The case as the customer sees it"),
                          **_problems(400, 404, 409, 422, 429, 503)},
        }})
    spec.path("/api/v1/reports/summary", operations={"get": {
        "summary": "KPIs over a period (docs/reports.md); CSV with format=csv",
        "description": _roles("reports.read"), "security": secured,
        "parameters": [{"in": "query", "schema": ReportQuery}],
        "responses": {"200": {"description": "The report", "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}}}},
            **_problems(401, 403, 422, 503)},
    }})
    spec.path("/api/v1/triage", operations={"post": {
        "summary": "Suggested kind, root cause, priority, sentiment and escalation risk, "
                   "with reasons (docs/triage.md)",
        "description": _roles("triage.suggest") + " Text the model cannot read (another "
                       "script) gets an answer with low_confidence and notes.",
        "security": secured, "requestBody": _body("TriageRequest"),
        "responses": {"200": _json("Triage", "The suggestions"),
                      **_problems(400, 401, 403, 422, 503)},
    }})
    spec.path("/api/v1/users", operations={
        "get": {"summary": "Staff users", "description": _roles("users.list"),
                "security": secured,
                "responses": {"200": _json("UserList", "All users"),
                              **_problems(401, 403, 503)}},
        "post": {"summary": "Create a staff user", "description": _roles("users.create"),
                 "security": secured, "parameters": [IDEMPOTENCY_HEADER],
                 "requestBody": _body("UserCreate"),
                 "responses": {"201": _json("User", "The new user"),
                               **_problems(400, 401, 403, 409, 422, 503)}},
    })
    return spec.to_dict()


@openapi.get("/api/v1/openapi.json")
def document():
    cache = current_app.extensions.setdefault("aftersales_openapi", build_spec())
    return cache
