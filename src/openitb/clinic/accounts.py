"""Accounts, roles and the permission table; passwords hashed with argon2 (memory-hard)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from openitb.clinic.uow import Actor, Forbidden, UnitOfWork, snapshot
from openitb.errors import InvalidInput, RefusedOperation
from openitb.safety import load_permissions
from openitb.store.models import User
from openitb.therapy.guardrails import Classification

ROLES = ("physician", "nurse", "patient", "admin")
STAFF = frozenset({"physician", "nurse"})


def _kernel(action: str) -> frozenset[str]:
    """Who may propose a change to a pump: the safety kernel's permission table
    (data/roles.toml), the one place it is written; the kernel applies it again on confirm."""
    return frozenset(r.value for r in load_permissions().by_action.get(action, frozenset()))


def _kernel_override() -> frozenset[str]:
    """Who may confirm beyond the recommended bounds (with a reason), from the same table."""
    return frozenset(r.value for r in
                     load_permissions().by_classification[Classification.ABOVE_RECOMMENDED])


# Which roles may do what. Patients reach only their own record (checked per use case).
PERMISSIONS: dict[str, frozenset[str]] = {
    "view_clinic": STAFF,                      # dashboard, patient list, any patient's record
    "view_own": frozenset({"patient"}),        # the patient/caregiver view of their own record
    "edit_patient": STAFF,                     # register, edit demographics and risk factors
    "checklist": STAFF,
    "screening": frozenset({"physician"}),
    "implant": _kernel("implant"),
    "program": _kernel("program"),             # beyond recommended bounds: see "override"
    "override": _kernel_override(),
    "refill": _kernel("refill"),
    "acknowledge": STAFF,
    "mri": STAFF,
    "replacement": _kernel("replacement"),
    "clock": frozenset({"physician", "nurse", "admin"}),
    "accounts": frozenset({"admin"}),
    "audit": frozenset({"admin"}),
}

ACTIONS = {
    "view_clinic": "seeing the clinic's patients", "view_own": "the patient's own view",
    "edit_patient": "registering or editing patients", "checklist": "the candidate checklist",
    "screening": "recording a screening trial", "implant": "recording an implant",
    "program": "programming a pump", "override": "programming beyond recommended bounds",
    "refill": "refilling a pump", "acknowledge": "acknowledging alarms",
    "mri": "recording an MRI", "replacement": "planning a replacement",
    "clock": "moving the demo clock", "accounts": "managing accounts",
    "audit": "reading the audit trail",
}

_hasher = PasswordHasher()


def require(actor: Actor, permission: str, uow: UnitOfWork | None = None) -> None:
    if uow is not None:
        uow.action = uow.action or permission
    if actor.role not in PERMISSIONS[permission]:
        raise Forbidden(f"not allowed for the {actor.role} role: {ACTIONS.get(permission, permission)}")


def require_patient_access(actor: Actor, patient_id: int) -> None:
    """Staff see every patient; a patient or caregiver only their own record."""
    if actor.role in STAFF:
        return
    if actor.role == "patient" and actor.patient_id == patient_id:
        return
    raise Forbidden("you may see only your own record")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_rules(password: str) -> str:
    if not 8 <= len(password) <= 200:
        raise InvalidInput("password", f"{len(password)} characters", "8 to 200 characters")
    return password


def create_user(uow: UnitOfWork, username: str, display_name: str, role: str, password: str,
                patient_id: int | None = None) -> User:
    uow.action = "create_user"
    if uow.actor.role != "system":
        require(uow.actor, "accounts")
    username = "".join(ch for ch in username if ch >= " ").strip().lower()
    if not username or len(username) > 80 or not username.replace(".", "").replace("-", "").isalnum():
        raise InvalidInput("username", username, "1 to 80 letters, digits, dots or hyphens")
    if role not in ROLES:
        raise InvalidInput("role", role, f"one of {', '.join(ROLES)}")
    if role == "patient" and patient_id is None:
        raise InvalidInput("patient_id", None, "a patient account must name its patient")
    check_password_rules(password)
    if uow.session.scalar(select(User).where(User.username == username)) is not None:
        raise RefusedOperation(f"the username {username!r} is taken", code="conflict")
    user = User(username=username, display_name=display_name.strip() or username, role=role,
                password_hash=hash_password(password), patient_id=patient_id,
                created_at=uow.now)
    uow.session.add(user)
    uow.session.flush()
    uow.audit("create_user", "user", user.id, None, snapshot(user))
    return user


def authenticate(uow: UnitOfWork, username: str, password: str) -> Actor:
    """The actor for good credentials; a refusal (logged) otherwise, saying nothing more."""
    uow.action = "login"
    username = "".join(ch for ch in username if ch >= " ")[:80]
    user = uow.session.scalar(select(User).where(User.username == username.strip().lower()))
    ok = False
    if user is not None and user.active:
        try:
            ok = _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            ok = False
    else:
        _hasher.hash(password)  # same cost whether or not the user exists
    if not ok or user is None:
        uow.actor = Actor(username.strip().lower()[:80] or "-", "anonymous")
        raise RefusedOperation("wrong username or password", code="unauthenticated")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    uow.audit("login", "user", user.id, None, {"username": user.username})
    return Actor(user.username, user.role, user.id, user.patient_id, user.session_epoch)


def load_actor(session: Session, user_id: int, epoch: int = 0) -> Actor | None:
    """The actor of a session, or None if the user is gone, inactive, or signed out since."""
    user = session.get(User, user_id)
    if user is None or not user.active or user.session_epoch != epoch:
        return None
    return Actor(user.username, user.role, user.id, user.patient_id, user.session_epoch)


def end_sessions(uow: UnitOfWork) -> None:
    """Sign out: every session of this user issued so far stops working."""
    uow.action = "logout"
    user = uow.session.get(User, uow.actor.user_id) if uow.actor.user_id else None
    if user is None:
        return
    user.session_epoch += 1
    uow.audit("logout", "user", user.id, None, {"session_epoch": user.session_epoch})


def feed_token(uow: UnitOfWork) -> str:
    """The user's calendar feed token, made on first use."""
    require(uow.actor, "view_clinic", uow)
    user = uow.session.get(User, uow.actor.user_id) if uow.actor.user_id else None
    if user is None:
        raise Forbidden("no account")
    if not user.feed_token:
        user.feed_token = secrets.token_urlsafe(32)
        uow.audit("feed_token", "user", user.id, None, {"feed_token": "issued"})
    return user.feed_token


def actor_for_feed(session: Session, token: str) -> Actor | None:
    if not token or len(token) > 64:
        return None
    user = session.scalar(select(User).where(User.feed_token == token))
    if user is None or not user.active or user.role not in STAFF:
        return None
    return Actor(user.username, user.role, user.id, user.patient_id, user.session_epoch)
