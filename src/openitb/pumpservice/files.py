"""What a served pump reads from its state directory, checked before it is believed.

Key material is private: a key file, ``keys.json`` and the state directory that holds them are
refused when group or others may read or write them (as ssh refuses a private key), or when they
belong to another user, with the chmod that fixes it. Every file is validated by a schema
(pydantic, strict: no coercion, no extra fields); a file of the wrong shape is refused with a
message naming the file, never read as "empty" (a ptm.json that silently became empty would
clear the patient's bolus limits and history). Messages about key files never show their
values.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from openitb.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)
SERIAL_OR_EMPTY = r"^([A-Za-z0-9][A-Za-z0-9._-]{0,39})?$"
MAX_STATE_FILE = 1 << 20
MAX_ACTIVATIONS = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class IdentityDoc(_Strict):
    serial: str = Field(pattern=SERIAL_OR_EMPTY, min_length=1)
    profile: str = Field(min_length=1, max_length=40)
    created: str = Field(min_length=1, max_length=40)


# Keys are text here; store._key() checks them as 64 hex digits without showing them.
class KeyFileDoc(_Strict):
    serial: str = Field(default="", pattern=SERIAL_OR_EMPTY)
    role: Literal["clinician", "patient"]
    key: str = Field(max_length=128)


class KeysDoc(_Strict):
    serial: str = Field(pattern=SERIAL_OR_EMPTY)
    clinician: str = Field(max_length=128)
    patient: str = Field(max_length=128)


class PtmLimitsDoc(_Strict):
    dose_mcg: float = Field(gt=0, allow_inf_nan=False)
    duration_s: int = Field(ge=0)
    lockout_s: int = Field(ge=0)
    max_per_day: int = Field(ge=0)


class PtmDoc(_Strict):
    limits: PtmLimitsDoc | None
    activations: list[int] = Field(max_length=MAX_ACTIVATIONS)


def check_private(path: Path, what: str) -> None:
    """Refuse ``path`` (a file or a directory) unless only its owner, this user, may use it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InvalidInput(what, str(path), "an existing file (create the pump with "
                           "`itb pump new`)") from None
    fix = "700" if stat.S_ISDIR(st.st_mode) else "600"
    if st.st_uid != os.getuid():
        raise InvalidInput(what, str(path), f"owned by this user (uid {os.getuid()}), not uid "
                           f"{st.st_uid}: a key another user controls is not private")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise InvalidInput(what, f"{path} (mode {mode:04o})", f"readable and writable by its "
                           f"owner only, as ssh requires of a private key; run: chmod {fix} "
                           f"{path}")


def _problems(exc: ValidationError) -> str:
    # Locations and messages only: the input may be key material.
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}"
                     for e in exc.errors()[:5])


def load(path: Path, model: type[M], what: str) -> M:
    """Read ``path`` as JSON and validate it by ``model``; InvalidInput naming the file."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_STATE_FILE + 1)
    except FileNotFoundError:
        raise InvalidInput(what, str(path), "an existing file (create the pump with "
                           "`itb pump new`)") from None
    if len(data) > MAX_STATE_FILE:
        raise InvalidInput(what, str(path), f"a state file of at most {MAX_STATE_FILE} bytes")
    try:
        doc: Any = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(what, str(path), f"valid JSON ({str(exc)[:80]})") from None
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise InvalidInput(what, str(path), f"a file of the {model.__name__} schema "
                           f"({_problems(exc)})") from None
