"""Staff sign-in for the web pages: a login form with CSRF protection, a session cookie
that scripts cannot read, a brake on password guessing, and sign-out.

The pages themselves (desk, supervisor console) build on this; until they exist a
signed-in user lands on a home page that says who they are.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from db.accounts import check_password, get_user
from web.problems import Problem

pages = Blueprint("pages", __name__)


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


def signed_in_user():
    """The user of this session, or None."""
    name = session.get("user")
    if not name:
        return None
    with current_app.extensions["aftersales"].sessions() as db:
        user = get_user(db, name)
    return user if user is not None and user.active else None


@pages.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    limiter = current_app.extensions["aftersales"].login_limiter
    if request.method == "POST":
        client = request.remote_addr or "unknown"
        try:
            limiter.check(client)
        except Problem as err:
            return render_template("login.html", form=form,
                                   error="Too many failed sign-ins. Try again later."), \
                err.status, err.headers
        if form.validate_on_submit():
            with current_app.extensions["aftersales"].sessions() as db:
                user = check_password(db, form.username.data or "", form.password.data or "")
            if user is not None:
                session.clear()  # a fresh session: no fixation across sign-in
                session["user"] = user.name
                session.permanent = True
                return redirect(url_for("pages.home"))
            limiter.miss(client)
        return render_template("login.html", form=form,
                               error="Wrong user name or password."), 401
    return render_template("login.html", form=form, error=None)


@pages.post("/logout")
def logout():
    session.clear()
    flash("Signed out.")
    return redirect(url_for("pages.login"))


@pages.get("/")
def home():
    user = signed_in_user()
    if user is None:
        return redirect(url_for("pages.login"))
    return render_template("home.html", user=user, form=FlaskForm())
