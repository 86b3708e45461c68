"""Staff accounts: users with hashed passwords and API tokens stored as hashes."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from db.models import ApiToken, User, UserTeam
from workflows.case.vocabulary import LOCALES, RESERVED_NAMES, ROLES, TEAM_NAME


class AccountError(ValueError):
    """A user or token request that cannot be carried out."""


def create_user(session: Session, name: str, role: str, password: str | None = None,
                email: str = "", locale: str = "", display_name: str = "",
                teams: list[str] | tuple[str, ...] = ()) -> User:
    """A new active user, on duty, in `teams` (docs/teams.md)."""
    if role not in ROLES:
        raise AccountError(f"unknown role '{role}' (one of {', '.join(ROLES)})")
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(
            ".", "").isalnum():
        raise AccountError("a user name is 1-64 letters, digits, '.', '-' or '_'")
    if name.lower() in RESERVED_NAMES:
        raise AccountError(f"'{name}' names who acted on the timeline besides users; "
                           "choose another user name")
    if locale and locale not in LOCALES:
        raise AccountError(f"unknown locale '{locale}' (one of {', '.join(LOCALES)})")
    if len(display_name) > 40 or display_name != display_name.strip():
        raise AccountError("a display name is at most 40 characters, without leading or "
                           "trailing spaces")
    for team in teams:
        if not re.match(TEAM_NAME, team):
            raise AccountError(f"'{team}': a team name is 1-40 letters, digits, '.', '-' "
                               "or '_'")
    if session.get(User, name) is not None:
        raise AccountError(f"user '{name}' already exists")
    user = User(
        name=name,
        role=role,
        password_hash=generate_password_hash(password) if password else None,
        active=True,
        created_at=datetime.now(UTC),
        email=email,
        locale=locale,
        display_name=display_name,
        on_duty=True,
    )
    session.add(user)
    session.flush()
    session.add_all(UserTeam(user_name=name, team=team) for team in dict.fromkeys(teams))
    return user


def set_on_duty(session: Session, name: str, on_duty: bool) -> None:
    """On duty (routing may give the user new cases) or away (it gives them none)."""
    user = session.get(User, name)
    if user is None:
        raise AccountError(f"no user '{name}'")
    user.on_duty = on_duty


def get_user(session: Session, name: str) -> User | None:
    return session.get(User, name)


# Checked when the name is unknown (or has no password), so a sign-in takes as long
# whether or not the user exists: names cannot be told apart by timing.
_DUMMY_HASH = generate_password_hash("not a password of anyone")


def check_password(session: Session, name: str, password: str) -> User | None:
    user = session.get(User, name)
    if user is None or not user.active or not user.password_hash:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def end_sessions(session: Session, name: str) -> None:
    """End every sign-in session of the user: the next request of each is refused."""
    user = session.get(User, name)
    if user is not None:
        user.session_version += 1


def create_token(session: Session, user_name: str) -> str:
    """A new API token for the user; only its hash is stored, so show it now."""
    if session.get(User, user_name) is None:
        raise AccountError(f"no user '{user_name}'")
    token = "as_" + secrets.token_urlsafe(32)
    session.add(ApiToken(token_hash=_hash(token), user_name=user_name,
                         created_at=datetime.now(UTC), revoked=False))
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.get(ApiToken, _hash(token))
    if row is None or row.revoked:
        return None
    user = session.get(User, row.user_name)
    return user if user is not None and user.active else None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))
