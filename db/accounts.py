"""Staff accounts: users with hashed passwords and API tokens stored as hashes, and
their lifecycle: deactivation, password changes, token expiry and revocation."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from db.cases import as_utc
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


def _user(session: Session, name: str) -> User:
    user = session.get(User, name)
    if user is None:
        raise AccountError(f"no user '{name}'")
    return user


def set_active(session: Session, name: str, active: bool) -> User:
    """Deactivate (sign-in sessions end; tokens and sign-in stop working while inactive)
    or activate the user again (the ended sessions stay ended)."""
    user = _user(session, name)
    user.active = active
    if not active:
        user.session_version += 1
    return user


# Passwords set or changed from now on; older accounts keep theirs until they change it.
MIN_PASSWORD_LENGTH = 10


def set_password(session: Session, name: str, password: str) -> User:
    """A new password for the user (an admin's reset, or the user's own change): every
    sign-in session of the user ends; the caller re-issues the one that should stay."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 200:
        raise AccountError("a password has at most 200 characters")
    user = _user(session, name)
    user.password_hash = generate_password_hash(password)
    user.session_version += 1
    return user


def change_password(session: Session, name: str, current: str, new: str) -> User:
    """The user's own change: only with the current password."""
    if check_password(session, name, current) is None:
        raise AccountError("the current password is wrong")
    return set_password(session, name, new)


TOKEN_PREFIX = "as_"
TOKEN_ID_PREFIX = "tk_"
# last_used_at moves on at most this often per token: not a write per request.
TOKEN_USE_GRANULARITY = timedelta(minutes=1)


def create_token(session: Session, user_name: str, expires_in: timedelta | None = None,
                 now: datetime | None = None) -> str:
    """A new API token for the user, expiring after `expires_in` (None: never); only its
    hash is stored, so show it now. `find_token` gives its row (public id, expiry)."""
    if session.get(User, user_name) is None:
        raise AccountError(f"no user '{user_name}'")
    now = now or datetime.now(UTC)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(token_hash=_hash(token), id=_new_token_id(session),
                         user_name=user_name, created_at=now, revoked=False,
                         expires_at=now + expires_in if expires_in else None))
    session.flush()
    return token


def _new_token_id(session: Session) -> str:
    while True:
        token_id = TOKEN_ID_PREFIX + secrets.token_hex(4)
        if session.scalar(select(ApiToken.id).where(ApiToken.id == token_id)) is None:
            return token_id


def authenticate_token(session: Session, token: str, now: datetime | None = None
                       ) -> tuple[User | None, str]:
    """The user a token speaks for, or None and why not: `unknown`, `revoked`,
    `expired` or `inactive` (the user is deactivated). Notes the use on the token, at
    most once a minute; the caller commits."""
    now = now or datetime.now(UTC)
    row = session.get(ApiToken, _hash(token))
    if row is None:
        return None, "unknown"
    if row.revoked:
        return None, "revoked"
    if row.expires_at is not None and as_utc(row.expires_at) <= now:
        return None, "expired"
    user = session.get(User, row.user_name)
    if user is None or not user.active:
        return None, "inactive"
    if row.last_used_at is None or as_utc(row.last_used_at) <= now - TOKEN_USE_GRANULARITY:
        row.last_used_at = now
    return user, ""


def user_for_token(session: Session, token: str) -> User | None:
    return authenticate_token(session, token)[0]


def find_token(session: Session, token_or_id: str) -> ApiToken | None:
    """A token's row by the token itself or by its public id."""
    if token_or_id.startswith(TOKEN_PREFIX):
        return session.get(ApiToken, _hash(token_or_id))
    return session.scalar(select(ApiToken).where(ApiToken.id == token_or_id))


def revoke_token(session: Session, token_or_id: str) -> ApiToken:
    """Revoke a token (given itself or its id) for good; revoking it again is harmless."""
    row = find_token(session, token_or_id)
    if row is None:
        raise AccountError(f"no token '{_shown(token_or_id)}' (give the token or its id, "
                           "as `aftersales token list NAME` prints it)")
    row.revoked = True
    return row


def _shown(token_or_id: str) -> str:
    """What an error may repeat of what was typed: never a whole token."""
    if token_or_id.startswith(TOKEN_PREFIX):
        return token_or_id[:len(TOKEN_PREFIX) + 4] + "…"
    return token_or_id[:40]


def list_tokens(session: Session, user_name: str) -> list[ApiToken]:
    """The user's tokens, newest first, revoked and expired ones too."""
    return list(session.scalars(select(ApiToken).where(ApiToken.user_name == user_name)
                                .order_by(ApiToken.created_at.desc(), ApiToken.id)))


def token_state(row: ApiToken, now: datetime | None = None) -> str:
    """`active`, `expired` or `revoked`."""
    now = now or datetime.now(UTC)
    if row.revoked:
        return "revoked"
    if row.expires_at is not None and as_utc(row.expires_at) <= now:
        return "expired"
    return "active"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))
