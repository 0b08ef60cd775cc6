"""Personal access tokens for API clients: ``Authorization: Bearer <token>`` instead of the
session cookie (and so without a CSRF header: a browser never adds this header by itself).

A token acts as its owner, with the owner's role as it is at each request (roles.toml and the
permission table decide what it may do; a token adds no right of its own). It is shown once;
only its SHA-256 is stored (tokens are 256-bit random, so a fast hash is enough). It stops when
it expires (by the wall clock, as password links do), when it is revoked, or when its owner's
account is deactivated. Creating one needs a signed-in browser session (a password behind it):
a leaked token cannot mint its own successors. Every create and revoke is in the audit trail.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openitb.clinic.uow import Actor, Forbidden, UnitOfWork, brief
from openitb.errors import InvalidInput, RefusedOperation
from openitb.store.models import ApiToken, User

PREFIX = "itb_"
DEFAULT_DAYS, MAX_DAYS = 90, 365
MAX_ACTIVE = 20  # per user: a runaway script cannot grow the table without bound
NAME_MAX = 80


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _wall_now() -> datetime:
    from openitb.clinic.clock import wall_now

    return wall_now()


def _owner(uow: UnitOfWork) -> User:
    user = uow.session.get(User, uow.actor.user_id) if uow.actor.user_id else None
    if user is None or not user.active:
        raise Forbidden("only a signed-in account has personal access tokens")
    return user


def _name(raw: object) -> str:
    allowed = f"1 to {NAME_MAX} characters, no control characters (what the token is for)"
    text = raw.strip() if isinstance(raw, str) else ""
    if not text or len(text) > NAME_MAX or any(unicodedata.category(c)[0] == "C" for c in text):
        raise InvalidInput("name", brief(raw, 40), allowed)
    return text


def _days(raw: object) -> int:
    allowed = f"a whole number of days, 1 to {MAX_DAYS}"
    if raw is None:
        return DEFAULT_DAYS
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_DAYS:
        raise InvalidInput("expires_in_days", brief(raw, 40), allowed)
    return raw


def create(uow: UnitOfWork, name: object, expires_in_days: object = None, *,
           by_session: bool) -> tuple[ApiToken, str]:
    """A new token for the signed-in user; returns the row and the token (shown once)."""
    uow.action = "api_token_create"
    if not by_session:
        raise Forbidden("a personal access token is created from a signed-in session (the "
                        "account page or the API with the session cookie), not with a token")
    user = _owner(uow)
    label, days = _name(name), _days(expires_in_days)
    uow.claim(user)  # two creates at once are serialised on the account's version
    now = _wall_now()
    active = uow.session.scalar(select(func.count()).select_from(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > now))
    if (active or 0) >= MAX_ACTIVE:
        raise RefusedOperation(f"you already have {MAX_ACTIVE} active tokens: revoke one first",
                               code="conflict")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=label, prefix=token[:len(PREFIX) + 6],
                   token_hash=_hash(token), created_at=now, expires_at=now + timedelta(days=days))
    uow.session.add(row)
    uow.flush()
    uow.audit("api_token_create", "api_token", row.id, None,
              {"name": label, "prefix": row.prefix, "expires_at": row.expires_at,
               "user_id": user.id})
    return row, token


def listed(uow: UnitOfWork) -> list[ApiToken]:
    """The signed-in user's tokens, newest first (revoked and expired ones too)."""
    uow.action = uow.action or "api_token_list"
    user = _owner(uow)
    return list(uow.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                                    .order_by(ApiToken.id.desc())))


def revoke(uow: UnitOfWork, token_id: object) -> ApiToken:
    """Revoke one of one's own tokens (at once: the next request with it is 401)."""
    uow.action = "api_token_revoke"
    user = _owner(uow)
    row = uow.session.get(ApiToken, token_id) if isinstance(token_id, int) else None
    if row is None or row.user_id != user.id:  # another user's token is not even named
        raise RefusedOperation(f"you have no token {brief(token_id, 20)}", code="not_found")
    if row.revoked_at is None:
        row.revoked_at = _wall_now()
        uow.audit("api_token_revoke", "api_token", row.id, None,
                  {"name": row.name, "prefix": row.prefix, "revoked_at": row.revoked_at})
    return row


def actor_for_token(session: Session, token: str) -> Actor | None:
    """The actor a bearer token stands for, or None (unknown, revoked, expired, or the account
    is gone or inactive)."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= _wall_now():
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return Actor(user.username, user.role, user.id, user.patient_id, user.session_epoch)
