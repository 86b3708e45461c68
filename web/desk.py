"""The handler desk: the queue at `/desk` and the case page with one form per action
this user can take now.

Forms post to `/desk/cases/<id>/<action>`; the body goes through the same marshmallow
schema and the same permission and workflow checks as the REST API, and the result
(or the reason it was refused) is shown on the case page.
"""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from marshmallow import ValidationError
from marshmallow.fields import List, Nested
from marshmallow.validate import OneOf
from werkzeug.datastructures import MultiDict

from db import accounts, digests, teams
from db import cases as case_store
from db.links import customer_url
from web import evidence, intake
from web.auth import NOT_YOUR_CASE, PERMISSIONS
from web.caseview import (
    ACTION_NAMES,
    LOCALE_NAMES,
    REMEDY_ROWS,
    available_actions,
    field_label,
    may_act,
    may_attach,
    open_breach,
    progress,
    split_actions,
    thread,
)
from web.commands import perform_action
from web.export import export_cases
from web.gateway import ActionRefused, CaseNotRunning, OutcomeUnknown, TemporalUnavailable
from web.i18n import current_lang
from web.idempotency import UPDATE_KEY_FIELD, form_update_id, new_update_key
from web.pages import staff_page
from web.problems import Problem, flatten_errors, refusal_status
from web.reasons import say_refusal
from web.schemas import ACTION_SCHEMAS, CaseCreateSchema
from workflows.case.contracts import MAX_TAG_LENGTH, Actor, CaseItem, Customer
from workflows.case.lifecycle import BY_NAME
from workflows.case.vocabulary import (
    CHANNELS,
    ENDED_STAGES,
    GOODS_RESOLUTIONS,
    KINDS,
    LOCALES,
    PRIORITIES,
    STAGES,
    Status,
)

desk = Blueprint("desk", __name__)
REPLIES_FILE = Path(__file__).parent / "content" / "replies.toml"
PER_PAGE = 50
# The search box takes this many characters (ids, phones and names are far shorter).
MAX_SEARCH = 100
# The ways a customer reaches a handler ("system" is Aftersales' own).
STAFF_CHANNELS = tuple(c for c in CHANNELS if c != "system")


def state():
    return current_app.extensions["aftersales"]


def page_context(**extra) -> dict:
    """Names every case template uses."""
    return {"now": datetime.now(UTC), "user": g.user, "MAX_SEARCH": MAX_SEARCH, **extra}


@desk.get("/desk")
@staff_page("handler", "supervisor", "admin")
def queue():
    if "q" in request.args:
        return search(request.args.get("q", ""))
    return render_template("desk.html", **desk_context(request.args))


@desk.get("/desk/lists")
@staff_page("handler", "supervisor", "admin")
def lists_fragment():
    """The desk's two lists alone, with the page's filters: what the desk's script
    (static/desk.js) fetches to keep them current without reloading the page."""
    return render_template("_desk_lists.html", **desk_context(request.args))


# How often the open desk asks for its lists again (static/desk.js), in seconds.
REFRESH_SECONDS = 30


def desk_context(args) -> dict:
    """What the desk page and its lists fragment show: the first cases of each list."""
    filters = desk_filters(args)
    with state().sessions() as session:
        lists = desk_lists(session, filters)
        mine, mine_total, _next = case_store.list_cases(
            session, lists["mine"], sort="due", per_page=PER_PAGE, page=1)
        unassigned, unassigned_total, _next = case_store.list_cases(
            session, lists["unassigned"], sort="due", per_page=PER_PAGE, page=1)
    return page_context(
        mine=mine, mine_total=mine_total, unassigned=unassigned,
        unassigned_total=unassigned_total, filters=filters,
        export_args=query_args(filters), KINDS=KINDS,
        PRIORITIES=PRIORITIES, STAGES=STAGES, refresh_seconds=REFRESH_SECONDS,
        TEAMS=[rule.name for rule in state().routing.teams],
        DIGEST_CHOICES=digest_choices())


