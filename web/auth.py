"""Who is calling: bearer tokens for the API, and the role check in one place."""

from __future__ import annotations

from functools import wraps

from flask import current_app, g, request

from db.accounts import authenticate_token
from web.problems import Problem
from workflows.case.lifecycle import RULE_PERMISSIONS, STAFF, STAFF_ROLES
from workflows.case.refusals import refused
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
    "users.deactivate": ("admin",),
    "users.activate": ("admin",),
    "users.set-password": ("admin",),
    "tokens.list": ("admin",),
    "tokens.revoke": ("admin",),
    "audit.read": ("admin",),
}


# Who may act on a case, by where the case stands to the caller (docs/roles.md, "Whose
# case"): on top of PERMISSIONS, checked for every action (web/commands.py). A user in
# no team works across all teams, as everyone did before teams existed.
OWNERSHIP: dict[str, tuple[str, ...]] = {
    "assigned to the caller": STAFF,
    "unassigned, in a team of the caller": STAFF,
    "unassigned, without a team": STAFF,
    "unassigned, in another team": ("admin",),
    "assigned to a colleague, in a team of the caller": MANAGERS,
    "assigned to someone, in another team": ("admin",),
}


NOT_YOUR_CASE = "not-your-case"


def case_standing(user_name: str, user_teams: list[str], assignee: str | None,
                  team: str | None) -> str:
    """Where a case stands to the caller: a key of OWNERSHIP."""
    if assignee is not None and assignee == user_name:
        return "assigned to the caller"
    ours = team is None or not user_teams or team in user_teams
    if assignee is None:
        if team is None:
            return "unassigned, without a team"
        return "unassigned, in a team of the caller" if ours else "unassigned, in another team"
    return ("assigned to a colleague, in a team of the caller" if ours
            else "assigned to someone, in another team")


def ownership_refusal(name: str, role: str, user_teams: list[str], case_id: str,
                      assignee: str | None, team: str | None) -> str | None:
    """Why the user `name` (of `role`, in `user_teams`) may not act on this case, or
    None (OWNERSHIP): the one reading of the table, for the API's 403 and for what the
    pages offer."""
    standing = case_standing(name, user_teams, assignee, team)
    if role in OWNERSHIP[standing]:
        return None
    if assignee is not None:
        return (f"case {case_id} is assigned to {assignee}; taking over is a "
                "supervisor's assign")
    return (f"case {case_id} is in the queue of team {team}, not of yours "
            f"({', '.join(user_teams)})")


def check_ownership(case_id: str, assignee: str | None, team: str | None,
                    user_teams: list[str]) -> None:
    """403 unless the caller may act on this case (OWNERSHIP)."""
    user = current_user()
    detail = ownership_refusal(user.name, user.role, user_teams, case_id, assignee, team)
    if detail is not None:
        raise Problem(403, "Not your case", detail, slug=NOT_YOUR_CASE)


def current_user():
    """The authenticated staff user, or a 401 problem."""
    if "user" in g:
        return g.user
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "Unauthorized", "send 'Authorization: Bearer <token>'",
                      headers={"WWW-Authenticate": "Bearer"})
    # A write only when the token's last use moves on (at most once a minute).
    with current_app.extensions["aftersales"].sessions.begin() as session:
        user, why = authenticate_token(session, token.strip())
        if user is None:
            raise Problem(401, "Unauthorized", REFUSED_TOKENS[why],
                          headers={"WWW-Authenticate": "Bearer"})
        g.user = user
    return g.user


# What a refused token's holder is told: they hold it, so nothing is given away.
REFUSED_TOKENS = {
    "unknown": "the token is unknown or revoked",
    "revoked": "the token is unknown or revoked",
    "expired": "the token has expired; ask an admin for a new one",
    "inactive": "the token's user is deactivated",
}


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
        raise Problem.refused(403, "Forbidden", refused(
            "wrong_role", permission=permission, roles=list(allowed), role=user.role))
