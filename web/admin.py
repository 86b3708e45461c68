"""The admin page at `/admin`: the audit log (filtered, a page at a time, exported as
CSV), the users with their tokens, and the access lifecycle: deactivate and activate a
user, reset a password, revoke a token. Admins only."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from marshmallow import ValidationError
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from db import accounts, auditlog
from web.access import audit_csv, audit_filter, deactivate_user
from web.auth import check
from web.desk import page_context, state
from web.gateway import ActionRefused, CaseNotRunning, TemporalUnavailable
from web.i18n import LANG_PARAM
from web.pages import staff_page
from web.problems import Problem
from web.reasons import say_refusal
from web.schemas import AuditQuery

admin = Blueprint("admin", __name__)
PER_PAGE = 50


class PasswordResetForm(FlaskForm):
    new = PasswordField(_l("New password"), validators=[
        DataRequired(), Length(min=accounts.MIN_PASSWORD_LENGTH, max=200,
                               message=_l("At least %(min)d characters.",
                                          min=accounts.MIN_PASSWORD_LENGTH))])
    repeat = PasswordField(_l("New password again"), validators=[
        DataRequired(), EqualTo("new", message=_l("The two new passwords differ."))])


def _audit_query() -> tuple[dict, str | None]:
    """The page's filters, or none and what was wrong with them."""
    args = {k: v for k, v in request.args.items() if v.strip() and k != LANG_PARAM}
    try:
        return AuditQuery().load({**args, "per_page": str(PER_PAGE)}), None
    except ValidationError as err:
        fields = ", ".join(sorted(str(k) for k in err.normalized_messages()))
        return AuditQuery().load({"per_page": str(PER_PAGE)}), fields


@admin.get("/admin")
@staff_page("admin")
def console():
    check("audit.read")
    query, wrong = _audit_query()
    if wrong:
        flash(_("Filters not understood: %(fields)s.", fields=wrong), "error")
    with state().sessions() as session:
        entries, total = auditlog.find(session, audit_filter(query), query["page"], PER_PAGE)
        users = accounts.list_users(session)
        tokens = {u.name: accounts.list_tokens(session, u.name) for u in users}
        session.expunge_all()
    filters = {k: request.args.get(k, "") for k in ("actor", "case_id", "action", "from",
                                                    "to")} if not wrong else {}
    pages = max(1, -(-total // PER_PAGE))
    return render_template("admin.html", **page_context(
        entries=entries, total=total, page=query["page"], pages=pages, filters=filters,
        users=users, tokens=tokens, token_state=accounts.token_state,
        reset_form=PasswordResetForm(), min_length=accounts.MIN_PASSWORD_LENGTH))


@admin.get("/admin/audit.csv")
@staff_page("admin")
def audit_export():
    query, wrong = _audit_query()
    if wrong:
        flash(_("Filters not understood: %(fields)s.", fields=wrong), "error")
        return redirect(url_for("admin.console"))
    return audit_csv(audit_filter(query))


@admin.post("/admin/users/<name>/deactivate")
@staff_page("admin")
def deactivate(name: str):
    g.audit_action = "users.deactivate"
    try:
        done = deactivate_user(name)
    except Problem as err:
        flash(_("Not deactivated: %(why)s", why=deactivation_refusal(err, name)), "error")
        return redirect(url_for("admin.console"))
    flash(ngettext("%(who)s is deactivated; %(num)d open case is back in the queue.",
                   "%(who)s is deactivated; %(num)d open cases are back in the queue.",
                   len(done.returned), who=name), "success")
    for case_id, why in sorted(done.failed.items()):
        flash(_("Still assigned, reassign it: %(case)s (%(why)s)", case=case_id,
                why=failure_words(why)), "error")
    return redirect(url_for("admin.console"))


def deactivation_refusal(err: Problem, name: str) -> str:
    """Why a user was not deactivated, in the page's language."""
    if err.code:  # the admin's own role (web/auth.check)
        return say_refusal(err)
    if err.status == 404:
        return _("there is no user %(name)s", name=name)
    if err.status == 409:
        return _("you cannot deactivate your own account; another admin can")
    return err.detail


def failure_words(why: str | Exception) -> str:
    """Why a case of a deactivated user was not returned, in the page's language: the
    workflow's refusal by its code (not open, no longer assigned...), or the case
    service's state."""
    if isinstance(why, ActionRefused):
        return say_refusal(why)
    if isinstance(why, CaseNotRunning):
        return _("the case has ended")
    if isinstance(why, TemporalUnavailable):
        return _("the case service cannot be reached")
    return str(why)


@admin.post("/admin/users/<name>/activate")
@staff_page("admin")
def activate(name: str):
    g.audit_action = "users.activate"
    check("users.activate")
    try:
        with state().sessions.begin() as session:
            accounts.set_active(session, name, True)
    except accounts.AccountError as err:
        flash(_("Not activated: %(why)s", why=str(err)), "error")
    else:
        flash(_("%(who)s is active again.", who=name), "success")
    return redirect(url_for("admin.console"))


@admin.post("/admin/users/<name>/password")
@staff_page("admin")
def reset_password(name: str):
    g.audit_action = "users.set-password"
    check("users.set-password")
    form = PasswordResetForm()
    if not form.validate_on_submit():
        errors = [str(e) for field in (form.new, form.repeat) for e in field.errors]
        flash(_("Password not set: %(why)s", why=" ".join(errors)), "error")
        return redirect(url_for("admin.console"))
    try:
        with state().sessions.begin() as session:
            accounts.set_password(session, name, form.new.data or "")
    except accounts.AccountError as err:
        flash(_("Password not set: %(why)s", why=str(err)), "error")
    else:
        flash(_("The password of %(who)s is set; their sessions have ended.", who=name),
              "success")
    return redirect(url_for("admin.console"))


@admin.post("/admin/tokens/<token_id>/revoke")
@staff_page("admin")
def revoke_token(token_id: str):
    g.audit_action = "tokens.revoke"
    check("tokens.revoke")
    try:
        with state().sessions.begin() as session:
            row = accounts.revoke_token(session, token_id)
            owner = row.user_name
    except accounts.AccountError as err:
        flash(_("Not revoked: %(why)s", why=str(err)), "error")
    else:
        flash(_("Token %(id)s of %(who)s is revoked.", id=token_id, who=owner), "success")
    return redirect(url_for("admin.console"))
