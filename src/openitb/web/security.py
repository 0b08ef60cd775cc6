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

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session

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
