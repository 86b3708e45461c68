"""RFC 9457 problem details: the one place error responses are made."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from web.gateway import ActionRefused, CaseNotRunning, TemporalUnavailable
from workflows.case.contracts import PROJECTION_REFUSED
from workflows.case.refusals import Refusal

log = logging.getLogger("aftersales.web")
PROBLEM_BASE = "https://aftersales.dev/problems/"


class Problem(Exception):
    """Raise to answer with a problem+json response."""

    def __init__(self, status: int, title: str, detail: str = "",
                 errors: dict | None = None, headers: dict | None = None,
                 slug: str | None = None, code: str | None = None,
                 field: str | None = None, params: dict | None = None) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail or title
        self.errors = errors
        self.headers = headers or {}
        self.slug = slug or title.lower().replace(" ", "-")
        # A refused action's stable code (workflows/case/refusals.py) and the input it
        # is about: extension members of the body, for clients that act on the reason.
        self.code = code
        self.field = field
        self.params = params or {}  # for the pages' words (web/reasons.py), not the body

    @classmethod
    def refused(cls, status: int, title: str, why: Refusal,
                errors: dict | None = None) -> Problem:
        """A refusal the web finds itself, before the case is asked, said as the
        workflow would say it: the same `code`, `detail` and `field`."""
        return cls(status, title, why.message, errors=errors, code=why.code,
                   field=why.field, params=why.params)


def problem_response(problem: Problem):
    body = {"type": PROBLEM_BASE + problem.slug, "title": problem.title,
            "status": problem.status, "detail": problem.detail}
    if problem.code is not None:
        body["code"] = problem.code
    if problem.field is not None:
        body["field"] = problem.field
    if problem.errors is not None:
        body["errors"] = problem.errors
    response = jsonify(body)
    response.status_code = problem.status
    response.content_type = "application/problem+json"
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def flatten_errors(messages, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages keyed by field path, e.g. `items.0.quantity`."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                path = prefix or "_schema"
            flat.update(flatten_errors(value, path))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat.setdefault(prefix or "_schema", []).extend(messages)
    else:
        flat.setdefault(prefix or "_schema", []).append(str(messages))
    return flat


def refusal_status(kind: str) -> int:
    """The HTTP status of a workflow refusal (ActionRefused) of this kind: the wrong
    stage (409), a role the workflow itself checks (403), values that do not fit the
    case (422); a change the read model refused to store is the server's fault (500)."""
    return {"WrongStage": 409, "TooMany": 409, "Forbidden": 403,
            PROJECTION_REFUSED: 500}.get(kind, 422)


def register(app: Flask) -> None:
    @app.errorhandler(Problem)
    def on_problem(err: Problem):
        return problem_response(err)

    @app.errorhandler(ValidationError)
    def on_validation(err: ValidationError):
        return problem_response(Problem(422, "Invalid request", "some fields are invalid",
                                        errors=flatten_errors(err.messages)))

    @app.errorhandler(ActionRefused)
    def on_refused(err: ActionRefused):
        # The workflow's validators say why: the wrong stage (409), a role the workflow
        # itself checks (403), or values that do not fit the case (422).
        # A change the read model refused to store is the server's fault, not the
        # caller's: 500, and the case is listed for operators.
        status = refusal_status(err.kind)
        title = ("Too many" if err.kind == "TooMany" else
                 {409: "Action not allowed", 403: "Forbidden",
                  500: "Not written"}.get(status, "Invalid action"))
        return problem_response(Problem(status, title, err.message, code=err.code,
                                        field=err.field))

    @app.errorhandler(CaseNotRunning)
    def on_ended(err: CaseNotRunning):
        return problem_response(Problem(409, "Action not allowed",
                                        "the case has ended and takes no more actions"))

    @app.errorhandler(TemporalUnavailable)
    def on_temporal(err: TemporalUnavailable):
        return problem_response(Problem(503, "Service unavailable", str(err),
                                        headers={"Retry-After": "5"}))

    @app.errorhandler(OperationalError)
    def on_database(err: OperationalError):
        log.warning("database unavailable: %s", err)
        return problem_response(Problem(503, "Service unavailable",
                                        "the database cannot be reached",
                                        headers={"Retry-After": "5"}))

    @app.errorhandler(HTTPException)
    def on_http(err: HTTPException):
        # Keep what the exception says about itself, e.g. `Allow` on a 405.
        headers = {k: v for k, v in err.get_headers() if k.lower() != "content-type"}
        return problem_response(Problem(err.code or 500, err.name, err.description or "",
                                        headers=headers))

    @app.errorhandler(Exception)
    def on_unexpected(err: Exception):
        log.exception("unexpected error")
        return problem_response(Problem(500, "Internal server error",
                                        "the error has been logged"))
