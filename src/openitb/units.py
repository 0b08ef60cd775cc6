"""Typed quantities: every dose, volume and rate carries its unit in its type.

The core stores each kind in one canonical unit (mcg, mL, mcg/mL, mcg/day, mL/day, hours) and
only lets dimensionally meaningful arithmetic through: a dose rate divided by a concentration is
a flow, a flow times a duration is a volume, and so on. Adding a dose to a volume is a TypeError.

Text from outside ("0.5 mg/mL", "400 mcg/day", "2 mL") is parsed at the edge by :func:`parse`
with one strict grammar (a plain decimal number and an allowlisted unit; pint only converts),
which refuses a missing unit, the wrong dimension, arithmetic, NaN, infinity and negatives with
an :class:`InvalidInput` naming the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from openitb.errors import InvalidInput

if TYPE_CHECKING:
    import pint

Q = TypeVar("Q", bound="Quantity")


@dataclass(frozen=True, order=True, slots=True)
class Quantity:
    """A non-negative, finite amount in the canonical unit of its subclass."""

    value: float

    symbol: ClassVar[str] = ""
    pint_unit: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    example: ClassVar[str] = ""

    def __post_init__(self) -> None:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InvalidInput(self.kind, v, f"a number of {self.symbol}")
        if math.isnan(v) or math.isinf(v):
            raise InvalidInput(self.kind, v, f"a finite number of {self.symbol}")
        if v < 0:
            raise InvalidInput(self.kind, v, f"zero or more {self.symbol}")
        object.__setattr__(self, "value", float(v))

    # Same-kind arithmetic -------------------------------------------------------------------
    def __add__(self: Q, other: Q) -> Q:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(self.value + other.value)

    def __sub__(self: Q, other: Q) -> Q:
        """Difference of two amounts of one kind; a negative result is refused (use delta())."""
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(self.value - other.value)

    def delta(self: Q, other: Q) -> float:
        """Signed difference self - other in the canonical unit (may be negative)."""
        if type(other) is not type(self):
            raise TypeError(f"cannot compare {type(self).__name__} with {type(other).__name__}")
        return self.value - other.value

    def __mul__(self, other: Any) -> Any:
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return type(self)(self.value * other)
        result = _PRODUCTS.get((type(self), type(other)))
        if result is None:
            return NotImplemented
        cls, factor = result
        return cls(self.value * other.value * factor)

    def __rmul__(self, other: Any) -> Any:
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return type(self)(self.value * other)
        return NotImplemented

    def __truediv__(self, other: Any) -> Any:
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            if other == 0:
                raise ZeroDivisionError(f"{self.kind} divided by zero")
            return type(self)(self.value / other)
        if type(other) is type(self):
            if other.value == 0:
                raise ZeroDivisionError(f"{self.kind} divided by zero {other.kind}")
            return self.value / other.value
        result = _QUOTIENTS.get((type(self), type(other)))
        if result is None:
            return NotImplemented
        if other.value == 0:
            raise ZeroDivisionError(f"{self.kind} divided by zero {other.kind}")
        cls, factor = result
        return cls(self.value / other.value * factor)

    def __str__(self) -> str:
        return f"{_fmt(self.value)} {self.symbol}"

    def __format__(self, spec: str) -> str:
        if not spec:
            return str(self)
        return f"{format(self.value, spec)} {self.symbol}"


def _fmt(v: float) -> str:
    return f"{v:.6g}"


class Micrograms(Quantity):
    symbol = "mcg"
    pint_unit = "microgram"
    kind = "mass"
    example = "50 mcg"


class Milliliters(Quantity):
    symbol = "mL"
    pint_unit = "milliliter"
    kind = "volume"
    example = "2 mL"


class McgPerMl(Quantity):
    symbol = "mcg/mL"
    pint_unit = "microgram / milliliter"
    kind = "concentration"
    example = "500 mcg/mL"


class McgPerDay(Quantity):
    symbol = "mcg/day"
    pint_unit = "microgram / day"
    kind = "dose rate"
    example = "400 mcg/day"


class MlPerDay(Quantity):
    symbol = "mL/day"
    pint_unit = "milliliter / day"
    kind = "flow"
    example = "0.5 mL/day"


class Hours(Quantity):
    symbol = "h"
    pint_unit = "hour"
    kind = "duration"
    example = "8 h"

    @property
    def days(self) -> float:
        return self.value / 24.0

    @classmethod
    def from_days(cls, days: float) -> Hours:
        return cls(days * 24.0)

    @classmethod
    def from_timedelta(cls, td: timedelta) -> Hours:
        return cls(td.total_seconds() / 3600.0)

    def to_timedelta(self) -> timedelta:
        return timedelta(hours=self.value)


# (left type, right type) -> (result type, factor applied to the product of canonical values)
_PRODUCTS: dict[tuple[type, type], tuple[type[Quantity], float]] = {
    (Milliliters, McgPerMl): (Micrograms, 1.0),
    (McgPerMl, Milliliters): (Micrograms, 1.0),
    (MlPerDay, McgPerMl): (McgPerDay, 1.0),
    (McgPerMl, MlPerDay): (McgPerDay, 1.0),
    (MlPerDay, Hours): (Milliliters, 1.0 / 24.0),
    (Hours, MlPerDay): (Milliliters, 1.0 / 24.0),
    (McgPerDay, Hours): (Micrograms, 1.0 / 24.0),
    (Hours, McgPerDay): (Micrograms, 1.0 / 24.0),
}

# (numerator type, denominator type) -> (result type, factor applied to the quotient)
_QUOTIENTS: dict[tuple[type, type], tuple[type[Quantity], float]] = {
    (McgPerDay, McgPerMl): (MlPerDay, 1.0),
    (McgPerDay, MlPerDay): (McgPerMl, 1.0),
    (Micrograms, McgPerMl): (Milliliters, 1.0),
    (Micrograms, Milliliters): (McgPerMl, 1.0),
    (Milliliters, MlPerDay): (Hours, 24.0),
    (Micrograms, McgPerDay): (Hours, 24.0),
    (Milliliters, Hours): (MlPerDay, 24.0),
    (Micrograms, Hours): (McgPerDay, 24.0),
}


# Parsing at the edge ------------------------------------------------------------------------
# One strict grammar for every quantity that comes from outside (CLI, JSON API, wire, TOML):
# an optional sign, a decimal number (digits, an optional fraction and an optional exponent of
# at most 3 digits, so that the repr() of any float the programmer sends reads back exactly; no
# arithmetic), and a unit spelled as in the allowlist below. The text is bounded before the regular expression runs, the
# expression has no nested repetition, so a parse costs microseconds whatever the input.
# pint only converts an allowlisted unit to the canonical one (once per unit, cached); it never
# sees the user's text, so "9**9**9 mL" or "2*200 mcg/day" cannot be evaluated.
MAX_QUANTITY_TEXT = 64
MAX_DIGITS = 24

_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?"
    r"|infinity|inf|nan))(?:\s*(?P<unit>[^\s0-9+.-].*))?", re.IGNORECASE)

# Accepted spellings -> pint unit names. Case matters: "mL" and "ML" (a megalitre) differ.
_MASS = {"mcg": "microgram", "ug": "microgram", "µg": "microgram", "μg": "microgram",
         "microgram": "microgram", "micrograms": "microgram",
         "mg": "milligram", "milligram": "milligram", "milligrams": "milligram"}
_VOLUME = {"mL": "milliliter", "ml": "milliliter", "milliliter": "milliliter",
           "milliliters": "milliliter", "millilitre": "milliliter", "millilitres": "milliliter",
           "uL": "microliter", "ul": "microliter", "µL": "microliter", "μL": "microliter",
           "microliter": "microliter", "microliters": "microliter",
           "microlitre": "microliter", "microlitres": "microliter"}
_TIME = {"h": "hour", "hr": "hour", "hour": "hour", "hours": "hour",
         "min": "minute", "minute": "minute", "minutes": "minute",
         "s": "second", "sec": "second", "second": "second", "seconds": "second",
         "d": "day", "day": "day", "days": "day"}
_LENGTH = {"cm": "centimeter", "mm": "millimeter", "m": "meter"}


def _per(top: dict[str, str], bottom: dict[str, str]) -> dict[str, str]:
    return {f"{a}/{b}": f"{pa} / {pb}" for a, pa in top.items() for b, pb in bottom.items()}


# kind (as in Quantity.kind, plus "length") -> accepted unit spelling -> pint unit
UNITS: dict[str, dict[str, str]] = {
    "mass": _MASS,
    "volume": _VOLUME,
    "duration": _TIME,
    "length": _LENGTH,
    "concentration": _per(_MASS, _VOLUME),
    "dose rate": _per(_MASS, _TIME),
    "flow": _per(_VOLUME, _TIME),
}
_KIND_OF = {spelling: kind for kind, table in UNITS.items() for spelling in table}


@lru_cache(maxsize=1)
def _registry() -> pint.UnitRegistry:  # type: ignore[type-arg]
    # pint (and the NumPy it pulls in) costs about half a second to import and build: loaded
    # only for a unit outside the exact fast path below.
    import pint

    return pint.UnitRegistry()


# The fast path of the conversion (the grammar is the same for every spelling): the units
# clinicians type most, as exact multiples of the canonical unit of their kind. A factor built
# from these is a quotient of small whole numbers; it is used only when that quotient is whole,
# so it is the very float pint computes (tests/unit/test_units_common_spelling.py checks each
# against pint). Everything else is converted by pint.
_EXACT = {"microgram": 1, "milligram": 1000, "milliliter": 1, "hour": 1, "day": 24,
          "centimeter": 1}


def _exact_factor(pint_unit: str, target: str) -> float | None:
    unit_parts, target_parts = pint_unit.split(" / "), target.split(" / ")
    if len(unit_parts) != len(target_parts) or not all(
            p in _EXACT for p in unit_parts + target_parts):
        return None
    num, den = _EXACT[unit_parts[0]], _EXACT[target_parts[0]]
    if len(unit_parts) == 2:
        num, den = num * _EXACT[target_parts[1]], den * _EXACT[unit_parts[1]]
    return float(num // den) if num % den == 0 else None


def _pint_factor(pint_unit: str, target: str) -> float:
    ureg = _registry()
    return float(ureg.Quantity(1.0, pint_unit).to(target).magnitude)


@lru_cache(maxsize=512)
def _factor(pint_unit: str, target: str) -> float:
    """How many ``target`` units one ``pint_unit`` is (exact fast path, else pint; cached)."""
    exact = _exact_factor(pint_unit, target)
    return exact if exact is not None else _pint_factor(pint_unit, target)


def _unit_spelling(raw: str) -> str:
    # "mcg / day" and "mcg/day" are the same unit; nothing else is normalised.
    return "/".join(part.strip() for part in raw.split("/"))


def _magnitude(text: object, kind: str, example: str, field: str) -> tuple[float, str]:
    """(number, allowlisted unit spelling) from ``text``; InvalidInput naming ``field``."""
    allowed = f"expected a {kind} with a unit, such as '{example}'"
    if not isinstance(text, str):
        raise InvalidInput(field, text, allowed)
    if len(text) > 4 * MAX_QUANTITY_TEXT:
        raise InvalidInput(field, text[:MAX_QUANTITY_TEXT] + "...",
                           f"at most {MAX_QUANTITY_TEXT} characters; {allowed}")
    s = text.strip()
    if not s:
        raise InvalidInput(field, text, f"empty; {allowed}")
    if len(s) > MAX_QUANTITY_TEXT:
        raise InvalidInput(field, s[:MAX_QUANTITY_TEXT] + "...",
                           f"at most {MAX_QUANTITY_TEXT} characters; {allowed}")
    m = _QUANTITY.fullmatch(s)
    if m is None:
        raise InvalidInput(field, text, "not readable (a plain decimal number and a unit, no "
                           f"arithmetic or exponents); {allowed}")
    number, unit = m.group("number"), m.group("unit")
    if unit is None:
        raise InvalidInput(field, text, f"no unit given; {allowed}")
    digits = number.lstrip("+-")
    if digits.lower() in ("nan", "inf", "infinity"):
        raise InvalidInput(field, text, f"not a finite number; {allowed}")
    spelling = _unit_spelling(unit)
    unit_kind = _KIND_OF.get(spelling)
    if unit_kind is None:
        raise InvalidInput(field, text, f"not readable (unknown unit {spelling[:20]!r}); "
                           f"{allowed}")
    if unit_kind != kind:
        raise InvalidInput(field, text, f"that is not a {kind} ({spelling} is a {unit_kind}); "
                           f"{allowed}")
    mantissa = digits.lower().partition("e")[0]
    if sum(c.isdigit() for c in mantissa) > MAX_DIGITS:
        raise InvalidInput(field, text, f"at most {MAX_DIGITS} digits; {allowed}")
    value = float(number)
    if math.isinf(value):
        raise InvalidInput(field, text, f"not a finite number; {allowed}")
    if value < 0:
        raise InvalidInput(field, text, f"must not be negative; {allowed}")
    return value, spelling


def parse(text: object, cls: type[Q], field: str) -> Q:
    """Parse text such as "0.5 mg/mL" into the typed quantity ``cls``.

    Refuses (InvalidInput, naming ``field``) empty or over-long text, anything but a plain
    decimal number (optionally with an exponent) and an allowlisted unit, a bare number, a unit of the wrong dimension, NaN,
    infinity and negative amounts.
    """
    if isinstance(text, cls):
        return text
    value, spelling = _magnitude(text, cls.kind, cls.example, field)
    return cls(value * _factor(UNITS[cls.kind][spelling], cls.pint_unit))


def parse_duration(text: object, field: str) -> Hours:
    return parse(text, Hours, field)


def parse_length_cm(text: object, field: str) -> float:
    """A length such as "90 cm", "900 mm" or "1.1 m", in centimetres (same grammar)."""
    value, spelling = _magnitude(text, "length", "90 cm", field)
    return value * _factor(UNITS["length"][spelling], "centimeter")
