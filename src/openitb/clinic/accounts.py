"""Accounts, roles and the permission table; passwords hashed with argon2 (memory-hard).

User names have one normal form (:func:`normalise_username`), used by account creation, sign-in
and the sign-in throttle alike. Nobody chooses or learns another user's password: an
administrator creates an account (or a patient's clinician a patient account) and hands over a
one-time link (:func:`issue_link`; expiring, single use, only its SHA-256 kept) with which the
user sets it. Changing or setting a password ends every session of the user and revokes the
calendar feed token.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from openitb.clinic import labels
from openitb.clinic.uow import Actor, Forbidden, UnitOfWork, brief, snapshot
from openitb.errors import InvalidInput, RefusedOperation
from openitb.safety import load_permissions
from openitb.store.models import PasswordLink, Patient, User
from openitb.therapy.guardrails import Classification

USERNAME_MAX = 80
PASSWORD_MIN, PASSWORD_MAX = 8, 200
LINK_TTL = {"setup": timedelta(days=3), "reset": timedelta(hours=24)}
NO_PASSWORD = "!"  # not an argon2 hash: nothing verifies against it until a link sets one
LINK_INVALID = "this link is not valid: it was used, it expired, or it was never issued"

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
    "link_patient": STAFF,                     # a patient or caregiver account for a patient
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
    "link_patient": "linking an account to a patient (the patient's clinician does this)",
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


def check_password_rules(password: object) -> str:
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        size = f"{len(password)} characters" if isinstance(password, str) else brief(password)
        raise InvalidInput("password", size, f"{PASSWORD_MIN} to {PASSWORD_MAX} characters")
    return password


def normalise_username(raw: object) -> str:
    """The one normal form of a user name: Unicode NFKC, case-folded, trimmed; letters, digits,
    dots and hyphens only, 1 to 80 characters. Anything else is refused, never cut to fit."""
    allowed = f"1 to {USERNAME_MAX} letters, digits, dots or hyphens"
    if not isinstance(raw, str):
        raise InvalidInput("username", brief(raw), allowed)
    if len(raw) > 4 * USERNAME_MAX:
        raise InvalidInput("username", f"{len(raw)} characters", allowed)
    name = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold()).strip()
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise InvalidInput("username", brief(raw), allowed + " (no control characters)")
    if not name or len(name) > USERNAME_MAX:
        raise InvalidInput("username", f"{len(name)} characters", allowed)
    if not all(ch.isalnum() or ch in ".-" for ch in name):
        raise InvalidInput("username", brief(raw), allowed)
    return name


def patient_ref(uow: UnitOfWork, raw: object) -> int | None:
    """A patient id from outside (None when absent): a registered patient, or refused."""
    if raw is None or raw == "":
        return None
    allowed = "the id of a registered patient (a whole number)"
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 63:
        raise InvalidInput("patient_id", f"a {raw.bit_length()}-bit number", allowed)
    text = str(raw).strip() if isinstance(raw, int | str) and not isinstance(raw, bool) else ""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise InvalidInput("patient_id", brief(raw, 40), allowed)
    pid = int(text)
    if not 0 < pid < 2**31 or uow.session.get(Patient, pid) is None:
        raise InvalidInput("patient_id", pid, allowed)
    return pid


def _new_user(uow: UnitOfWork, username: object, display_name: object, role: object,
              password: str | None, patient_id: int | None) -> User:
    name = normalise_username(username)
    if role not in ROLES:
        raise InvalidInput("role", brief(role, 40), f"one of {', '.join(ROLES)}")
    if role == "patient" and patient_id is None:
        raise InvalidInput("patient_id", None, "a patient account must name its patient")
    if role != "patient" and patient_id is not None:
        raise InvalidInput("patient_id", patient_id, "only a patient account names a patient")
    shown = str(display_name or "").strip()
    if len(shown) > 200 or any(unicodedata.category(ch)[0] == "C" for ch in shown):
        raise InvalidInput("display_name", brief(shown), "up to 200 characters, no control "
                           "characters")
    secret = hash_password(check_password_rules(password)) if password is not None \
        else NO_PASSWORD
    taken = f"the username {name!r} is taken"
    if uow.session.scalar(select(User).where(User.username == name)) is not None:
        raise RefusedOperation(taken, code="conflict")
    user = User(username=name, display_name=shown or name, role=role, password_hash=secret,
                patient_id=patient_id, created_at=uow.now)
    uow.session.add(user)
    uow.flush(taken)  # the same name created at the same moment: the database's unique index
    uow.audit("create_user", "user", user.id, None, snapshot(user))
    return user


def create_user(uow: UnitOfWork, username: str, display_name: str, role: str,
                password: str | None = None, patient_id: object = None) -> User:
    """A new account. An administrator gives no password (the user sets it with the one-time
    link from :func:`issue_link`) and cannot link an account to a patient (the patient's
    clinician does, :func:`create_patient_account`); the system (the CLI, the demo) may."""
    uow.action = "create_user"
    if uow.actor.role != "system":
        require(uow.actor, "accounts")
    pid = patient_ref(uow, patient_id)
    if uow.actor.role != "system":
        if password is not None:
            raise Forbidden("an administrator does not choose another user's password: create "
                            "the account and hand its user the one-time setup link")
        if role == "patient":
            raise Forbidden("a patient or caregiver account is linked by the patient's "
                            "clinician, from the patient's page")
    return _new_user(uow, username, display_name, role, password, pid)


def create_patient_account(uow: UnitOfWork, patient_id: object, username: str,
                           display_name: str) -> tuple[User, str]:
    """A patient or caregiver account, made by the patient's clinician (staff), with its
    one-time setup link."""
    uow.action = "create_patient_account"
    require(uow.actor, "link_patient")
    pid = patient_ref(uow, patient_id)
    user = _new_user(uow, username, display_name, "patient", None, pid)
    return user, issue_link(uow, user.id, "setup", checked=True)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _wall_now() -> datetime:
    from openitb.clinic.clock import wall_now

    return wall_now()  # links and sign-ins expire by the wall clock, not the demo clock


def issue_link(uow: UnitOfWork, user_id: object, purpose: str = "reset", *,
               checked: bool = False) -> str:
    """A one-time link token to set (``setup``) or reset a password; earlier unused links of
    the user stop working. Shown once to whoever issues it, kept only as its SHA-256."""
    uow.action = uow.action or "issue_password_link"
    if not checked:
        require(uow.actor, "accounts")
    if purpose not in LINK_TTL:
        raise InvalidInput("purpose", brief(purpose, 20), "setup or reset")
    user: User = uow.get(User, user_id, "user")
    uow.claim(user)  # two links issued at once: one is refused, so only one link works
    now = _wall_now()
    uow.session.execute(update(PasswordLink).where(PasswordLink.user_id == user.id,
                                                   PasswordLink.used_at.is_(None))
                        .values(used_at=now))
    token = secrets.token_urlsafe(32)
    link = PasswordLink(user_id=user.id, token_hash=_token_hash(token), purpose=purpose,
                        created_at=now, expires_at=now + LINK_TTL[purpose],
                        issued_by=uow.actor.username)
    uow.session.add(link)
    uow.flush()
    uow.audit("issue_password_link", "user", user.id, None,
              {"purpose": purpose, "expires_at": link.expires_at, "link_id": link.id})
    return token


def link_user(session: Session, token: str) -> User | None:
    """The user a still valid link is for (to greet them on the form), or None."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    link = session.scalar(select(PasswordLink).where(PasswordLink.token_hash == _token_hash(token)))
    if link is None or link.used_at is not None or link.expires_at <= _wall_now():
        return None
    return session.get(User, link.user_id)


