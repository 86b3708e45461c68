"""The customer's own door: the request page at /request (public, mobile first) and its
JSON twin, `POST /api/v1/requests`.

A customer proves the order is theirs with its number and the phone number or email
on it (and, with AFTERSALES_REQUEST_CODES=1, a one-time code sent there), then asks
for a return, refund, exchange, repair or complaint on some of its lines, with photos.
A wrong order number and a wrong contact get the same answer, so neither can be
probed, and failed proofs are limited per client address and per order (429).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from marshmallow import ValidationError

from activities.notifications import OutboxDelivery
from db import codes
from db import outbox as outbox_store
from db.links import customer_url
from db.models import Case
from web import evidence, intake
from web.api import json_body
from web.gateway import ActionRefused, CaseNotRunning, TemporalUnavailable
from web.i18n import html_lang
from web.intake import OrderView, state
from web.problems import Problem, flatten_errors
from web.ratelimit import client_address
from web.schemas import RequestLookupSchema, RequestSchema
from workflows.case.contracts import CaseItem, Customer, OrderSnapshot
from workflows.case.vocabulary import KINDS

selfservice = Blueprint("selfservice", __name__)
# How long a proven order stays open in the page's session for step two.
PROOF_LIFETIME = timedelta(minutes=30)
NOT_FOUND = "no order with this number and this phone number or email"


def masked(contact: str) -> str:
    """Enough of a phone or email to recognise it, not to learn it."""
    if "@" in contact:
        name, _, domain = contact.partition("@")
        return f"{name[:1]}***@{domain}"
    digits = intake.digits(contact)
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) >= 7 else "****"


# ---------------------------------------------------------------- proving the order


def prove_order(order_id: str, contact: str) -> OrderSnapshot:
    """The order, if `contact` is its phone or email; one 404 for either part wrong,
    429 once this client or this order has had too many misses."""
    st = state()
    client = client_address()
    st.request_limiter.check(client)
    st.order_limiter.check(order_id)
    order = intake.find_order(order_id)
    if order is None or not intake.contact_matches(order, contact):
        st.request_limiter.miss(client)
        st.order_limiter.miss(order_id)
        raise Problem(404, "Not found", NOT_FOUND)
    return order


def own_address(order: OrderSnapshot, contact: str) -> tuple[str, str]:
    """(medium, address): the order's own email or phone, the one `contact` proved, as
    the order system has it. Codes are sent there and keyed by it."""
    customer = order.customer
    assert customer is not None  # contact_matches needs it
    return ("email", customer.email) if "@" in contact else ("message", customer.phone)


def check_code(order: OrderSnapshot, contact: str, code: str | None, consume: bool) -> None:
    """With request codes on: the code sent to this order's address, else 422 (429 once
    it has had its five tries). A wrong code counts as a miss of this client and this
    order, like a wrong contact; with `consume` the code is used up."""
    st = state()
    if not st.settings.request_codes:
        return
    _medium, address = own_address(order, contact)
    with st.sessions.begin() as db:
        try:
            codes.verify(db, order.id, address, code, datetime.now(UTC), consume=consume)
        except codes.CodeRefused as err:
            refused = err
        else:
            return
    if refused.why == "wrong":
        st.request_limiter.miss(client_address())
        st.order_limiter.miss(order.id)
    if refused.why == "exhausted":
        raise Problem(429, "Too many requests", "too many wrong codes: ask for a new code",
                      headers={"Retry-After": str(int(codes.RESEND_AFTER.total_seconds()))})
    detail = {"missing": "a code is needed: ask for one with POST /api/v1/requests/code",
              "expired": "the code has expired: ask for a new one",
              "used": "the code has been used: ask for a new one",
              "wrong": f"wrong code; {refused.tries_left} tries left"}[refused.why]
    raise Problem(422, "Invalid request", detail, errors={"code": [detail]})


def send_code(order: OrderSnapshot, contact: str) -> str:
    """Send a fresh code to the order's own phone or email (the one `contact` matched);
    returns where, masked. 429 when one was sent less than a minute ago, or this order
    has had its codes for the hour. Once sent, the code is dropped from the outbox
    row: only its hash stays."""
    st = state()
    now = datetime.now(UTC)
    medium, address = own_address(order, contact)
    st.code_limiter.check(order.id)
    try:
        with st.sessions.begin() as db:
            code = codes.issue(db, order.id, address, now)
            key = f"code:{secrets.token_hex(12)}"  # each code its own message
            outbox_store.add_message(db, key, now, "contact", f"{medium}:{address}",
                                     "request_code", {
                                         "code": code, "order_id": order.id,
                                         "minutes": int(codes.CODE_LIFETIME.total_seconds()
                                                        // 60),
                                         "locale": html_lang()})
    except codes.TooSoon as err:
        raise Problem(429, "Too many requests", "a code was sent moments ago; wait before "
                      "asking for another", headers={"Retry-After": str(err.retry_after)}
                      ) from err
    st.code_limiter.miss(order.id)  # counted: each code sent
    report = OutboxDelivery(st.sessions, st.settings).deliver([key])
    if key in report.result.sent or key in report.result.unreachable:
        with st.sessions.begin() as db:
            outbox_store.redact(db, key, ("code",))
    return masked(address)


# ---------------------------------------------------------------- the request


@dataclass
class Submitted:
    case: Case
    created: bool


def submit(order: OrderSnapshot, data: dict, photos: list,
           claim: Callable[[], None] | None = None) -> Submitted:
    """Open the case the customer asked for (photos already checked), or find the same
    open request and add the photos to it. Refuses lines the order does not allow now
    (422 naming them). `claim` (using up a one-time code) runs once the request is
    known to be possible, before anything opens."""
    view = intake.order_view(order)
    errors = intake.check_items(view, data["kind"], data["items"], strict=True)
    if errors:
        raise Problem(422, "Not possible for these lines", "; ".join(
            m for ms in errors.values() for m in ms), errors=errors)
    if claim is not None:
        claim()
    existing = intake.same_open_request(order.id, data["kind"], data["items"])
    if existing is not None:
        for prepared in photos[:evidence.room_left(existing)]:
            evidence.attach(existing.id, prepared, None, True, existing)
        return Submitted(existing, False)
    limiter = state().submit_limiter
    limiter.check(client_address())
    limiter.miss(client_address())  # counted: each case a public door opens
    known = order.customer or Customer(id=order.customer_id, name="")
    contact = data["contact"].strip()
    customer = Customer(
        id=known.id or order.customer_id, name=known.name,
        email=known.email or (contact if "@" in contact else ""), phone=known.phone,
        tier=known.tier,
        locale=data.get("locale") or html_lang() or state().settings.default_locale)
    row = intake.open_case(intake.case_input(
        kind=data["kind"], channel="web", order_id=order.id, customer=customer,
        items=[CaseItem(**item) for item in data["items"]],
        description=data["description"], opened_by="customer"))
    for prepared in photos:
        evidence.attach(row.id, prepared, None, True)
    return Submitted(row, True)


def link_of(row: Case) -> str:
    """The case's status link, opened from its sealed copy (db/links.py)."""
    return customer_url(row.data, row.id, state().links)


