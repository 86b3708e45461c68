"""The Flask app: REST API, customer status link and health check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.middleware.proxy_fix import ProxyFix

from aftersales.blobs import BlobStore, make_store
from aftersales.policy import load_policy
from aftersales.routing import load_routing
from aftersales.settings import Settings
from db.engine import make_engine, make_sessionmaker, migrate
from db.links import LinkSeal
from web.catalogue import Catalogue
from web.gateway import CaseGateway
from web.intake import OrderDirectory
from web.ratelimit import MissLimiter
from workflows.routing import RoutingPolicy
from workflows.sla import SlaPolicy

csrf = CSRFProtect()


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    gateway: CaseGateway
    policy: SlaPolicy
    link_limiter: MissLimiter
    # Failed sign-ins per account at an address, and per address over all accounts
    # (web/pages.py).
    login_limiter: MissLimiter
    login_address_limiter: MissLimiter
    blobs: BlobStore
    orders: OrderDirectory
    # The catalogue and stock an exchange's replacement is checked against (web/catalogue).
    catalogue: Catalogue
    # The public request doors: failed order/contact proofs per client address and per
    # order number, and every request per client (docs/intake.md).
    request_limiter: MissLimiter
    order_limiter: MissLimiter
    # Cases the public doors opened per client address, and codes sent per order.
    submit_limiter: MissLimiter
    code_limiter: MissLimiter
    # Messages per status link (each notifies the assignee).
    message_limiter: MissLimiter
    # Status links are stored sealed; the pages and the API open them (db/links.py).
    links: LinkSeal
    # Which team's queue new cases go to (docs/teams.md); read once, at start.
    routing: RoutingPolicy


def create_app(settings: Settings | None = None, gateway: CaseGateway | None = None,
               run_migrations: bool = True) -> Flask:
    """Build the app from settings; the only way the app comes to exist."""
    settings = settings or Settings.from_env()
    # No fallback key: a known one would let anyone forge an admin's session cookie.
    settings.check_secret_key()
    app = Flask(__name__)
    app.config["SECRET_KEY"] = settings.secret_key
    # The session cookie: never readable by scripts, not sent on cross-site requests,
    # and HTTPS-only wherever the app is served over HTTPS.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = settings.public_url.startswith("https://")
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=12)
    # A form's CSRF token lives as long as the session, not one hour: a case page left
    # open over lunch still submits.
    app.config["WTF_CSRF_TIME_LIMIT"] = None
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if run_migrations:
        migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    policy = load_policy(settings.sla_file)
    # Every limiter counts in the read model under its name (web/ratelimit.py): all
    # processes and instances share the counts.
    app.extensions["aftersales"] = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        gateway=gateway or CaseGateway(settings),
        policy=policy,
        routing=load_routing(settings.routing_file, policy.calendars),
        link_limiter=MissLimiter(sessions, "link"),
        login_limiter=MissLimiter(sessions, "login", limit=5, window=900),
        login_address_limiter=MissLimiter(sessions, "login_address", limit=30, window=900),
        blobs=make_store(settings),
        orders=OrderDirectory(settings.order_system_url),
        catalogue=Catalogue(settings.order_system_url, settings.inventory_system_url),
        request_limiter=MissLimiter(
            sessions, "request", limit=10, window=600,
            message="too many orders not found from this address; try again later"),
        order_limiter=MissLimiter(
            sessions, "order", limit=10, window=600,
            message="too many wrong tries on this order; try again later"),
        submit_limiter=MissLimiter(
            sessions, "submit", limit=20, window=3600,
            message="too many requests from this address; try again later"),
        code_limiter=MissLimiter(
            sessions, "code", limit=5, window=3600,
            message="this order has had its codes for the hour; try again later"),
        links=LinkSeal(settings.secret_key),
        message_limiter=MissLimiter(
            sessions, "message", limit=30, window=3600,
            message="many messages on this case in the last hour; we have them all and "
                    "will answer — please wait a little before writing again"),
    )
    if settings.trusted_proxies:
        # Behind N proxies the client is the address the Nth one from us saw, and the
        # scheme the one the client used; without proxies the headers are the client's
        # own words and are ignored.
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops)

    from web import audit, body_limit, caseview, characters, i18n, problems, reasons
    from web.admin import admin
    from web.api import api
    from web.customer import customer
    from web.desk import desk, reply_entries
    from web.evidence import evidence
    from web.health import health
    from web.openapi import openapi
    from web.pages import pages
    from web.reports import reports
    from web.selfservice import create_request, request_code, selfservice
    from web.status import status
    from web.supervisor import supervisor
    from web.webhooks import webhooks

    body_limit.register(app)  # first: nothing reads an oversized body
    problems.register(app)
    audit.register(app)
    i18n.init_app(app)
    caseview.register(app)
    reasons.register(app)
    app.after_request(_security_headers)
    app.register_blueprint(health)
    app.register_blueprint(api, url_prefix="/api/v1")
    app.register_blueprint(reports, url_prefix="/api/v1")
    app.register_blueprint(status)
    app.register_blueprint(openapi)
    app.register_blueprint(webhooks)
    app.register_blueprint(pages)
    app.register_blueprint(desk)
    reply_entries()  # the reply templates are checked at start: a wrong one names itself
    app.register_blueprint(supervisor)
    app.register_blueprint(admin)
    app.register_blueprint(customer)
    app.register_blueprint(evidence)
    app.register_blueprint(selfservice)
    if settings.dev_mailbox:
        # Development only (`aftersales dev` sets it): the local SMTP sink's mail.
        from web.devmail import devmail

        app.register_blueprint(devmail)
    characters.register(app)
    # Forms are protected by CSRF tokens; the JSON API authenticates by bearer token or
    # signature, never by cookie, so it has nothing to protect.
    csrf.init_app(app)
    app.register_error_handler(CSRFError, _form_expired)
    for blueprint in (api, reports, status, webhooks, evidence):
        csrf.exempt(blueprint)
    for view in (create_request, request_code):  # the JSON twins of the request page
        csrf.exempt(view)
    return app


SECURITY_HEADERS = {
    # Nothing is loaded from elsewhere, no inline script or style (only our own files),
    # and no framing (clickjacking). Scripts may fetch from this site only (the desk's
    # lists refresh).
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "script-src 'self'; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _form_expired(err: CSRFError):
    """A page's form without a valid CSRF token: nothing was done; say so in the page's
    language, with the way back (never the API's JSON)."""
    back = request.referrer if request.referrer and request.referrer.startswith(
        request.host_url) else None
    return render_template(
        "message.html", title=_("The form has expired"), back=back,
        message=_("Nothing was sent. Go back, reload the page and send the form again.")), 400