def use_link(uow: UnitOfWork, token: str, new_password: str) -> User:
    """Set the password with a one-time link: single use even under racing requests."""
    uow.action = "use_password_link"
    user = link_user(uow.session, token)
    if user is None:
        raise RefusedOperation(LINK_INVALID, code="not_found")
    check_password_rules(new_password)
    now = _wall_now()
    used = uow.session.execute(
        update(PasswordLink).where(PasswordLink.token_hash == _token_hash(token),
                                   PasswordLink.used_at.is_(None),
                                   PasswordLink.expires_at > now)
        .values(used_at=now))
    if getattr(used, "rowcount", 0) != 1:
        raise RefusedOperation(LINK_INVALID, code="not_found")
    _set_password(uow, user, new_password, "use_password_link")
    return user


def _set_password(uow: UnitOfWork, user: User, password: str, action: str) -> None:
    user.password_hash = hash_password(password)
    user.session_epoch += 1  # every session ends
    user.feed_token = None   # and the calendar feed stops
    uow.audit(action, "user", user.id, None,
              {"session_epoch": user.session_epoch, "feed_token": "revoked"})


def change_password(uow: UnitOfWork, current: str, new: str) -> Actor:
    """Change one's own password (the current one is needed); every session ends, the
    calendar feed token is revoked. Returns the actor for the new session."""
    uow.action = "change_password"
    user = uow.session.get(User, uow.actor.user_id) if uow.actor.user_id else None
    if user is None:
        raise Forbidden("no account")
    check_password_rules(new)
    if not _verify(user, current):
        raise RefusedOperation("the current password is wrong: nothing was changed",
                               code="forbidden")
    if _verify(user, new):
        raise InvalidInput("new_password", "the current password", "a different password")
    _set_password(uow, user, new, "change_password")
    uow.flush()
    return Actor(user.username, user.role, user.id, user.patient_id, user.session_epoch)


