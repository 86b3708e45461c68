"""Which characters the app takes in text: checked once, at the door, for every request.

A NUL cannot be stored in a PostgreSQL text column; a lone surrogate (a JSON body may
carry `"\\ud800"`) cannot be encoded as UTF-8 at all. Either would reach the case
workflow and make every write of its projection fail. The other C0 controls (except
tab, line feed and carriage return) mean nothing in a name, a note or a message, are
not allowed in XML 1.0 (exports, provider APIs), and can rewrite a terminal a log is
read in; U+FFFE and U+FFFF are not characters. So the URL (path parts and query
string) and the pages' form fields are checked here before any view runs, and JSON
bodies where they are read, before their schema: the API answers 422 problem+json
naming the field, a page a page that says which field to correct.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from flask import Flask, render_template, request
from flask_babel import gettext as _

from web.problems import Problem

UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
REFUSAL = ("contains a control character (such as NUL) or an unpaired surrogate, which "
           "cannot be stored")
# Blueprints whose answers are JSON; every other view answers with a page.
JSON_BLUEPRINTS = ("api", "reports", "status", "webhooks", "evidence", "openapi", "health")


def unstorable_text(value: object) -> bool:
    return isinstance(value, str) and UNSTORABLE.search(value) is not None


def text_problem(value: str) -> str | None:
    """Why `value` cannot be taken as text, or None."""
    return REFUSAL if unstorable_text(value) else None


def unstorable(value: object, path: str = "") -> Iterator[str]:
    """The paths (`customer.name`, `items.0.reason`) of unstorable text in a decoded
    JSON value, a key counting as its value's path."""
    if isinstance(value, str):
        if unstorable_text(value):
            yield path or "_schema"
    elif isinstance(value, dict):
        for key, item in value.items():
            key_text = str(key)
            if unstorable_text(key_text):
                yield path or "_schema"  # the bad name itself is not repeated back
                continue
            yield from unstorable(item, f"{path}.{key_text}" if path else key_text)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unstorable(item, f"{path}.{index}" if path else str(index))


def _json_answer() -> bool:
    return request.blueprint in JSON_BLUEPRINTS or request.path.startswith("/api/")


def _refusal(fields: list[str]) -> Problem:
    return Problem(422, "Invalid request", "some fields contain characters that cannot be "
                   "stored", errors={name: [REFUSAL] for name in fields})


def refuse_unstorable_json(body: object) -> None:
    """Raise the 422 for a JSON body holding unstorable text. Called where a body is
    read (`json_body`, the webhook), after the caller is known: nobody unknown makes the
    server read a body."""
    fields = list(dict.fromkeys(unstorable(body)))
    if fields:
        raise _refusal(fields)


def refused_fields() -> list[str]:
    """The request's fields holding unstorable text, before any view: the path parts, the
    query string and, on the pages, the form fields (which the CSRF check reads next
    anyway, within the upload limits set before)."""
    found = list(unstorable(request.view_args or {}))
    multi = [request.args]
    if not _json_answer() and request.mimetype in ("application/x-www-form-urlencoded",
                                                   "multipart/form-data"):
        multi.append(request.form)
    for values in multi:
        for name, given in values.lists():
            if unstorable_text(name):
                found.append("_schema")
            elif any(unstorable_text(value) for value in given):
                found.append(name)
    return list(dict.fromkeys(found))


def refuse_unstorable_text():
    """A `before_request` hook: refuse the request if its URL or form holds unstorable
    text (JSON bodies: `refuse_unstorable_json`)."""
    fields = refused_fields()
    if not fields:
        return None
    if _json_answer():
        raise _refusal(fields)
    return render_template(
        "message.html", title=_("Some text cannot be taken"),
        back=request.referrer if request.referrer and request.referrer.startswith(
            request.host_url) else None,
        message=_("“%(fields)s” contains a control character that cannot be stored. Go "
                  "back, remove it and send again.", fields=", ".join(fields))), 422


def register(app: Flask) -> None:
    """After the blueprints (their upload limits apply first), before the CSRF check."""
    app.before_request(refuse_unstorable_text)
