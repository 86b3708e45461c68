"""Who is calling: bearer tokens for the API, and the role check in one place."""

from __future__ import annotations

from functools import wraps

from flask import current_app, g, request

from db.accounts import user_for_token
from web.problems import Problem
from workflows.case.lifecycle import RULE_PERMISSIONS, STAFF, STAFF_ROLES
from workflows.case.vocabulary import MANAGERS

# Who may do what: the one table every endpoint checks (docs/roles.md prints it). What
# each case action needs comes from the action table (workflows/case/lifecycle.py),
# with the rules inside an action that need a role of their own.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "cases.create": STAFF,
    "cases.list": STAFF,
    "cases.read": STAFF,
    **STAFF_ROLES,
    **RULE_PERMISSIONS,
    "reports.read": MANAGERS,
    "triage.suggest": STAFF,
    "me.duty": STAFF,
    "users.list": ("admin",),
    "users.create": ("admin",),
}


def current_user():
    """The authenticated staff user, or a 401 problem."""
    if "user" in g:
        return g.user
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "Unauthorized", "send 'Authorization: Bearer <token>'",
                      headers={"WWW-Authenticate": "Bearer"})
    with current_app.extensions["aftersales"].sessions() as session:
        user = user_for_token(session, token.strip())
        if user is None:
            raise Problem(401, "Unauthorized", "the token is unknown or revoked",
                          headers={"WWW-Authenticate": "Bearer"})
        g.user = user
    return g.user


def require(permission: str):
    """Decorator: the caller must hold `permission` (401 without a token, 403 without
    the role)."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            check(permission)
            return view(*args, **kwargs)
        return wrapper
    return decorator


def check(permission: str) -> None:
    user = current_user()
    allowed = PERMISSIONS[permission]
    if user.role not in allowed:
        raise Problem(403, "Forbidden",
                      f"'{permission}' needs the role {' or '.join(allowed)}; "
                      f"you are {user.role}")