def _verify(user: User, password: object) -> bool:
    if not isinstance(password, str) or len(password) > PASSWORD_MAX or not user.active:
        return False
    try:
        return bool(_hasher.verify(user.password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def authenticate(uow: UnitOfWork, username: object, password: object) -> Actor:
    """The actor for good credentials; a refusal (logged) otherwise, saying nothing more."""
    uow.action = "login"
    try:
        name = normalise_username(username)
    except InvalidInput:
        name = ""
    user = uow.session.scalar(select(User).where(User.username == name)) if name else None
    ok = _verify(user, password) if user is not None else False
    if user is None:
        _hasher.hash("same cost whether or not the user exists")
    if not ok or user is None:
        uow.actor = Actor(name or "-", "anonymous")
        uow.counted = user is None  # a guess at a real account is an audit row
        raise RefusedOperation("wrong username or password", code="unauthenticated")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(str(password))
    uow.audit("login", "user", user.id, None, {"username": user.username})
    return Actor(user.username, user.role, user.id, user.patient_id, user.session_epoch)


def load_actor(session: Session, user_id: int, epoch: int = 0) -> Actor | None:
    """The actor of a session, or None if the user is gone, inactive, or signed out since.

    Read from the database on every request, never from a cache: a role changed, an account
    deactivated or a password changed (session epoch) by any worker process takes effect on
    the very next request everywhere. One indexed row, no ORM object (this runs per request)."""
    row = session.execute(
        select(User.username, User.role, User.patient_id, User.active, User.session_epoch,
               User.display_name, Patient.name.label("patient_name"))
        .outerjoin(Patient, Patient.id == User.patient_id)
        .where(User.id == user_id)).one_or_none()
    if row is None or not row.active or row.session_epoch != epoch:
        return None
    return Actor(row.username, row.role, user_id, row.patient_id, row.session_epoch,
                 labels.person(row.display_name, row.role, row.patient_name))


def end_sessions(uow: UnitOfWork) -> None:
    """Sign out: every session of this user issued so far stops working."""
    uow.action = "logout"
    user = uow.session.get(User, uow.actor.user_id) if uow.actor.user_id else None
    if user is None:
        return
    user.session_epoch += 1
    uow.audit("logout", "user", user.id, None, {"session_epoch": user.session_epoch})


def _own_account(uow: UnitOfWork) -> User:
    user = uow.session.get(User, uow.actor.user_id) if uow.actor.user_id else None
    if user is None:
        raise Forbidden("no account")
    return user


def has_feed(uow: UnitOfWork) -> bool:
    return uow.actor.role in STAFF and bool(_own_account(uow).feed_token)


def issue_feed_token(uow: UnitOfWork) -> str:
    """A new calendar feed token (the old one, if any, stops working): shown once, kept as its
    SHA-256."""
    require(uow.actor, "view_clinic", uow)
    uow.action = "feed_token"
    user = _own_account(uow)
    rotated = bool(user.feed_token)
    token = secrets.token_urlsafe(32)
    user.feed_token = _token_hash(token)
    uow.audit("feed_token", "user", user.id, None,
              {"feed_token": "rotated" if rotated else "issued"})
    return token


def revoke_feed_token(uow: UnitOfWork) -> None:
    require(uow.actor, "view_clinic", uow)
    uow.action = "feed_token"
    user = _own_account(uow)
    if user.feed_token:
        user.feed_token = None
        uow.audit("feed_token", "user", user.id, None, {"feed_token": "revoked"})


def actor_for_feed(session: Session, token: str) -> Actor | None:
    if not token or len(token) > 64:
        return None
    user = session.scalar(select(User).where(User.feed_token == _token_hash(token)))
    if user is None or not user.active or user.role not in STAFF:
        return None
    return Actor(user.username, user.role, user.id, user.patient_id, user.session_epoch)
