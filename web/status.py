"""The customer's view of one case through the private link; no login."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from flask import Blueprint, current_app

from db import cases as case_store
from db.cases import as_utc
from db.links import customer_url
from web.api import json_body
from web.commands import customer_action
from web.problems import Problem
from web.ratelimit import client_address
from web.representation import customer_json
from web.schemas import FeedbackSchema, QuoteAnswerSchema, ReplySchema

status = Blueprint("status", __name__)
LINK_LIFETIME_AFTER_CLOSE = timedelta(days=30)


def lookup_link(token: str):
    """The case behind a customer's link and its timeline, or (None, why, []) with why
    `unknown` or `expired`; guessing links is slowed down (Problem 429)."""
    state = current_app.extensions["aftersales"]
    client = client_address()
    state.link_limiter.check(client)
    with state.sessions() as session:
        row = case_store.get_case_by_token(session, token)
        if row is None:
            state.link_limiter.miss(client)
            return None, "unknown", []
        # A duplicate's link leads to the case it was merged into for as long as that
        # case's own link does.
        if row.closed_at is not None and not row.data.get("merged_into") and (
                datetime.now(UTC) > as_utc(row.closed_at) + LINK_LIFETIME_AFTER_CLOSE):
            return None, "expired", []
        events = case_store.timeline(session, row.id)
        session.expunge_all()
    return row, None, events


def survivor(row) -> dict | None:
    """The case a duplicate was merged into, as its customer reaches it: its id and its
    status link (None when the link cannot be read, e.g. after the secret key changed
    without its links carried over). None for a case that was not merged."""
    into = row.data.get("merged_into")
    if not into:
        return None
    state = current_app.extensions["aftersales"]
    with state.sessions() as session:
        target = case_store.get_case(session, into)
        url = customer_url(target.data, target.id, state.links) if target is not None else ""
    return {"case_id": into, "customer_url": url or None}


def _case_for(token: str):
    row, _why, events = lookup_link(token)
    if row is None:
        raise Problem(404, "Not found", "this link is unknown or has expired")
    return row, events


@status.get("/api/v1/status/<token>")
def view(token: str):
    row, events = _case_for(token)
    return customer_json(row, events, token, survivor(row))


# The POSTs look up the link before they read the body: an unknown link is 404 (and a
# guesser 429) for the price of its headers, whatever the body holds.


@status.post("/api/v1/status/<token>/feedback")
def feedback(token: str):
    _case_for(token)
    data = FeedbackSchema().load(json_body())
    return _send(token, "feedback", data)


@status.post("/api/v1/status/<token>/quote")
def quote(token: str):
    """The customer accepts or declines the repair quote (`{"decision": "accept"}`)."""
    _case_for(token)
    data = QuoteAnswerSchema().load(json_body())
    return _send(token, "quote", data)


@status.post("/api/v1/status/<token>/messages")
def message(token: str):
    """The customer writes; it answers the pending question when there is one."""
    return _write(token), 201


@status.post("/api/v1/status/<token>/reply")
def reply(token: str):
    """The first name of `messages`, kept for clients written against it."""
    return _write(token)


def limit_messages(token: str) -> None:
    """At most so many messages an hour through one link (429 beyond)."""
    limiter = current_app.extensions["aftersales"].message_limiter
    key = hashlib.sha256(token.encode()).hexdigest()
    limiter.check(key)
    limiter.miss(key)


def _write(token: str):
    _case_for(token)  # an unknown link is 404, not a message counted
    data = ReplySchema().load(json_body())
    limit_messages(token)
    return _send(token, "message", data)


def _send(token: str, action: str, data: dict):
    row, _ = _case_for(token)
    customer_action(row.id, action, data)
    row, events = _case_for(token)
    return customer_json(row, events, token)
