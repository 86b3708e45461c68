"""The handler desk: the queue at `/desk` and the case page with one form per action
this user can take now.

Forms post to `/desk/cases/<id>/<action>`; the body goes through the same marshmallow
schema and the same permission and workflow checks as the REST API, and the result
(or the reason it was refused) is shown on the case page.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError
from marshmallow.fields import List

from db import accounts
from db import cases as case_store
from web.caseview import (
    ACTION_NAMES,
    available_actions,
    field_label,
    open_breach,
    progress,
)
from web.commands import perform_action
from web.gateway import ActionRefused, CaseNotRunning, TemporalUnavailable
from web.i18n import current_lang
from web.pages import staff_page
from web.problems import Problem, flatten_errors
from web.schemas import ACTION_SCHEMAS
from workflows.case.contracts import MAX_TAG_LENGTH
from workflows.case.vocabulary import KINDS, PRIORITIES, STAGES

desk = Blueprint("desk", __name__)
REPLIES_FILE = Path(__file__).parent / "content" / "replies.toml"
PER_PAGE = 50


def state():
    return current_app.extensions["aftersales"]


def page_context(**extra) -> dict:
    """Names every case template uses."""
    return {"now": datetime.now(UTC), "user": g.user, **extra}


@desk.get("/desk")
@staff_page("handler", "supervisor", "admin")
def queue():
    args = request.args
    filters = {
        "kind": args.get("kind") if args.get("kind") in KINDS else None,
        "priority": args.get("priority") if args.get("priority") in PRIORITIES else None,
        "stage": args.get("stage") if args.get("stage") in STAGES else None,
        "q": (args.get("q") or "").strip()[:100] or None,
        "tag": (args.get("tag") or "").strip()[:MAX_TAG_LENGTH] or None,
        "overdue": True if args.get("overdue") == "1" else None,
    }
    with state().sessions() as session:
        mine, mine_total, _next = case_store.list_cases(
            session, case_store.CaseFilter(assignee=g.user.name, open_only=True, **filters),
            sort="due", per_page=PER_PAGE, page=1)
        unassigned, unassigned_total, _next = case_store.list_cases(
            session, case_store.CaseFilter(unassigned=True, open_only=True, **filters),
            sort="due", per_page=PER_PAGE, page=1)
    return render_template(
        "desk.html", **page_context(
            mine=mine, mine_total=mine_total, unassigned=unassigned,
            unassigned_total=unassigned_total, filters=filters, KINDS=KINDS,
            PRIORITIES=PRIORITIES, STAGES=STAGES))


@desk.get("/desk/cases/<case_id>")
@staff_page("handler", "supervisor", "admin")
def case_page(case_id: str):
    now = datetime.now(UTC)
    with state().sessions() as session:
        row = case_store.get_case(session, case_id)
        if row is None:
            return render_template("message.html", title=_("No such case"),
                                   message=_("There is no case %(id)s.", id=case_id)), 404
        events = case_store.timeline(session, case_id)
        by_customer, by_order = case_store.related_cases(session, row)
        users = [u for u in accounts.list_users(session) if u.active]
        session.expunge_all()
    actions = available_actions(row, g.user.role, g.user.name, now)
    replies = reply_templates(row, current_lang())
    chosen = request.args.get("reply")
    prefill = {}
    if chosen:
        picked = next((r for r in replies if r["key"] == chosen), None)
        if picked:
            prefill[picked["action"]] = picked["text"]
    return render_template(
        "case.html", **page_context(
            case=row, data=row.data, events=events, actions=actions,
            progress=progress(row.stage, staff=True), breach=open_breach(row, now),
            by_customer=by_customer, by_order=by_order, users=users, replies=replies,
            prefill=prefill, PRIORITIES=PRIORITIES, KINDS=KINDS))


@desk.post("/desk/cases/<case_id>/<action>")
@staff_page("handler", "supervisor", "admin")
def act(case_id: str, action: str):
    back = redirect(url_for("desk.case_page", case_id=case_id))
    if action not in ACTION_SCHEMAS:
        flash(_("Unknown action."), "error")
        return back
    try:
        data = ACTION_SCHEMAS[action]().load(form_body(action, request.form))
        perform_action(case_id, action, data)
    except ValidationError as err:
        for field in flatten_errors(err.messages):
            flash(_("Check “%(field)s”: it is missing or not valid.",
                    field=field_label(field)), "error")
        return back
    except Problem as err:
        flash({403: _("Your role may not do that."), 404: _("There is no case %(id)s.",
                                                            id=case_id)}.get(
            err.status, _("Refused: %(why)s", why=err.detail)), "error")
        return back
    except ActionRefused as err:
        flash(_("Refused: %(why)s", why=err.message), "error")
        return back
    except CaseNotRunning:
        with state().sessions() as session:
            known = case_store.get_case(session, case_id) is not None
        flash(_("The case has ended and takes no more actions.") if known
              else _("There is no case %(id)s.", id=case_id), "error")
        return back
    except TemporalUnavailable:
        flash(_("The case service is not answering; nothing was changed. Try again in a "
                "moment."), "error")
        return back
    flash(_("Done: %(action)s.", action=ACTION_NAMES[action]), "success")
    return back


def form_body(action: str, form) -> dict:
    """The action's JSON body from the submitted form (empty fields left out, so the
    schema's defaults and required-field errors apply as in the API)."""
    def text(name: str) -> str | None:
        value = (form.get(name) or "").strip()
        return value or None

    def pick(*names: str) -> dict:
        return {n: v for n in names if (v := text(n)) is not None}

    if action == "resolve":
        resolution: dict = pick("type", "amount", "coupon_code")
        if text("points"):
            resolution["points"] = _int(text("points"))
        items = []
        for key in form:
            if key.startswith("qty:") and text(key):
                quantity = _int(text(key))
                if quantity != 0:
                    items.append({"sku": key[4:], "quantity": quantity})
        if items:
            resolution["items"] = items
        return {"resolution": resolution, **pick("note")}
    if action == "inspect":
        passed = form.get("passed")
        return {**({"passed": passed == "yes"} if passed in ("yes", "no") else {}),
                **pick("note")}
    body: dict = {}
    for name, schema_field in ACTION_SCHEMAS[action]().fields.items():
        if isinstance(schema_field, List):
            # A list field: repeated inputs (checkboxes) or one comma-separated text.
            body[name] = [v.strip() for raw in form.getlist(name) for v in raw.split(",")
                          if v.strip()]
        elif (value := text(name)) is not None:
            body[name] = value
    return body


def _int(value: str | None) -> int | str | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return value  # the schema says what is wrong with it


@cache
def _reply_entries() -> list[dict]:
    """The reply templates file, read once per process."""
    with REPLIES_FILE.open("rb") as f:
        return tomllib.load(f)["template"]


def reply_templates(row, lang: str) -> list[dict]:
    """The reply templates (话术) for this case's kind, in the page's language, with the
    case's details filled in."""
    entries = _reply_entries()
    values = {"customer": row.customer_name, "order_id": row.order_id, "case_id": row.id}
    chosen = []
    for entry in entries:
        if "*" not in entry["kinds"] and row.kind not in entry["kinds"]:
            continue
        chosen.append({"key": entry["key"], "action": entry["action"],
                       "title": entry["title"][lang],
                       "text": entry["text"][lang].format(**values)})
    return chosen
