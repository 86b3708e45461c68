"""Who is calling: bearer tokens for the API, and the role check in one place."""

from __future__ import annotations

from functools import wraps

from flask import current_app, g, request

from db.accounts import user_for_token
from web.problems import Problem

STAFF = ("handler", "supervisor", "admin")
# Who may do what. Actions not listed are open to every staff role.
ACTION_ROLES: dict[str, tuple[str, ...]] = {
    "approve": ("supervisor", "admin"),
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


def require_role(*roles: str):
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user.role not in roles:
                raise Problem(403, "Forbidden", f"role '{user.role}' may not do this")
            return view(*args, **kwargs)
        return wrapper
    return decorator


def check_action_role(action: str) -> None:
    user = current_user()
    allowed = ACTION_ROLES.get(action, STAFF)
    if user.role not in allowed:
        raise Problem(403, "Forbidden",
                      f"'{action}' needs the role {' or '.join(allowed)}")
