"""Idempotency-Key on POST requests: the same key and body answer the same, once.

The key is scoped to the calling user and kept with a hash of the request for 24 h.
The first request reserves the key before it runs, so a concurrent duplicate gets a
409 instead of running twice. Answers that say "try again" (5xx, 503) are not kept:
the client's retry with the same key runs the request again.

An action sends its Temporal update with an id made from the key (`update_id`), and
the server runs an update id once per case: so when the update timed out and the
outcome is unknown (`OutcomeUnknown`), the key stays reserved, marked so, and the
retry sends the same update again, which answers with the first outcome instead of
running the action twice.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
from datetime import UTC, datetime
from functools import wraps

from flask import current_app, g, make_response, request
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from db.cases import as_utc
from db.idempotency import KEY_LIFETIME
from db.links import answer_case, stored, with_link
from db.models import IdempotencyKey
from web.auth import current_user
from web.characters import text_problem
from web.gateway import OutcomeUnknown
from web.problems import Problem

MAX_KEY_LENGTH = 200
REPLAYED_HEADER = "Idempotent-Replayed"
KEPT_HEADERS = ("Location",)
# A reserved key whose request timed out with its outcome unknown: the retry runs it
# again (with the same update id). No answer of this status is ever kept otherwise.
OUTCOME_UNKNOWN = 503


def fingerprint() -> str:
    body = request.get_json(silent=True)
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")) \
        if body is not None else request.get_data(as_text=True)
    text = f"{request.method} {request.path}\n{canonical}"
    # A lone surrogate is refused at the door; should one come this far, it still hashes.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def idempotent(view):
    """Honour an `Idempotency-Key` header on this view."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        if not key.strip() or len(key) > MAX_KEY_LENGTH or text_problem(key):
            raise Problem(422, "Invalid request", "bad Idempotency-Key header",
                          errors={"Idempotency-Key": [f"1 to {MAX_KEY_LENGTH} characters, "
                                                     "no control characters"]})
        user = current_user().name
        sessions = current_app.extensions["aftersales"].sessions
        replayed, reserved_at = _reserve(sessions, user, key, fingerprint())
        if replayed is not None:
            return replayed
        g.update_id = _update_id(user, key, reserved_at)
        unknown = False
        try:
            response = make_response(view(*args, **kwargs))
        except OutcomeUnknown as err:
            unknown = True
            response = make_response(current_app.handle_user_exception(err))
        except Exception as err:
            response = make_response(current_app.handle_user_exception(err))
        if unknown:
            _mark_unknown(sessions, user, key)
        elif response.status_code >= 500:
            _release(sessions, user, key)
        else:
            _store(sessions, user, key, response)
        return response

    return wrapper


def update_id() -> str | None:
    """The Temporal update id for this request's action, when it has an
    Idempotency-Key."""
    return g.get("update_id")


# The case page's forms carry their own key in this hidden field (one per form shown,
# new_update_key), kept when a refused form is shown again: a second submit of the same
# form sends the same update id, so an action whose outcome was unknown is not run
# twice (web/desk.py).
UPDATE_KEY_FIELD = "update_key"
UPDATE_KEY_LENGTH = 32  # hex digits


def new_update_key() -> str:
    return secrets.token_hex(UPDATE_KEY_LENGTH // 2)


def form_update_id(user: str, key: str | None) -> str | None:
    """The update id of a form's submit with its key; None for a missing or malformed
    key (the action still runs, without the dedupe). Scoped to the user like a header's
    key."""
    if not key or len(key) != UPDATE_KEY_LENGTH or any(c not in string.hexdigits
                                                          for c in key):
        return None
    digest = hashlib.sha256(f"form\n{user}\n{key}".encode("utf-8", "surrogatepass"))
    return f"form-{digest.hexdigest()}"


def _update_id(user: str, key: str, reserved_at: datetime) -> str:
    # The reservation's time tells a key used again after it expired from the first use.
    micros = int(as_utc(reserved_at).timestamp() * 1_000_000)
    digest = hashlib.sha256(f"{user}\n{key}\n{micros}".encode("utf-8", "surrogatepass"))
    return f"idempotency-{digest.hexdigest()}"


def _reserve(sessions, user: str, key: str, print_: str):
    """Reserve the key: (None, when it was reserved); or (the stored answer, None) when
    this request was made before. A request whose outcome was unknown is run again under
    its first reservation."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        row = session.get(IdempotencyKey, (user, key))
        if row is not None and as_utc(row.created_at) + KEY_LIFETIME < now:
            session.delete(row)
            session.flush()
            row = None
        if row is None:
            session.add(IdempotencyKey(user_name=user, key=key, fingerprint=print_,
                                       created_at=now))
            try:
                session.flush()
            except IntegrityError:
                raise Problem(409, "Conflict", "a request with this Idempotency-Key is "
                              "being processed") from None
            return None, now
        if row.fingerprint != print_:
            raise Problem(409, "Conflict", "this Idempotency-Key was used with a different "
                          "request; use a new key for a new request")
        if row.status is None:
            raise Problem(409, "Conflict", "a request with this Idempotency-Key is still "
                          "being processed; retry shortly", headers={"Retry-After": "1"})
        if row.status == OUTCOME_UNKNOWN:
            row.status, row.response = None, None  # in progress again
            return None, row.created_at
        body = row.response
        if isinstance(body, dict):  # the case's status link is kept sealed (db/links.py)
            body = with_link(body, answer_case(body), current_app.extensions["aftersales"].links)
        response = make_response(body, row.status)
        for name, value in (row.headers or {}).items():
            response.headers[name] = value
        response.headers[REPLAYED_HEADER] = "true"
        return response, None


def _store(sessions, user: str, key: str, response) -> None:
    with sessions.begin() as session:
        row = session.get(IdempotencyKey, (user, key))
        if row is None:
            return
        row.status = response.status_code
        body = response.get_json()
        if isinstance(body, dict):
            body = stored(dict(body), answer_case(body),
                          current_app.extensions["aftersales"].links)
        row.response = body
        headers = {name: response.headers[name] for name in KEPT_HEADERS
                   if name in response.headers}
        headers["Content-Type"] = response.content_type
        row.headers = headers


def _mark_unknown(sessions, user: str, key: str) -> None:
    with sessions.begin() as session:
        row = session.get(IdempotencyKey, (user, key))
        if row is not None:
            row.status = OUTCOME_UNKNOWN


def _release(sessions, user: str, key: str) -> None:
    with sessions.begin() as session:
        session.execute(delete(IdempotencyKey).where(
            IdempotencyKey.user_name == user, IdempotencyKey.key == key))
