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
    429: "Too many misses (unknown links, orders, codes) from this address or on this "
         "order; retry after `Retry-After`",
    409: "Not allowed in the case's current stage, an Idempotency-Key reused with "
         "another body, or the case has all the files it may have",
    413: "The body or a file is larger than allowed",
    415: "A file of a type not accepted (decided from its bytes)",
    422: "Invalid field values, or text with a control character (NUL, …) or a lone "
         "surrogate anywhere in the request; `errors` is keyed by field path",
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
        # Triage, Attachment and Message before Case, which nests them.
        ("Problem", s.ProblemSchema), ("Triage", s.TriageSchema),
        ("Attachment", s.AttachmentSchema), ("Message", s.MessageSchema),
        ("Case", s.CaseSchema),
        ("CaseList", s.CaseListSchema),
        ("CustomerView", s.CustomerViewSchema), ("User", s.UserSchema),
        ("UserList", s.UserListSchema), ("Health", s.HealthSchema),
        ("CaseCreate", s.CaseCreateSchema), ("UserCreate", s.UserCreateSchema),
        ("Feedback", s.FeedbackSchema), ("Reply", s.ReplySchema),
        ("QuoteAnswer", s.QuoteAnswerSchema),
        ("TriageRequest", s.TriageRequestSchema), ("AttachmentList", s.AttachmentListSchema),
        ("Request", s.RequestSchema), ("Duty", s.DutySchema),
        ("Deactivation", s.DeactivationSchema),
        ("Token", s.TokenSchema), ("TokenList", s.TokenListSchema),
        ("AuditList", s.AuditListSchema), ("PasswordSet", s.PasswordSetSchema),
        ("RequestLookup", s.RequestLookupSchema), ("RequestCreated", s.RequestCreatedSchema),
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
            "summary": "List cases; every matching case as CSV with format=csv",
            "description": _roles("cases.list") + " With `format=csv` the answer is a "
                           "streamed text/csv download of every matching case (no "
                           "pages), written to the audit log (docs/api.md).",
            "security": secured,
            "parameters": [{"in": "query", "schema": s.CaseListQuery}],
            "responses": {"200": {"description": "One page of cases, or every matching "
                                                 "case as CSV", "content": {
                "application/json": {"schema": "CaseList"},
                "text/csv": {"schema": {"type": "string"}}}},
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
    # (path, action, body, status): `reply` is the first name of `messages`.
    for path, name, body_name, code in (("feedback", "feedback", "Feedback", "200"),
                                        ("quote", "quote", "QuoteAnswer", "200"),
                                        ("messages", "message", "Reply", "201"),
                                        ("reply", "message", "Reply", "200")):
        spec.path(f"/api/v1/status/{{token}}/{path}", operations={"post": {
            "summary": BY_NAME[name].summary, "parameters": [token],
            "requestBody": _body(body_name),
            "responses": {code: _json("CustomerView", "The case as the customer sees it"),
                          **_problems(400, 404, 409, 422, 429, 503)},
        }})
    upload = {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "A JPEG, PNG, WebP or HEIC photo, an MP4 video or a "
                                    "PDF; the type is decided from the bytes"},
            "shared": {"type": "string", "enum": ["true", "false"],
                       "description": "Staff only: show the file to the customer"}}}}}}
    file_id = {"name": "attachment_id", "in": "path", "required": True,
               "schema": {"type": "string"}}
    thumb = {"name": "size", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["thumb"]}}
    download = {"description": "The file's bytes (images re-encoded without metadata)",
                "content": {"application/octet-stream": {"schema": {
                    "type": "string", "format": "binary"}}}}
    file_problems = (400, 404, 409, 413, 415, 422, 503)
    spec.path("/api/v1/cases/{case_id}/attachments", operations={
        "post": {"summary": BY_NAME["attach"].summary + " (docs/intake.md)",
                 "description": _roles("cases.attach"), "security": secured,
                 "parameters": [case_id], "requestBody": upload,
                 "responses": {"201": _json("Attachment", "The file, recorded"),
                               **_problems(401, 403, *file_problems)}},
        "get": {"summary": "The case's files", "description": _roles("cases.read"),
                "security": secured, "parameters": [case_id],
                "responses": {"200": _json("AttachmentList", "Metadata of every file"),
                              **_problems(401, 403, 404, 503)}}})
    spec.path("/api/v1/cases/{case_id}/attachments/{attachment_id}", operations={"get": {
        "summary": "One file's bytes, or its thumbnail", "description": _roles("cases.read"),
        "security": secured, "parameters": [case_id, file_id, thumb],
        "responses": {"200": download, **_problems(401, 403, 404, 503)}}})
    spec.path("/api/v1/status/{token}/attachments", operations={
        "post": {"summary": "The customer adds a file while the case is open",
                 "parameters": [token], "requestBody": upload,
                 "responses": {"201": _json("Attachment", "The file, recorded"),
                               **_problems(429, *file_problems)}},
        "get": {"summary": "The customer's own files and those staff shared",
                "parameters": [token],
                "responses": {"200": _json("AttachmentList", "Metadata of the files"),
                              **_problems(404, 429, 503)}}})
    spec.path("/api/v1/status/{token}/attachments/{attachment_id}", operations={"get": {
        "summary": "One of the customer's or a shared file", "parameters": [token, file_id,
                                                                             thumb],
        "responses": {"200": download, **_problems(404, 429, 503)}}})
    spec.path("/api/v1/requests", operations={"post": {
        "summary": "The customer's own request, proven by the order's number and its phone "
                   "or email (docs/intake.md)",
        "requestBody": _body("Request"),
        "responses": {"201": _json("RequestCreated", "The case is open"),
                      "200": _json("RequestCreated", "The same request is open already"),
                      **_problems(400, 404, 422, 429, 503)}}})
    spec.path("/api/v1/requests/code", operations={"post": {
        "summary": "Send a one-time code to the order's phone or email "
                   "(AFTERSALES_REQUEST_CODES=1)",
        "requestBody": _body("RequestLookup"),
        "responses": {"202": {"description": "Sent", "content": {"application/json": {
            "schema": {"type": "object", "properties": {
                "sent_to": {"type": "string"}, "expires_in": {"type": "integer"}}}}}},
            **_problems(400, 404, 422, 429, 503)}}})
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
    spec.path("/api/v1/me/duty", operations={"post": {
        "summary": "Set the caller on duty or away (docs/teams.md): away, routing gives "
                   "them no new cases",
        "description": _roles("me.duty"), "security": secured,
        "requestBody": _body("Duty"),
        "responses": {"200": _json("User", "The caller, as now"),
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
    user_name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    spec.path("/api/v1/users/{name}/deactivate", operations={"post": {
        "summary": "Deactivate a user: sessions end, tokens stop, open cases back to the "
                   "queue, supervisors told (docs/operations.md)",
        "description": _roles("users.deactivate"), "security": secured,
        "parameters": [user_name],
        "responses": {"200": _json("Deactivation", "The user, and their cases"),
                      **_problems(401, 403, 404, 409, 503)}}})
    spec.path("/api/v1/users/{name}/activate", operations={"post": {
        "summary": "Activate a deactivated user again",
        "description": _roles("users.activate"), "security": secured,
        "parameters": [user_name],
        "responses": {"200": _json("User", "The user"), **_problems(401, 403, 404, 503)}}})
    spec.path("/api/v1/users/{name}/password", operations={"post": {
        "summary": "Reset a user's password; their sign-in sessions end",
        "description": _roles("users.set-password"), "security": secured,
        "parameters": [user_name], "requestBody": _body("PasswordSet"),
        "responses": {"200": _json("User", "The user"),
                      **_problems(400, 401, 403, 404, 422, 503)}}})
    spec.path("/api/v1/users/{name}/tokens", operations={"get": {
        "summary": "A user's API tokens by public id (never the token)",
        "description": _roles("tokens.list"), "security": secured,
        "parameters": [user_name],
        "responses": {"200": _json("TokenList", "The tokens, newest first"),
                      **_problems(401, 403, 404, 503)}}})
    spec.path("/api/v1/tokens/{token_id}/revoke", operations={"post": {
        "summary": "Revoke a token by its public id",
        "description": _roles("tokens.revoke"), "security": secured,
        "parameters": [{"name": "token_id", "in": "path", "required": True,
                        "schema": {"type": "string"}}],
        "responses": {"200": _json("Token", "The token, revoked"),
                      **_problems(401, 403, 404, 503)}}})
    spec.path("/api/v1/audit", operations={"get": {
        "summary": "The audit log, filtered and paged, newest first; CSV with format=csv",
        "description": _roles("audit.read"), "security": secured,
        "parameters": [{"in": "query", "schema": s.AuditQuery}],
        "responses": {"200": {"description": "One page of entries, or every match as CSV",
                              "content": {
                                  "application/json": {"schema": "AuditList"},
                                  "text/csv": {"schema": {"type": "string"}}}},
                      **_problems(401, 403, 422, 503)}}})
    document = spec.to_dict()
    # Any request may carry text that cannot be stored, in its path too (web/characters.py).
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].setdefault("422", {
                "description": PROBLEM_TEXT[422],
                "content": {"application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}}}})
    return document


@openapi.get("/api/v1/openapi.json")
def document():
    cache = current_app.extensions.setdefault("aftersales_openapi", build_spec())
    return cache
