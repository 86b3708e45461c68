"""Staff sign-in for the web pages: a login form with CSRF protection, a session cookie
that scripts cannot read, a brake on password guessing (per account and address), and
sign-out. Staff land on the page for their role: handlers on the desk, supervisors and
admins on the console.
"""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from db.accounts import (
    MIN_PASSWORD_LENGTH,
    AccountError,
    change_password,
    check_password,
    end_sessions,
    get_user,
)
from db.auditlog import record
from web.caseview import ROLE_NAMES
from web.problems import Problem
from web.ratelimit import client_address

pages = Blueprint("pages", __name__)


class LoginForm(FlaskForm):
    username = StringField(_l("User name"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


class PasswordChangeForm(FlaskForm):
    current = PasswordField(_l("Current password"),
                            validators=[DataRequired(), Length(max=200)])
    new = PasswordField(_l("New password"), validators=[
        DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=200,
                               message=_l("At least %(min)d characters.",
                                          min=MIN_PASSWORD_LENGTH))])
    repeat = PasswordField(_l("New password again"), validators=[
        DataRequired(), EqualTo("new", message=_l("The two new passwords differ."))])


def _audit_sign_in(name: str, role: str, action: str, status: int) -> None:
    """Sign-ins, failed ones and sign-outs go into the audit log (never a password):
    they are not requests of a signed-in user, so web/audit.py does not see them."""
    with current_app.extensions["aftersales"].sessions.begin() as db:
        record(db, actor=name or "-", role=role, method=request.method, path=request.path,
               status=status, action=action, remote_addr=request.remote_addr)


def signed_in_user():
    """The user of this session, or None: a deactivated user, or a session made before
    the user's sessions were ended (sign-out), is no one, whatever the cookie says."""
    name = session.get("user")
    if not name:
        return None
    with current_app.extensions["aftersales"].sessions() as db:
        user = get_user(db, name)
    if user is None or not user.active or session.get("sv") != user.session_version:
        return None
    return user


def landing(role: str) -> str:
    return url_for("supervisor.console" if role in ("supervisor", "admin") else "desk.queue")


def staff_page(*roles: str):
    """Decorator for a page: signed in (else to the login page, and back after) with
    one of `roles`; the user is `g.user`, so the API's permission checks apply."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = signed_in_user()
            if user is None:
                return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
            if roles and user.role not in roles:
                names = ", ".join(str(ROLE_NAMES[r]) for r in roles)
                return render_template("message.html", title=_("Not for your role"),
                                       message=_("This page is for %(roles)s.",
                                                 roles=names)), 403
            g.user = user
            return view(*args, **kwargs)
        return wrapper
    return decorator


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: no scheme, no host, no control characters or
    backslashes that a browser might read as a host. Never an open redirect."""
    if not target or any(ord(c) <= 0x20 or c == "\\" for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@pages.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    state = current_app.extensions["aftersales"]
    if request.method == "POST":
        # Failed sign-ins are counted per account at this address, and per address over
        # all accounts (a looser cap): a guesser locks out neither another account nor
        # the same account elsewhere. Names that exist and names that do not count
        # alike, so the answer never tells them apart.
        client = client_address()
        account = f"{request.form.get('username', '')}\n{client}"
        try:
            state.login_address_limiter.check(client)
            state.login_limiter.check(account)
        except Problem as err:
            return render_template("login.html", form=form,
                                   error=_("Too many failed sign-ins. Try again later.")), \
                err.status, err.headers
        if form.validate_on_submit():
            with state.sessions() as db:
                user = check_password(db, form.username.data or "", form.password.data or "")
            if user is not None:
                session.clear()  # a fresh session: no fixation across sign-in
                session["user"] = user.name
                session["sv"] = user.session_version
                session.permanent = True
                _audit_sign_in(user.name, user.role, "sign-in", 302)
                return redirect(_safe_next(request.args.get("next")) or landing(user.role))
            state.login_limiter.miss(account)
            state.login_address_limiter.miss(client)
            _audit_sign_in(form.username.data or "", "-", "sign-in-failed", 401)
        return render_template("login.html", form=form,
                               error=_("Wrong user name or password.")), 401
    return render_template("login.html", form=form, error=None)


@pages.post("/logout")
def logout():
    # The cookie is signed, not stored: clearing it here leaves any copy of it valid.
    # Moving the user's session version on is what ends the session on the server.
    user = signed_in_user()
    if user is not None:
        with current_app.extensions["aftersales"].sessions.begin() as db:
            end_sessions(db, user.name)
        _audit_sign_in(user.name, user.role, "sign-out", 302)
    session.clear()
    flash(_("Signed out."))
    return redirect(url_for("pages.login"))


@pages.get("/")
def home():
    user = signed_in_user()
    if user is None:
        return redirect(url_for("pages.login"))
    return redirect(landing(user.role))


@pages.route("/account/password", methods=["GET", "POST"])
@staff_page()
def password():
    """The signed-in user's own password change: every other session of theirs ends,
    this one goes on."""
    g.audit_action = "password-change"
    form = PasswordChangeForm()
    error = None
    state = current_app.extensions["aftersales"]
    if form.validate_on_submit():
        # Wrong current passwords count as failed sign-ins: this form is no way round
        # the brake on guessing.
        account = f"{g.user.name}\n{client_address()}"
        try:
            state.login_limiter.check(account)
            with state.sessions.begin() as db:
                user = change_password(db, g.user.name, form.current.data or "",
                                       form.new.data or "")
                version = user.session_version
        except Problem as err:
            error, status = _("Too many failed sign-ins. Try again later."), err.status
        except AccountError:
            state.login_limiter.miss(account)
            error, status = _("The current password is wrong."), 422
        else:
            session["sv"] = version
            flash(_("Password changed. You are signed out everywhere else."), "success")
            return redirect(landing(g.user.role))
        return render_template("password.html", form=form, error=error,
                               min_length=MIN_PASSWORD_LENGTH), status
    status = 422 if request.method == "POST" else 200
    return render_template("password.html", form=form, error=error,
                           min_length=MIN_PASSWORD_LENGTH), status