def every(seconds: int) -> str:
    """An interval as the desk says it: "every 15 minutes", "every 2 hours"."""
    if seconds % 3600 == 0:
        return ngettext("every hour", "every %(num)d hours", seconds // 3600)
    return ngettext("every minute", "every %(num)d minutes", seconds // 60)


def digest_choices() -> list[tuple[str, str]]:
    """The warning digest's intervals a user may choose (db/digests.CHOICES), as the
    select's (value, label); "" is the settings' interval."""
    default = _("as set for everyone (%(interval)s)",
                interval=every(state().settings.digest_interval))
    return [("", default)] + [(str(s), every(s)) for s in digests.CHOICES]


def search(raw: str):
    """The search box: every case the query means, whoever holds it and in whatever
    state, newest first, a page at a time (db/search.py says what a query matches).
    Reading any case is every staff role's; acting stays with its owners."""
    query = raw.strip()
    problem = search_problem(raw)
    if problem:
        return render_template("desk_search.html", **page_context(
            query=query[:MAX_SEARCH], problem=problem, results=[], total=0,
            page=1, pages=1)), 400
    page = page_number(request.args.get("page"))
    with state().sessions() as session:
        results, total, _next = case_store.list_cases(
            session, case_store.CaseFilter(q=query), sort="created", per_page=PER_PAGE,
            page=page)
    pages = max(1, -(-total // PER_PAGE))
    return render_template("desk_search.html", **page_context(
        query=query, problem=None, results=results, total=total, page=page,
        pages=pages))


def search_problem(raw: str) -> str | None:
    """Why the search box cannot search for this, in the page's words; None if it can."""
    query = raw.strip()
    if not query:
        return _("Type what to look for: a case id, an order number, a phone number, a "
                 "waybill number or part of the customer's name.")
    if len(query) > MAX_SEARCH:
        return _("The search is too long: at most %(max)s characters; ids, phones and "
                 "names are shorter.", max=MAX_SEARCH)
    if any(unicodedata.category(c) == "Cc" for c in raw):
        return _("The search holds a control character (a tab, a line break or an "
                 "invisible code); type it again without.")
    return None


def page_number(raw: str | None) -> int:
    """A list's page from the query string: 1 unless a sensible number is given."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and 0 < int(raw) <= 10000 \
        else 1


def desk_filters(args) -> dict:
    """The desk's filters from its query string; a value it does not know is no filter."""
    return {
        "kind": args.get("kind") if args.get("kind") in KINDS else None,
        "priority": args.get("priority") if args.get("priority") in PRIORITIES else None,
        "stage": args.get("stage") if args.get("stage") in STAGES else None,
        "q": (args.get("q") or "").strip()[:100] or None,
        "tag": (args.get("tag") or "").strip()[:MAX_TAG_LENGTH] or None,
        "overdue": True if args.get("overdue") == "1" else None,
        **team_filters(args),
    }


def query_args(filters: dict) -> dict:
    """A page's filters as the query string that sets them again (its export link)."""
    return {name: "1" if value is True else value for name, value in filters.items()
            if value is not None}


def desk_lists(session, filters: dict) -> dict[str, case_store.CaseFilter]:
    """The desk's two lists for the signed-in user, narrowed by `filters`: the page
    shows their first cases, the "Export CSV" links all of them."""
    # The queue a user can take from: their teams' (and cases of no team); an admin
    # may act on any case, so theirs is every team's.
    queue_of = () if g.user.role == "admin" else tuple(teams.teams_of(session, g.user.name))
    return {
        "mine": case_store.CaseFilter(assignee=g.user.name, open_only=True, **filters),
        "unassigned": case_store.CaseFilter(unassigned=True, open_only=True,
                                            queue_of=queue_of, **filters),
    }


@desk.get("/desk/export.csv")
@staff_page("handler", "supervisor", "admin")
def export():
    """One of the desk's lists (`list`: mine or unassigned), every case of it, as CSV."""
    filters = desk_filters(request.args)
    which = request.args.get("list")
    with state().sessions() as session:
        lists = desk_lists(session, filters)
    if which not in lists:
        return render_template("message.html", title=_("No such list"), message=_(
            "The desk has no list “%(name)s”.", name=which or "")), 404
    return export_cases(lists[which], "due", {"list": which, **query_args(filters)},
                        f"desk-{which}")


def team_filters(args) -> dict:
    """The lists' `team` and `store` filters from a page's query string (docs/teams.md)."""
    return {"team": (args.get("team") or "").strip()[:40] or None,
            "store": (args.get("store") or "").strip()[:64] or None}


@desk.post("/desk/duty")
@staff_page("handler", "supervisor", "admin")
def duty():
    """The desk's on-duty/away switch: away, routing gives the user no new cases."""
    on_duty = request.form.get("on_duty") == "1"
    with state().sessions.begin() as session:
        accounts.set_on_duty(session, g.user.name, on_duty)
    g.user.on_duty = on_duty
    return redirect(url_for("desk.queue"))


@desk.post("/desk/digest")
@staff_page("handler", "supervisor", "admin")
def digest():
    """The desk's preference: how often the user's SLA warnings come, in one digest
    (docs/notifications.md, "Quiet warnings"). Only the offered intervals are taken."""
    value = request.form.get("digest_interval", "")
    offered = {str(s): s for s in digests.CHOICES}
    if value != "" and value not in offered:
        return render_template("message.html", title=_("Not saved"), message=_(
            "Choose one of the offered intervals for your warning digest.")), 400
    seconds = offered.get(value)
    with state().sessions.begin() as session:
        digests.set_interval(session, g.user.name, seconds)
    g.user.digest_interval = seconds
    flash(_("Your SLA warnings now come in one email %(interval)s at most.",
            interval=every(seconds or state().settings.digest_interval)))
    return redirect(url_for("desk.queue"))


@desk.get("/desk/cases/<case_id>")
@staff_page("handler", "supervisor", "admin")
def case_page(case_id: str):
    return render_case(case_id)


def render_case(case_id: str, status: int = 200, refused: Refused | None = None):
    """The case page: the request, the customer and the order, and the stage's main
    action in the first screen; the other actions behind "more". `refused`: a form
    whose submit was refused, shown open again with what was typed and why."""
    now = datetime.now(UTC)
    g.page_path = url_for("desk.case_page", case_id=case_id)
    with state().sessions() as session:
        row = case_store.get_case(session, case_id)
        if row is None:
            return render_template("message.html", title=_("No such case"),
                                   message=_("There is no case %(id)s.", id=case_id)), 404
        events = case_store.timeline(session, case_id)
        by_customer, by_order = case_store.related_cases(session, row)
        # Duplicates merged into this case: their timelines and files stay theirs, and
        # are reached from here.
        merged = [m for m in (case_store.get_case(session, i)
                              for i in row.data.get("merged_from") or []) if m is not None]
        users = [u for u in accounts.list_users(session) if u.active]
        user_teams = teams.teams_of(session, g.user.name)
        # Just done (act() below): the next case of the user's queue is offered.
        done = get_flashed_messages(category_filter=["done"])
        following = next_in_queue(session, case_id) if done else None
        session.expunge_all()
    actions = available_actions(row, g.user.role, g.user.name, user_teams, now)
    main_action, more_actions = split_actions(actions)
    if refused is not None and refused.action not in actions and refused.action in BY_NAME:
        # The case moved meanwhile: the form is shown all the same, with what was typed
        # in it and why it cannot be done now, so not a word is lost.
        more_actions.append(refused.action)
    replies = reply_templates(row, current_lang())
    # What each form shows typed in it: what was submitted when a submit was refused,
    # else a reply template chosen without the script (?reply=<key>), else nothing.
    typed: dict[str, MultiDict] = {}
    chosen = request.args.get("reply")
    picked = next((r for r in replies if r["key"] == chosen), None) if chosen else None
    if picked:
        typed[picked["action"]] = MultiDict({**picked["fields"],
                                             picked["field"]: picked["text"]})
    if refused is not None:
        typed[refused.action] = refused.typed
    open_action = (refused.action if refused else picked["action"] if picked
                   else next((a for a in done if a in actions), None))
    files = [{**f, "url": evidence.desk_file_url(case_id, f),
              "thumbnail_url": evidence.desk_file_url(case_id, f, thumbnail=True)
              if f.get("thumbnail_sha256") else None}
             for f in row.data.get("attachments") or []]
    duplicates = [{"case": m, "files": [{**f, "url": evidence.desk_file_url(m.id, f)}
                                        for f in m.data.get("attachments") or []]}
                  for m in merged]
    context = page_context(
            case=row, data=row.data, events=events, actions=actions,
            main_action=main_action, more_actions=more_actions, open_action=open_action,
            typed_by_action=typed, no_values=MultiDict(), refused=refused,
            new_update_key=new_update_key, UPDATE_KEY_FIELD=UPDATE_KEY_FIELD,
            done=[done_words(row, a) for a in done if a in ACTION_NAMES],
            next_case=following,
            mine_to_act=may_act(row, g.user.role, g.user.name, user_teams),
            can_attach=may_attach(row, g.user.role, g.user.name, user_teams, now),
            customer_url=customer_url(row.data, row.id, state().links),
            thread=thread(row.data.get("messages") or [], files),
            progress=progress(row.stage, staff=True), breach=open_breach(row, now),
            by_customer=by_customer, by_order=by_order, users=users, replies=replies,
            replies_lang_name=LOCALE_NAMES[customer_locale(row)], duplicates=duplicates,
            PRIORITIES=PRIORITIES, KINDS=KINDS)
    html = render_template("case.html", **context)
    if refused is not None:
        # A reason about a field the form does not show (the workflow names the input it
        # refused, say `items`, which the page asks as one box per line) goes to the
        # form's head: a reason is never rendered nowhere.
        unseen = [why for name, why in refused.field_errors.items()
                  if f'id="{refused.action}-{name}-error"' not in html]
        if unseen:
            context["refused"] = replace(refused, form_error=" ".join(
                filter(None, [refused.form_error, *unseen])))
            html = render_template("case.html", **context)
    return html, status


def next_in_queue(session, case_id: str):
    """The case after this one in the user's queue: the first of the desk's "my cases"
    list (the same filter and order) that is not this one; None when there is none."""
    rows, _total, _next = case_store.list_cases(
        session, desk_lists(session, {})["mine"], sort="due", per_page=2, page=1)
    return next((r for r in rows if r.id != case_id), None)


@desk.get("/desk/customers/<path:customer_id>")
@staff_page("handler", "supervisor", "admin")
def customer(customer_id: str):
    """All cases of one customer (the customer id the cases carry, as repeat_of and the
    merge action read it): open and closed, their orders and ratings."""
    with state().sessions() as session:
        cases = case_store.customer_cases(session, customer_id)
        session.expunge_all()
    if not cases:
        return render_template("message.html", title=_("No such customer"), message=_(
            "No case is of customer %(id)s.", id=customer_id[:64])), 404
    orders: dict[str, list] = {}
    for row in cases:
        if row.order_id:
            orders.setdefault(row.order_id, []).append(row)
    rated = [row for row in cases if row.rating is not None]
    return render_template("desk_customer.html", **page_context(
        customer_id=customer_id, latest=cases[0],
        open_cases=[row for row in cases if row.stage not in ENDED_STAGES],
        closed_cases=[row for row in cases if row.stage in ENDED_STAGES],
        orders=orders, rated=rated,
        average=sum(row.rating or 0 for row in rated) / len(rated) if rated else None,
        limit=case_store.CUSTOMER_CASES))


@dataclass(frozen=True)
class Refused:
    """A refused submit of the case page's `action` form: what was typed in it
    (`typed`, the form's fields), the reason beside the field it is about
    (`field_errors`, form field name → message in the page's language) and the reason
    about the whole form (`form_error`)."""

    action: str
    typed: MultiDict
    field_errors: dict[str, str] = field(default_factory=dict)
    form_error: str | None = None


@desk.post("/desk/cases/<case_id>/<action>")
@staff_page("handler", "supervisor", "admin")
def act(case_id: str, action: str):
    """One action's form. Done: back to the case at its actions, with the next case of
    the queue offered. Refused: the page again, with the form open as it was typed and
    the reason beside its field (nothing was changed)."""
    back = redirect(url_for("desk.case_page", case_id=case_id))
    if action not in ACTION_SCHEMAS:
        flash(_("Unknown action."), "error")
        return back
    typed = MultiDict([(k, v) for k, v in request.form.items(multi=True)
                       if k != "csrf_token"])

    def again(status: int, why: str | None = None, errors: dict[str, str] | None = None,
              same_update: bool = False):
        """The page again with the refused form as typed (not `refuse`: that name is
        the workflow's, and tests/test_refusals.py reads every call of it). The form
        keeps its update key only when the outcome is unknown (`same_update`): sent
        again, it is the same update; after a known outcome (a refusal), a new send is
        a new update, whatever was changed in the form."""
        shown = typed if same_update else MultiDict(
            [(k, v) for k, v in typed.items(multi=True) if k != UPDATE_KEY_FIELD])
        return render_case(case_id, status, Refused(action, shown, errors or {}, why))

    # The resolve form's remedy rows as sent: which form row each remedy came from.
    rows = [number for number, _row in remedy_rows(request.form)] \
        if action == "resolve" else None
    # The form's own update id (a hidden field, one per form shown): a second submit of
    # the same form, say after the case service did not answer in time, sends the same
    # update, which the case runs once and answers with its first outcome.
    g.update_id = form_update_id(g.user.name, request.form.get(UPDATE_KEY_FIELD))
    if BY_NAME[action].destructive and request.form.get("confirmed") != "yes":
        return again(422, _("Nothing was done: this cannot be undone, so tick the box to "
                             "confirm first."),
                      {"confirmed": _("Tick this box to confirm.")})
    try:
        data = ACTION_SCHEMAS[action]().load(form_body(action, request.form))
        perform_action(case_id, action, data, channel="desk")
    except ValidationError as err:
        paths = flatten_errors(err.messages)
        return again(422, " ".join(
            _("Check “%(field)s”: it is missing or not valid.", field=field_label(path))
            for path in paths), {form_field(path, rows): field_words(messages)
                                 for path, messages in paths.items()})
    except Problem as err:
        if err.status == 404:
            flash(_("There is no case %(id)s.", id=case_id), "error")
            return back
        why = refusal_words(err) if err.status == 403 else _(
            "Refused: %(why)s", why=say_refusal(err))
        # A refusal with a code is one reason, said beside each field it names.
        on_fields = {form_field(path, rows): why if err.code else _(
            "Refused: %(why)s", why=say_refusal(" ".join(messages)))
            for path, messages in (err.errors or {}).items()}
        if not on_fields and err.field and err.status != 403:
            on_fields = {form_field(err.field, rows): why}
        return again(err.status, None if on_fields else why, on_fields)
    except ActionRefused as err:
        why = _("Refused: %(why)s", why=say_refusal(err))
        # A refusal about one field (when the workflow names it) goes beside that field.
        on_field = err.field
        on_field = form_field(on_field, rows) if on_field else None
        return again(refusal_status(err.kind), None if on_field else why,
                      {on_field: why} if on_field else {})
    except CaseNotRunning:
        with state().sessions() as session:
            known = case_store.get_case(session, case_id) is not None
        flash(_("The case has ended and takes no more actions.") if known
              else _("There is no case %(id)s.", id=case_id), "error")
        return back
    except OutcomeUnknown:
        return again(504, _("The case service did not answer in time; the action may "
                             "still be done. Sending this form again does it at most once: "
                             "the case answers with what became of the first send."),
                     same_update=True)
    except TemporalUnavailable:
        return again(503, _("The case service cannot be reached; nothing was changed. "
                             "Try again in a moment."))
    flash(action, "done")
    return redirect(url_for("desk.case_page", case_id=case_id, _anchor="actions"))


def form_field(path: str, rows: list[int] | None = None) -> str:
    """The case page's form field a schema error path is about: `resolution.amount` is
    `amount`, `resolutions.1.amount` is `amount-<row>` where `rows` (the form row
    number of each remedy sent, remedy_rows) says which row the second remedy came
    from (`amount-2` without it), `resolution.items.0.quantity` is `items`; the others
    are their own name."""
    parts = path.split(".")
    if parts[0] == "resolution" and len(parts) > 1:
        return parts[1]
    if parts[0] == "resolutions" and len(parts) > 2 and parts[1].isdigit():
        n = int(parts[1])
        number = rows[n] if rows and n < len(rows) else n + 1
        return parts[2] if number == 1 else f"{parts[2]}-{number}"
    return parts[0]


def field_words(messages: list[str]) -> str:
    """What marshmallow says of a field, in the page's language."""
    if any(m.startswith("Missing data") or m == "Field may not be null." for m in messages):
        return _("Fill this in: it is required.")
    return _("This is not valid here; check it.")


# What a resolution that has not finished waits for, as the flash after the action says.
WAITS = {
    "approval": _l("Resolution planned: it waits for a supervisor's approval before "
                   "anything is paid."),
    "parcel": _l("Resolution under way: it waits for the parcel."),
    "inspection": _l("Resolution under way: the goods wait for inspection."),
    "quote": _l("Resolution under way: it waits for the customer's answer to the repair "
                "quote."),
    "payment": _l("Resolution under way: it waits for the customer to pay the difference."),
}


def done_words(row, action: str) -> str:
    """What the case page says of an action just done: plain "Done" when it is done,
    else what a `resolve` waits for now (a supervisor's approval, a parcel, the
    customer), as the read model has it when the page is shown."""
    if action == "resolve" and row is not None:
        plan = row.data.get("resolution") or {}
        if row.status == Status.WAITING_ON_APPROVAL:
            return str(WAITS["approval"])
        if plan.get("awaiting") in WAITS:
            return str(WAITS[plan["awaiting"]])
        if plan.get("state") == "failed":
            return _("The resolution failed; the timeline says why.")
        if plan.get("state") in ("planned", "running"):
            return _("Resolution under way; reload the case to follow it.")
    return _("Done: %(action)s.", action=ACTION_NAMES[action])


def refusal_words(err: Problem) -> str:
    """A refused write in the page's language: not the caller's case, or not their role;
    else a refused file (web/evidence.py)."""
    if err.slug == NOT_YOUR_CASE:
        return _("This case is not yours or your team's: taking it over is a "
                 "supervisor's assign.")
    if err.status == 403:
        return _("Your role may not do that.")
    return evidence.refusal_words(err)


def form_body(action: str, form) -> dict:
    """The action's JSON body from the submitted form (empty fields left out, so the
    schema's defaults and required-field errors apply as in the API)."""
    def text(name: str) -> str | None:
        value = (form.get(name) or "").strip()
        return value or None

    def pick(*names: str) -> dict:
        return {n: v for n in names if (v := text(n)) is not None}

    if action == "resolve":
        rows = [row for _number, row in remedy_rows(form)]
        items = []
        for key in form:
            if key.startswith("qty:") and text(key):
                quantity = _int(text(key))
                if quantity != 0:
                    items.append({"sku": key[4:], "quantity": quantity})
        # The goods, a repair's quote outside the warranty and an exchange's replacement
        # go with the remedy that moves goods (only one may).
        goods = [r for r in rows if r.get("type") in GOODS_RESOLUTIONS]
        if items:
            (goods or rows)[0]["items"] = items
        if (quote := text("quote_amount")) is not None:
            (goods or rows)[0]["quote_amount"] = quote
        # An exchange for another size, colour or product (the API prices and checks it).
        if (replacement := text("replacement_sku")) is not None:
            (goods or rows)[0]["replacement_sku"] = replacement
        if len(rows) == 1:
            return {"resolution": rows[0], **pick("note")}
        return {"resolutions": rows, **pick("note")}
    if action == "inspect":
        # The page sends a grade; "yes"/"no" for `passed` stay readable for old forms.
        passed, grade = form.get("passed"), form.get("grade")
        return {**({"passed": passed == "yes"} if passed in ("yes", "no") else {}),
                **({"grade": grade} if grade else {}), **pick("note")}
    body: dict = {}
    for name, schema_field in ACTION_SCHEMAS[action]().fields.items():
        if isinstance(schema_field, List):
            # A list field: repeated inputs (checkboxes) or one comma-separated text.
            body[name] = [v.strip() for raw in form.getlist(name) for v in raw.split(",")
                          if v.strip()]
        elif (value := text(name)) is not None:
            body[name] = value
    return body


def remedy_rows(form) -> list[tuple[int, dict[str, Any]]]:
    """The resolve form's filled remedy rows, each with its row number on the form: row
    1 is `type`, `amount`, …, always sent; the optional further rows `type-2`,
    `amount-2`, … only when filled, so the body's `resolutions.<i>` is the i-th of these
    (row 2 empty and row 3 filled: `resolutions.1` is row 3)."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for number in range(1, REMEDY_ROWS + 1):
        suffix = "" if number == 1 else f"-{number}"
        row: dict[str, Any] = {}
        for name in ("type", "amount", "coupon_code"):
            if value := (form.get(name + suffix) or "").strip():
                row[name] = value
        if points := (form.get("points" + suffix) or "").strip():
            row["points"] = _int(points)
        if row or number == 1:
            rows.append((number, row))
    return rows


def _int(value: str | None) -> int | str | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return value  # the schema says what is wrong with it


# The languages a template is written in: the customer's locales (Customer.locale), as
# the replies file names them (the pages' language names).
TEMPLATE_LANGS = {locale: locale.replace("-", "_") for locale in LOCALES}
# The form fields whose text the customer reads (a reply, a question to them): their
# templates are written in the customer's language; every other form's (notes, reasons
# on the case) in the page's.
CUSTOMER_TEXT_FIELDS = ("message", "question")


def template_fields(action: str) -> dict[str, tuple[str, ...]]:
    """What a reply template may set besides its text in `action`'s form: the form
    fields that take one of a list of values, and those values, as the action's input
    schema checks them (a nested remedy's fields are the resolve form's first row)."""
    return choice_fields(ACTION_SCHEMAS[action]())


def choice_fields(schema) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for name, schema_field in schema.fields.items():
        if isinstance(schema_field, Nested) and not schema_field.many:
            found.update(choice_fields(schema_field.schema))
        for validator in schema_field.validators:
            if isinstance(validator, OneOf):
                found[name] = tuple(validator.choices)
    return found


class ReplyTemplateError(ValueError):
    """The replies file holds a template the desk cannot offer; the message names it."""


@cache
def reply_entries() -> list[dict]:
    """The reply templates file, read and checked once per process."""
    return load_replies(REPLIES_FILE)


def load_replies(path: Path) -> list[dict]:
    """The reply templates of `path`, checked: each names an action whose form has a
    text field, is written in every language a customer may have, and sets only fields
    of that form to values they take (`fields`). Raises ReplyTemplateError naming the
    template that is wrong."""
    with path.open("rb") as f:
        entries = tomllib.load(f)["template"]
    for entry in entries:
        key = entry.get("key", "?")

        def wrong(why: str, key: str = key) -> ReplyTemplateError:
            return ReplyTemplateError(f"{path.name}: reply template '{key}': {why}")

        action = entry.get("action")
        if action not in ACTION_SCHEMAS or text_field(action) is None:
            raise wrong(f"action '{action}' has no text to fill")
        for part in ("title", "text"):
            missing = [lang for lang in TEMPLATE_LANGS.values()
                       if lang not in (entry.get(part) or {})]
            if missing:
                raise wrong(f"no {part} in {', '.join(missing)}")
        settable = template_fields(action)
        for name, value in (entry.get("fields") or {}).items():
            if name not in settable:
                raise wrong(f"'{name}' is not a field of the {action} form it may set "
                            f"(it may set: {', '.join(settable) or 'none'})")
            if value not in settable[name]:
                raise wrong(f"'{value}' is not a value of '{name}' "
                            f"(one of: {', '.join(settable[name])})")
    return entries


def text_field(action: str) -> str | None:
    """The form field of `action` a reply template's text goes into."""
    names = ACTION_SCHEMAS[action]().fields
    return next((n for n in ("message", "question", "text", "reason", "note")
                 if n in names), None)


def customer_locale(row) -> str:
    """The locale the customer is written to in (their notifications' locale, else the
    settings' default; one of LOCALES)."""
    locale = (row.data.get("customer") or {}).get("locale") or state().settings.default_locale
    return locale if locale in TEMPLATE_LANGS else LOCALES[0]


def reply_templates(row, lang: str) -> list[dict]:
    """The reply templates (话术) for this case's kind: titled in the page's language
    (`lang`), their text in the customer's when the customer reads it (a reply, a
    question: `for_customer`) and in the page's otherwise (notes and reasons on the
    case), with the case's details filled in; `field` is the form field the text goes
    into, `fields` what else the template sets in that form."""
    entries = reply_entries()
    values = {"customer": row.customer_name, "order_id": row.order_id, "case_id": row.id}
    customers = TEMPLATE_LANGS[customer_locale(row)]
    page = lang if lang in TEMPLATE_LANGS.values() else customers
    chosen = []
    for entry in entries:
        if "*" not in entry["kinds"] and row.kind not in entry["kinds"]:
            continue
        field_name = text_field(entry["action"])
        for_customer = field_name in CUSTOMER_TEXT_FIELDS
        written_in = customers if for_customer else page
        chosen.append({"key": entry["key"], "action": entry["action"],
                       "title": entry["title"][page],
                       "text": entry["text"][written_in].format(**values),
                       "field": field_name, "for_customer": for_customer,
                       "fields": dict(entry.get("fields") or {})})
    return chosen


# ---------------------------------------------------------------- a new case


def _new_case_page(status: int = 200, **context):
    g.page_path = url_for("desk.new_case")
    return render_template("desk_new.html", **page_context(
        KINDS=KINDS, CHANNELS=STAFF_CHANNELS, values=context.pop("values", {}),
        errors=context.pop("errors", {}), **context)), status


@desk.get("/desk/new")
@staff_page(*PERMISSIONS["cases.create"])
def new_case():
    """Find the order by its number or the customer's phone; then the form."""
    order_id = (request.args.get("order_id") or "").strip()[:64]
    phone = (request.args.get("phone") or "").strip()[:40]
    if request.args.get("orderless"):
        return _new_case_page(orderless=True, values={"kind": "complaint"})
    try:
        if order_id:
            order = intake.find_order(order_id)
            if order is None:
                return _new_case_page(404, lookup={"order_id": order_id},
                                      error=_("There is no order %(id)s.", id=order_id))
            return _new_case_page(view=intake.order_view(order),
                                  values={"channel": "phone"})
        if phone:
            found = intake.search_orders(phone)
            return _new_case_page(lookup={"phone": phone}, found=found, searched=True)
    except Problem as err:
        return _new_case_page(err.status, lookup={"order_id": order_id, "phone": phone},
                              error=_("The order system is not answering; try again in a "
                                      "moment."))
    return _new_case_page()


@desk.post("/desk/new")
@staff_page(*PERMISSIONS["cases.create"])
def create_case():
    """Preview (triage, what each line allows) or open the case, from the same form."""
    form = request.form
    values = {key: form.get(key, "") for key in form}
    order_id = (form.get("order_id") or "").strip()
    view = None
    try:
        if order_id:
            order = intake.find_order(order_id)
            if order is None:
                return _new_case_page(404, error=_("There is no order %(id)s.", id=order_id))
            view = intake.order_view(order)
            customer = _order_customer(order)
            items = [{"sku": line.sku, "quantity": quantity,
                      "reason": (form.get(f"reason_{line.sku}") or "").strip()}
                     for line in view.lines
                     if (quantity := intake.quantity(form.get(f"qty_{line.sku}")))]
        else:
            name = (form.get("customer_name") or "").strip()
            phone = (form.get("customer_phone") or "").strip()
            email = (form.get("customer_email") or "").strip()
            customer = {"id": intake.orderless_customer_id(phone, email), "name": name,
                        **({"phone": phone} if phone else {}),
                        **({"email": email} if email else {})}
            items = []
        body = {"kind": form.get("kind") or "", "channel": form.get("channel") or "",
                "order_id": order_id, "customer": customer, "items": items,
                "description": (form.get("description") or "").strip()}
        data = CaseCreateSchema().load(body)
        errors = intake.check_items(view, data["kind"], data["items"], strict=False) \
            if view else {}
        if view and not data["items"] and data["kind"] != "complaint":
            errors["items"] = [_("Choose the items and quantities the request is about.")]
    except ValidationError as err:
        return _new_case_page(422, view=view, orderless=not order_id, values=values,
                              errors=flatten_errors(err.messages))
    except Problem as err:
        return _new_case_page(err.status, view=view, orderless=not order_id, values=values,
                              error=_("The order system is not answering; try again in a "
                                      "moment."))
    if errors or form.get("intent") == "preview":
        triage = intake.suggest(data["description"], data["channel"])
        return _new_case_page(422 if errors else 200, view=view, orderless=not order_id,
                              values=values, errors=errors, triage=triage)
    try:
        row = intake.open_case(intake.case_input(
            kind=data["kind"], channel=data["channel"], order_id=order_id,
            customer=Customer(**data["customer"]),
            items=[CaseItem(**item) for item in data["items"]],
            description=data["description"], opened_by=g.user.name))
    except OutcomeUnknown:
        return _new_case_page(503, view=view, orderless=not order_id, values=values,
                              error=_("The case service did not answer in time; the case "
                                      "may still be opened. Look for it in the queue "
                                      "before opening it again."))
    except (Problem, TemporalUnavailable):
        return _new_case_page(503, view=view, orderless=not order_id, values=values,
                              error=_("The case service cannot be reached; nothing was "
                                      "changed. Try again in a moment."))
    except ActionRefused as err:  # the read model refused the new case (listed for ops)
        return _new_case_page(500, view=view, orderless=not order_id, values=values,
                              error=_("Refused: %(why)s", why=say_refusal(err)))
    flash(_("Case %(id)s is open.", id=row.id), "success")
    return redirect(url_for("desk.case_page", case_id=row.id))


def _order_customer(order) -> dict:
    known = order.customer
    return {"id": (known.id if known else "") or order.customer_id,
            "name": (known.name if known else "") or order.customer_id,
            "phone": known.phone if known else "", "email": known.email if known else "",
            "tier": known.tier if known else "regular"}


# ---------------------------------------------------------------- files


@desk.get("/desk/cases/<case_id>/files/<attachment_id>")
@staff_page("handler", "supervisor", "admin")
def attachment(case_id: str, attachment_id: str):
    with state().sessions() as session:
        row = case_store.get_case(session, case_id)
        if row is None:
            return render_template("message.html", title=_("No such case"),
                                   message=_("There is no case %(id)s.", id=case_id)), 404
        session.expunge(row)
    try:
        return evidence.send_file(evidence.find(row, attachment_id),
                                  request.args.get("size") == "thumb")
    except Problem:
        return render_template("message.html", title=_("No such file"),
                               message=_("This file is not on the case.")), 404


@desk.post("/desk/cases/<case_id>/files")
@staff_page("handler", "supervisor", "admin")
def upload(case_id: str):
    back = redirect(url_for("desk.case_page", case_id=case_id, _anchor="files"))
    try:
        with state().sessions() as session:
            row = case_store.get_case(session, case_id)
            if row is None:
                raise Problem(404, "Not found", f"no case {case_id}")
            session.expunge(row)
        evidence.precheck(row, Actor(g.user.name, g.user.role))
        files = evidence.read_files("file", evidence.room_left(row))
        if not files:
            flash(_("Choose a file first."), "error")
            return back
        prepared = evidence.check_file(*files[0])
        evidence.attach(case_id, prepared, Actor(g.user.name, g.user.role),
                        request.form.get("shared") == "on")
    except Problem as err:
        flash(_("There is no case %(id)s.", id=case_id) if err.status == 404
              else refusal_words(err), "error")
        return back
    except ActionRefused as err:
        flash(_("Refused: %(why)s", why=say_refusal(err)), "error")
        return back
    except (CaseNotRunning, TemporalUnavailable):
        flash(_("The case takes no files now; nothing was changed."), "error")
        return back
    flash(_("The file was added."), "success")
    return back
