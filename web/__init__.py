"""The Flask app: REST API, customer status link and health check."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aftersales.policy import load_policy
from aftersales.settings import Settings
from db.engine import make_engine, make_sessionmaker, migrate
from web.gateway import CaseGateway
from web.ratelimit import MissLimiter
from workflows.sla import SlaPolicy


@dataclass
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    gateway: CaseGateway
    policy: SlaPolicy
    link_limiter: MissLimiter


def create_app(settings: Settings | None = None, gateway: CaseGateway | None = None,
               run_migrations: bool = True) -> Flask:
    """Build the app from settings; the only way the app comes to exist."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["SECRET_KEY"] = settings.secret_key or "dev-only-secret"
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if run_migrations:
        migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    app.extensions["aftersales"] = AppState(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        gateway=gateway or CaseGateway(settings),
        policy=load_policy(settings.sla_file),
        link_limiter=MissLimiter(),
    )

    from web import audit, problems
    from web.api import api
    from web.health import health
    from web.openapi import openapi
    from web.status import status
    from web.webhooks import webhooks

    problems.register(app)
    audit.register(app)
    app.after_request(_security_headers)
    app.register_blueprint(health)
    app.register_blueprint(api, url_prefix="/api/v1")
    app.register_blueprint(status)
    app.register_blueprint(openapi)
    app.register_blueprint(webhooks)
    return app


def app_state(app: Flask) -> AppState:
    return app.extensions["aftersales"]


SECURITY_HEADERS = {
    # Nothing is loaded from elsewhere, no inline script, and no framing (clickjacking).
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