def status_path(row: Case) -> str:
    return urlsplit(link_of(row)).path


# ---------------------------------------------------------------- JSON


@selfservice.post("/api/v1/requests/code")
def request_code():
    data = RequestLookupSchema().load(json_body())
    if not state().settings.request_codes:
        raise Problem(404, "Not found", "this service sends no codes: send the request "
                      "without one")
    order = prove_order(data["order_id"], data["contact"])
    return {"sent_to": send_code(order, data["contact"]),
            "expires_in": int(codes.CODE_LIFETIME.total_seconds())}, 202


@selfservice.post("/api/v1/requests")
def create_request():
    data = RequestSchema().load(json_body())
    order = prove_order(data["order_id"], data["contact"])
    check_code(order, data["contact"], data.get("code"), consume=False)
    done = submit(order, data, [], claim=lambda: check_code(
        order, data["contact"], data.get("code"), consume=True))
    body = {"case_id": done.case.id, "customer_url": link_of(done.case)}
    return body, 201 if done.created else 200


# ---------------------------------------------------------------- the page


def _proof() -> dict | None:
    """The order this browser proved in step one, while it is fresh."""
    proof = session.get("request_proof")
    if not proof:
        return None
    if datetime.now(UTC) - datetime.fromisoformat(proof["at"]) > PROOF_LIFETIME:
        session.pop("request_proof", None)
        return None
    return proof


def _step_one(status: int = 200, **context) -> tuple[str, int]:
    values = {"order_id": "", "contact": "", **context.pop("values", {})}
    return render_template("request.html", step=1, values=values,
                           codes=state().settings.request_codes, **context), status


