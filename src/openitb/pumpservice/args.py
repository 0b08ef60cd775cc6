"""Validation of command arguments arriving in CBOR: each one typed, ranged and named.

A bad argument raises CommandError("bad_argument", reason) whose reason names the argument, the
value given and what is allowed. Quantities travel as text with a unit ("400 mcg/day"), so a bare
number (mcg or mg? per hour or per day?) is refused rather than guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from openitb.errors import InvalidInput
from openitb.telemetry.session import CommandError
from openitb.therapy.prescription import Prescription, parse_prescription
from openitb.units import Quantity, parse

Q = TypeVar("Q", bound=Quantity)
Parser = Callable[[Any, str], Any]
MAX_TEXT = 200


SHOWN = 60


def shown(value: Any) -> str:
    """A short description of ``value`` whose cost does not depend on its size: a container is
    described by its length (never walked; shared references make one 2^40 items wide), a long
    text or number is cut before it is formatted."""
    if isinstance(value, str):
        cut = value[:SHOWN]
        return repr(cut) + (f"... ({len(value)} characters)" if len(value) > SHOWN else "")
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > 64:
            return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    if isinstance(value, Mapping):
        return f"a map of {len(value)} entries"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} items"
    return f"a {type(value).__name__[:20]}"


def bad(name: str, given: Any, allowed: str) -> CommandError:
    return CommandError("bad_argument", f"{shown_name(name)}: got {shown(given)}; {allowed}")


def shown_name(name: Any) -> str:
    text = str(name) if isinstance(name, str) else shown(name)
    return text if len(text) <= 40 else text[:37] + "..."


def quantity(cls: type[Q]) -> Parser:
    def p(value: Any, name: str) -> Q:
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise bad(name, value, f"text with a unit, such as '{cls.example}'")
        try:
            return parse(value, cls, name)
        except InvalidInput as exc:
            raise bad(name, value, exc.allowed) from None
    return p


def integer(lo: int, hi: int) -> Parser:
    def p(value: Any, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise bad(name, value, f"a whole number from {lo} to {hi}")
        return value
    return p


def choice(options: tuple[str, ...]) -> Parser:
    def p(value: Any, name: str) -> str:
        if not isinstance(value, str) or value not in options:
            raise bad(name, value, f"one of {', '.join(options)}")
        return value
    return p


def text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise bad(name, value, f"non-empty text of at most {MAX_TEXT} characters")
    return value.strip()


def timestamp(value: Any, name: str) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise bad(name, value, "an ISO 8601 date-time with a UTC offset")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise bad(name, value, "an ISO 8601 date-time with a UTC offset") from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise bad(name, value, "an ISO 8601 date-time with a UTC offset, e.g. +00:00")
    return t


def prescription(value: Any, name: str) -> Prescription:
    if not isinstance(value, Mapping):
        raise bad(name, value, "a map in the prescription schema (docs/prescriptions.md)")
    try:
        return parse_prescription(value)
    except InvalidInput as exc:
        raise bad(f"{name}.{exc.field}", exc.given, exc.allowed) from None
    except (TypeError, ValueError) as exc:
        raise bad(name, value, f"a valid prescription ({exc})") from None


# Every write may carry the pump state version its review saw; the pump refuses the write
# (``precondition_failed``) when the version no longer matches. Additive: absent means none.
PRECONDITION = "expect_version"


def precondition(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise bad(name, value, "the pump's state version from read_status (a whole number)")
    return value


def validate(args: Mapping[str, Any], schema: Mapping[str, tuple[Parser, bool]],
             command: str) -> dict[str, Any]:
    """Check ``args`` against ``schema`` (name -> (parser, required)); unknown names refused."""
    extra = [k for k in args if k not in schema]
    if extra:
        allowed = ", ".join(sorted(schema)) or "no arguments"
        named = ", ".join(shown_name(k) for k in extra[:3]) + (
            f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        raise CommandError("bad_argument", f"{command} does not take {named}; it takes {allowed}")
    out: dict[str, Any] = {}
    for name, (parser, required) in schema.items():
        if name not in args:
            if required:
                raise CommandError("bad_argument", f"{command} needs {name}")
            continue
        out[name] = parser(args[name], name)
    return out
