"""The customer's status page at the case's `customer_url` (`/s/<token>`): no login,
one case only, mobile first. It shows the six steps in plain words, what happens next
and by when (in the reader's time zone, named), the order, shop and products, what the
resolution means for the customer (an approval's wait, when refunded money arrives, how
to use a coupon), parcel tracking, and the answer and rating forms when the case waits
for them. The forms carry CSRF tokens like every other form."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError

from web import evidence
from web.caseview import field_label, progress, thread
from web.commands import customer_action
from web.gateway import ActionRefused, CaseNotRunning, TemporalUnavailable
from web.problems import Problem, flatten_errors
from web.reasons import say_refusal
from web.representation import CUSTOMER_EVENTS, customer_json
from web.schemas import FeedbackSchema, QuoteAnswerSchema, ReplySchema
from web.status import limit_messages, lookup_link, survivor

customer = Blueprint("customer", __name__)


def _gone(why: str):
    if why == "expired":
        return render_template(
            "customer_gone.html", title=_("This link has expired"),
            message=_("The case closed more than 30 days ago, so its page is no longer "
                      "shown. If something is still wrong, please contact us again and we "
                      "will open a new case.")), 410
    return render_template(
        "customer_gone.html", title=_("We don't know this link"),
        message=_("Please check that the whole link was copied from our message. If it "
                  "still does not work, contact us and quote your order number.")), 404


@customer.get("/s/<token>")
def page(token: str):
    try:
        row, why, events = lookup_link(token)
    except Problem as err:  # too many wrong links from this address
        return render_template("customer_gone.html", title=_("Too many attempts"),
                               message=_("Please wait a few minutes and try again.")), \
            err.status, err.headers
    if row is None:
        return _gone(why or "unknown")
    merged_into = survivor(row)
    if merged_into and merged_into["customer_url"]:
        # A duplicate: the customer follows their request where it goes on. (The status
        # token is the last path segment of a case's link; the same customer's.)
        survivor_token = merged_into["customer_url"].rstrip("/").rsplit("/", 1)[-1]
        return redirect(url_for("customer.page", token=survivor_token))
    view = customer_json(row, events, token, merged_into)
    history = [{"at": e.at, "what": CUSTOMER_EVENTS[e.type]}
               for e in events if e.type in CUSTOMER_EVENTS]
    return render_template(
        "customer.html", case=row, view=view, history=list(reversed(history)),
        thread=thread(view["messages"], view["attachments"]),
        progress=progress(row.stage), token=token,
        # Working time after which a waiting approval escalates: what "usually" means.
        approval_timeout=current_app.extensions["aftersales"].policy.approval_timeout)


@customer.post("/s/<token>/rate")
def rate(token: str):
    def build():
        return "feedback", FeedbackSchema().load({
            "rating": _int(request.form.get("rating")),
            "comment": (request.form.get("comment") or "").strip()})
    return _send(token, build, _("Thank you for your rating."))


@customer.post("/s/<token>/quote")
def answer_quote(token: str):
    """The customer's accept or decline of the repair quote (the button they pressed)."""
    decision = request.form.get("decision")

    def build():
        return "quote", QuoteAnswerSchema().load({"decision": decision})
    thanks = (_("Thank you: we will repair your item.") if decision == "accept" else
              _("Thank you: we will send your item back unrepaired."))
    return _send(token, build, thanks, anchor="quote")


@customer.post("/s/<token>/messages")
def write(token: str):
    """The customer's message (an answer when a question is pending)."""
    def build():
        data = ReplySchema().load({"message": (request.form.get("message") or "").strip()})
        limit_messages(token)
        return "message", data
    return _send(token, build, _("Thank you, we have your message."), anchor="messages")


# The answer form's first address, for pages and links made before the conversation.
customer.add_url_rule("/s/<token>/answer", "answer", write, methods=["POST"])


def _linked(token: str):
    """(the case behind the link, None), or (None, the page to answer with instead)."""
    try:
        row, why, _events = lookup_link(token)
    except Problem:  # too many wrong links: the page says so
        return None, redirect(url_for("customer.page", token=token))
    if row is None:
        return None, _gone(why or "unknown")
    return row, None


@customer.post("/s/<token>/files")
def upload(token: str):
    """A photo, a video or the invoice from the customer while the case is open."""
    row, answer = _linked(token)
    if row is None:
        return answer
    try:
        evidence.precheck(row, None)
        files = evidence.read_files("file", evidence.room_left(row))
        if not files:
            flash(_("Choose a file first."), "error")
        else:
            evidence.attach(row.id, evidence.check_file(*files[0]), None, True, row)
            flash(_("Thank you, we have your file."), "success")
    except Problem as err:
        flash(evidence.refusal_words(err), "error")
    except (ActionRefused, CaseNotRunning):
        flash(_("Your case takes no more files; the page shows where it stands now."),
              "error")
    except TemporalUnavailable:
        flash(_("We could not save that just now. Please try again in a moment."), "error")
    return redirect(url_for("customer.page", token=token, _anchor="files"))


def _send(token: str, build, thanks: str, anchor: str | None = None):
    row, answer = _linked(token)
    if row is None:
        return answer
    try:
        action, data = build()
        customer_action(row.id, action, data)
    except ValidationError as err:
        for field in flatten_errors(err.messages):
            flash(_("Check “%(field)s”: it is missing or not valid.",
                    field=field_label(field)), "error")
    except ActionRefused as err:
        flash(_("Your case holds all the messages it can; please contact us about a new "
                "request.") if err.kind == "TooMany" else
              # What was sent does not fit (a message too long): say what, in words.
              say_refusal(err) if err.kind == "InvalidAction" else
              _("Your case is not waiting for this any more; the page shows where it "
                "stands now."), "error")
    except CaseNotRunning:
        flash(_("Your case is not waiting for this any more; the page shows where it "
                "stands now."), "error")
    except Problem:  # too many messages in the last hour
        flash(_("We have your messages of the last hour and will answer; please wait a "
                "little before writing again."), "error")
    except TemporalUnavailable:
        flash(_("We could not save that just now. Please try again in a moment."), "error")
    else:
        flash(thanks, "success")
    return redirect(url_for("customer.page", token=token, _anchor=anchor))


def _int(value: str | None) -> int | str | None:
    try:
        return int(value) if value else None
    except ValueError:
        return value