@selfservice.get("/request")
def page():
    return _step_one()


@selfservice.post("/request")
def prove():
    values = {"order_id": (request.form.get("order_id") or "").strip(),
              "contact": (request.form.get("contact") or "").strip()}
    try:
        data = RequestLookupSchema().load(values)
        order = prove_order(data["order_id"], data["contact"])
        if state().settings.request_codes:
            code = (request.form.get("code") or "").strip()
            if not code:
                where = send_code(order, data["contact"])
                return _step_one(values=values, code_sent_to=where)
            check_code(order, data["contact"], code, consume=True)
    except ValidationError as err:
        return _step_one(422, values=values, errors=flatten_errors(err.messages))
    except Problem as err:
        message = {
            404: _("We found no order with this number and this phone number or email. "
                   "Please check both."),
            429: _("Too many attempts. Please wait a few minutes and try again."),
            503: _("We cannot look up orders just now. Please try again in a moment."),
        }.get(err.status, _("Please check the code we sent and try again."))
        return _step_one(err.status if err.status != 422 else 422, values=values,
                         error=message, code_sent_to=request.form.get("code_sent_to"))
    session["request_proof"] = {"order_id": order.id, "contact": data["contact"],
                                "at": datetime.now(UTC).isoformat()}
    return redirect(url_for("selfservice.lines"))


def _step_two(view: OrderView, status: int = 200, **context) -> tuple[str, int]:
    return render_template("request.html", step=2, view=view, order=view.order,
                           KINDS=KINDS, values=context.pop("values", {}),
                           **context), status


@selfservice.get("/request/lines")
def lines():
    proof = _proof()
    if proof is None:
        return redirect(url_for("selfservice.page"))
    order = intake.find_order(proof["order_id"])
    if order is None:
        return redirect(url_for("selfservice.page"))
    return _step_two(intake.order_view(order))


@selfservice.post("/request/lines")
def send_request():
    proof = _proof()
    if proof is None:
        flash(_("Please start again: enter your order number and phone number or email."),
              "error")
        return redirect(url_for("selfservice.page"))
    order = intake.find_order(proof["order_id"])
    if order is None:
        return redirect(url_for("selfservice.page"))
    view = intake.order_view(order)
    form = request.form
    values = {key: form.get(key, "") for key in form}
    items = []
    for line in view.lines:
        quantity = intake.quantity(form.get(f"qty_{line.sku}"))
        if quantity:
            items.append({"sku": line.sku, "quantity": quantity,
                          "reason": (form.get("reason") or "").strip()})
    body = {"order_id": order.id, "contact": proof["contact"],
            "kind": form.get("kind") or "", "items": items,
            "description": (form.get("description") or "").strip(),
            "locale": html_lang()}
    try:
        data = RequestSchema().load(body)
        state().submit_limiter.check(client_address())  # before any file is read
        files = evidence.read_files("photos", min(evidence.REQUEST_FILES,
                                                  state().settings.max_files))
        photos = [evidence.check_file(content, name) for content, name in files]
        done = submit(order, data, photos)
    except ValidationError as err:
        errors = flatten_errors(err.messages)
        if "items" in errors:
            errors = {"items": [_("Choose at least one item and how many.")]}
        return _step_two(view, 422, values=values, errors=errors)
    except Problem as err:
        return _step_two(view, err.status, values=values, errors=err.errors or {},
                         error=page_error(err))
    except (ActionRefused, CaseNotRunning, TemporalUnavailable):
        return _step_two(view, 503, values=values,
                         error=_("We cannot take requests just now. Please try again in a "
                                 "moment."))
    session.pop("request_proof", None)
    return redirect(status_path(done.case))


def page_error(err: Problem) -> str:
    """A refusal in the page's language (the API's English detail is for integrators)."""
    if "file" in (err.errors or {}) or "photos" in (err.errors or {}) or err.status == 415:
        return evidence.refusal_words(err)
    if any(key.startswith("items") for key in err.errors or {}):
        return _("Some of the items you chose cannot be asked for now; see the notes next "
                 "to them.")
    return {
        503: _("We cannot take requests just now. Please try again in a moment."),
        429: _("Too many attempts. Please wait a few minutes and try again."),
    }.get(err.status, _("Your request could not be sent. Please check it and try again."))

