"""How a case comes in, whichever door it uses: the API (`POST /api/v1/cases`), the
desk's new-case form (/desk/new), the customer's request page (/request) and its JSON
twin (`POST /api/v1/requests`). One way to build a case's input, one way to open it,
one way to read the order before the case exists, and one set of rules for what each
line of an order may be asked for (workflows/case/eligibility.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
from flask import current_app

from activities.order_system import order_from_json
from db import cases as case_store
from db import teams
from db.models import Case
from web.gateway import ActionRefused
from web.problems import Problem
from workflows.case.contracts import (
    PROJECTION_REFUSED,
    CaseInput,
    CaseItem,
    Customer,
    OrderSnapshot,
)
from workflows.case.eligibility import REFUSALS, LineOption, line_options
from workflows.case.vocabulary import ID_ALPHABET


def new_case_id() -> str:
    return "AS-" + "".join(secrets.choice(ID_ALPHABET) for _ in range(10))


def state():
    return current_app.extensions["aftersales"]


# ---------------------------------------------------------------- the order


class OrderSystemDown(Exception):
    """The order system did not answer; nothing can be shown or checked now."""


class UnknownOrder(Exception):
    """What was typed cannot be an order number (it does not make a URL)."""


class OrderDirectory:
    """The web's reads of the order system (docs/integrations.md): one order, and the
    orders of a phone number or email. Synchronous: Flask handlers are."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"),
                                  timeout=httpx.Timeout(timeout, connect=2.0))

    def close(self) -> None:
        self._http.close()

    def get(self, order_id: str) -> OrderSnapshot | None:
        response = self._call(f"/orders/{quote(order_id, safe='')}")
        if response.status_code == 404:
            return None
        return order_from_json(self._json(response))

    def search(self, phone: str = "", email: str = "") -> list[OrderSnapshot]:
        """The customer's orders, newest first (at most 20)."""
        params = {"phone": phone} if phone else {"email": email}
        response = self._call("/orders", params)
        if response.status_code == 422:
            return []
        return [order_from_json(o) for o in self._json(response)]

    def _call(self, path: str, params: dict | None = None) -> httpx.Response:
        try:
            response = self._http.get(path, params=params)
        except httpx.InvalidURL as err:
            raise UnknownOrder(str(err)) from err
        except httpx.HTTPError as err:
            raise OrderSystemDown(str(err)) from err
        if response.status_code >= 500:
            raise OrderSystemDown(f"the order system answered {response.status_code}")
        return response

    @staticmethod
    def _json(response: httpx.Response):
        if response.status_code != 200:
            raise OrderSystemDown(f"the order system answered {response.status_code}")
        return response.json()


def find_order(order_id: str) -> OrderSnapshot | None:
    """The order, or None if the order system does not know it (or what was typed cannot
    be an order number); 503 while it is down. The id goes into the URL escaped."""
    if not order_id or order_id in (".", ".."):
        return None
    try:
        return state().orders.get(order_id)
    except UnknownOrder:
        return None
    except OrderSystemDown as err:
        raise Problem(503, "Order system unavailable",
                      "the order system is not answering; try again in a moment",
                      headers={"Retry-After": "5"}) from err


def search_orders(contact: str) -> list[OrderSnapshot]:
    try:
        if "@" in contact:
            return state().orders.search(email=contact.strip())
        return state().orders.search(phone=contact.strip()) if digits(contact) else []
    except OrderSystemDown as err:
        raise Problem(503, "Order system unavailable",
                      "the order system is not answering; try again in a moment",
                      headers={"Retry-After": "5"}) from err


def digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def contact_matches(order: OrderSnapshot, contact: str) -> bool:
    """Is `contact` the phone number or the email on the order? Phones compare by their
    digits, with or without the country code or trunk zero (+86 138…, 138…;
    +44 20…, 020…), never by a short tail."""
    customer = order.customer
    if customer is None:
        return False
    contact = contact.strip()
    if "@" in contact:
        return bool(customer.email) and customer.email.strip().lower() == contact.lower()
    given, known = digits(contact).lstrip("0"), digits(customer.phone).lstrip("0")
    if len(given) < 7 or not known:
        return False
    shorter, longer = sorted((given, known), key=len)
    return given == known or (len(shorter) >= 10 and len(longer) - len(shorter) <= 3
                              and longer.endswith(shorter))


@dataclass
class OrderView:
    """An order as the intake pages show it: its lines with what each allows now, and
    the cases already open on it."""

    order: OrderSnapshot
    lines: list[LineOption]
    open_cases: list[Case]


def order_view(order: OrderSnapshot) -> OrderView:
    st = state()
    with st.sessions() as session:
        returned = case_store.returned_quantities(session, order.id)
        open_ids = case_store.open_cases_on_order(session, order.id)
        open_cases = [c for c in (case_store.get_case(session, i) for i in open_ids) if c]
        session.expunge_all()
    return OrderView(order, line_options(order, datetime.now(UTC), st.policy, returned),
                     open_cases)


