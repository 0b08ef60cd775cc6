"""Sessions and CSRF.

The session is a signed cookie (HttpOnly, SameSite=Lax, Secure when asked) that holds the user id
and a CSRF token. Every visitor gets one, so the login form is protected too; signing in issues a
new token. Every unsafe request must carry the token: a form field ``csrf_token`` or the header
``X-CSRF-Token`` (htmx and the JSON API).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from openitb.errors import InvalidInput
from openitb.store.models import Setting

COOKIE = "openitb_session"
MAX_AGE_S = 12 * 3600
SECRET_KEY_SETTING = "session_secret"


def secret_key(session: Session) -> str:
    """OPENITB_SECRET_KEY, else one made once and kept in the database (sessions survive a
    restart)."""
    env = os.environ.get("OPENITB_SECRET_KEY")
    if env:
        return env
    row = session.get(Setting, SECRET_KEY_SETTING)
    if row is None:
        row = Setting(key=SECRET_KEY_SETTING, value=secrets.token_urlsafe(48))
        session.add(row)
        session.commit()
    return row.value


class SessionCodec:
    def __init__(self, key: str) -> None:
        self.serializer = URLSafeTimedSerializer(key, salt="openitb-session")

    def load(self, cookie: str | None) -> dict[str, Any] | None:
        if not cookie:
            return None
        try:
            data = self.serializer.loads(cookie, max_age=MAX_AGE_S)
        except BadSignature:
            return None
        return data if isinstance(data, dict) and isinstance(data.get("csrf"), str) else None

    def dump(self, data: dict[str, Any]) -> str:
        return str(self.serializer.dumps(data))


def new_session(uid: int | None = None, epoch: int = 0) -> dict[str, Any]:
    return {"uid": uid, "epoch": epoch, "csrf": secrets.token_urlsafe(32)}


def csrf_ok(session: dict[str, Any], given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(str(session.get("csrf", "")), str(given))


def dumps(value: Any) -> str:
    return json.dumps(value)


DEFAULT_BASE_URL = "http://127.0.0.1:8000"
FLASH_CHARS = 300


def base_url(value: str | None = None) -> str:
    """Where the clinic is reached from outside (OPENITB_BASE_URL): links that leave the
    browser (calendar feeds, password links) are built on it, never on the request's Host."""
    raw = value if value is not None else os.environ.get("OPENITB_BASE_URL", DEFAULT_BASE_URL)
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
            or parts.fragment or any(ch.isspace() for ch in raw.strip()):
        raise InvalidInput("OPENITB_BASE_URL", raw[:200],
                           "an http:// or https:// URL such as https://itb.clinic.example")
    return raw.strip().rstrip("/")


def flash(session: dict[str, Any], message: str) -> None:
    """A message for the next page this session shows (kept in the signed session cookie)."""
    session["flash"] = message[:FLASH_CHARS]


def take_flash(session: dict[str, Any]) -> str | None:
    message = session.pop("flash", None)
    return message if isinstance(message, str) else None