def check_items(view: OrderView, kind: str, items: list[dict],
                strict: bool) -> dict[str, list[str]]:
    """Field errors for the requested lines, keyed like the body (`items.0.quantity`):
    a SKU not on the order and a quantity above what is left are always errors; a kind
    the line does not allow now only with `strict` (the customer's doors; staff may
    open an ineligible case, which then needs a supervisor to move goods)."""
    by_sku = {line.sku: line for line in view.lines}
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()
    for n, item in enumerate(items):
        line = by_sku.get(item["sku"])
        if line is None:
            errors[f"items.{n}.sku"] = [f"{item['sku']} is not on order {view.order.id}"]
            continue
        if item["sku"] in seen:
            errors[f"items.{n}.sku"] = [f"{item['sku']} is listed twice"]
            continue
        seen.add(item["sku"])
        if item["quantity"] > (line.bought if kind == "complaint" else line.left):
            errors[f"items.{n}.quantity"] = [
                f"{item['sku']}: {item['quantity']} asked, {line.bought} bought, "
                f"{line.left} not yet returned"]
        elif strict and kind in line.refused:
            errors[f"items.{n}"] = [f"{item['sku']}: no {kind}: "
                                    f"{REFUSALS[line.refused[kind]]}"]
    return errors


# ---------------------------------------------------------------- opening a case


def case_input(kind: str, channel: str, order_id: str, customer: Customer,
               items: list[CaseItem], description: str, opened_by: str,
               priority: str | None = None) -> CaseInput:
    """A new case's workflow input: fresh id and status token, the policy in force, and
    what the read model knows of earlier cases (repeats raise the priority)."""
    st = state()
    since = datetime.now(UTC) - timedelta(seconds=st.policy.priority.repeat_window)
    with st.sessions() as session:
        earlier = case_store.open_case_on_order(session, order_id, kind)
        recent = case_store.recent_cases(session, customer.id, order_id, since)
        returned = case_store.returned_quantities(session, order_id) if order_id else {}
        # Every team that assigns: which one takes the case is the workflow's to say,
        # after it has read the order and scored the priority.
        rosters = teams.rosters(session, [rule.name for rule in st.routing.teams
                                          if rule.assign != "none"])
    token = secrets.token_urlsafe(24)
    return CaseInput(
        case_id=new_case_id(), kind=kind, channel=channel, order_id=order_id,
        customer=customer, items=items, description=description, status_token=token,
        customer_url=f"{st.settings.public_url}/s/{token}", policy=st.policy,
        opened_by=opened_by, priority=priority,
        repeat_of=earlier.id if earlier else None, recent_cases=recent, returned=returned,
        routing=st.routing, rosters=rosters)


def open_case(inp: CaseInput) -> Case:
    """Start the case and wait for its record stage; the read model's row."""
    st = state()
    try:
        st.gateway.open_case(inp)
    except ActionRefused as err:
        if err.kind == PROJECTION_REFUSED:
            raise  # the server's fault (500), not the request's
        if err.kind == "OrderNotFound":
            raise Problem(422, "Unknown order", err.message,
                          errors={"order_id": [err.message]}) from err
        raise Problem(422, "Case refused", err.message) from err
    with st.sessions() as session:
        row = case_store.get_case(session, inp.case_id)
        if row is None:
            raise Problem(503, "Case not yet visible", f"case {inp.case_id} was opened but "
                          "is not in the read model yet; read it again shortly",
                          headers={"Retry-After": "2"})
        session.expunge(row)
    return row


def orderless_customer_id(phone: str, email: str) -> str:
    """A customer without an order is known by their contact: the same phone or email
    is the same customer (repeat detection, the customer's other cases)."""
    import hashlib

    contact = digits(phone) or email.strip().lower()
    return "walk-in-" + hashlib.sha256(contact.encode()).hexdigest()[:12]


def same_open_request(order_id: str, kind: str, items: list[dict]) -> Case | None:
    """An open case on this order asking for the same (kind, lines): the customer sent
    the same request again (a double tap, a retry), so no second case."""
    wanted = sorted((i["sku"], i["quantity"]) for i in items)
    with state().sessions() as session:
        row = case_store.open_case_on_order(session, order_id, kind)
        if row is None:
            return None
        if sorted((i["sku"], i["quantity"]) for i in row.data.get("items", [])) != wanted:
            return None
        session.expunge(row)
    return row


def suggest(description: str, channel: str):
    """The triage model's suggestions for a description (docs/triage.md)."""
    from activities.triage import model_path
    from activities.triage.model import shared_model

    return shared_model(model_path(state().settings.triage_model)).suggest(description,
                                                                            channel)


def quantity(value: str | None) -> int:
    """A form's quantity field: a whole number, 0 when empty or not a number."""
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0
