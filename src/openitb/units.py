"""Typed quantities: every dose, volume and rate carries its unit in its type.

The core stores each kind in one canonical unit (mcg, mL, mcg/mL, mcg/day, mL/day, hours) and
only lets dimensionally meaningful arithmetic through: a dose rate divided by a concentration is
a flow, a flow times a duration is a volume, and so on. Adding a dose to a volume is a TypeError.

Text from outside ("0.5 mg/mL", "400 mcg/day", "2 mL") is parsed with pint at the edge by
:func:`parse`, which refuses a missing unit, the wrong dimension, NaN, infinity and negatives
with an :class:`InvalidInput` naming the field.
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
@lru_cache(maxsize=1)
def _registry() -> pint.UnitRegistry:  # type: ignore[type-arg]
    # pint (and the NumPy it pulls in) costs about half a second to import and build: loaded
    # only when text falls outside the common spellings below (see _common_spelling).
    import pint

    return pint.UnitRegistry()


# The spellings clinicians type most, with the factor to the canonical unit. Each factor is
# exact in binary (1, 1000, 24), so `number * factor` is the very float pint returns for the
# same text (tests/unit/test_units_fast_parse.py checks this against pint). Everything else
# (other units, signs, nan, inf, odd spacing) goes to pint, which also words every refusal.
_MASS = {"mcg": 1.0, "ug": 1.0, "µg": 1.0, "microgram": 1.0, "micrograms": 1.0,
         "mg": 1000.0, "milligram": 1000.0, "milligrams": 1000.0}
_VOLUME = {"mL": 1.0, "ml": 1.0, "milliliter": 1.0, "milliliters": 1.0}
_PER_DAY = {"day": 1.0, "d": 1.0}
_COMMON_SPELLINGS: dict[type[Quantity], dict[str, float]] = {
    Micrograms: _MASS,
    Milliliters: _VOLUME,
    McgPerMl: {f"{m}/{v}": fm / fv for m, fm in _MASS.items() for v, fv in _VOLUME.items()},
    McgPerDay: {f"{m}/{d}": fm / fd for m, fm in _MASS.items() for d, fd in _PER_DAY.items()},
    MlPerDay: {f"{v}/{d}": fv / fd for v, fv in _VOLUME.items() for d, fd in _PER_DAY.items()}
    | {f"{v}/{h}": fv * 24.0 for v, fv in _VOLUME.items() for h in ("h", "hour")},
    Hours: {"h": 1.0, "hour": 1.0, "hours": 1.0, "day": 24.0, "days": 24.0},
}
_NUMBER_AND_UNIT = re.compile(r"((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?) ?([^\s\d.][^\s]*)")


def _common_spelling(s: str, cls: type[Quantity]) -> float | None:
    """The canonical value of "<number> <unit>" in a common spelling, else None (ask pint)."""
    m = _NUMBER_AND_UNIT.fullmatch(s)
    if m is None:
        return None
    factor = _COMMON_SPELLINGS.get(cls, {}).get(m.group(2))
    if factor is None:
        return None
    value = float(m.group(1)) * factor
    return value if math.isfinite(value) else None


def parse(text: object, cls: type[Q], field: str) -> Q:
    """Parse text such as "0.5 mg/mL" into the typed quantity ``cls``.

    Refuses (InvalidInput, naming ``field``) empty text, a bare number without a unit, a unit of
    the wrong dimension, NaN, infinity and negative amounts.
    """
    allowed = f"expected a {cls.kind} with a unit, such as '{cls.example}'"
    if isinstance(text, cls):
        return text
    if not isinstance(text, str):
        raise InvalidInput(field, text, allowed)
    s = text.strip()
    if not s:
        raise InvalidInput(field, text, f"empty; {allowed}")
    common = _common_spelling(s, cls)
    if common is not None:
        return cls(common)
    import pint

    ureg = _registry()
    try:
        q: Any = ureg.Quantity(s)
    except Exception as exc:  # pint raises many kinds for unreadable text
        raise InvalidInput(field, text, f"not readable ({type(exc).__name__}); {allowed}") from None
    if not isinstance(q, pint.Quantity):
        raise InvalidInput(field, text, f"no unit given; {allowed}")
    if q.dimensionless:
        raise InvalidInput(field, text, f"no unit given; {allowed}")
    magnitude = q.magnitude
    if not isinstance(magnitude, (int, float)) or isinstance(magnitude, bool):
        raise InvalidInput(field, text, allowed)
    target = ureg.Unit(cls.pint_unit)
    if q.dimensionality != target.dimensionality:
        raise InvalidInput(
            field, text, f"that is not a {cls.kind} ({q.dimensionality}); {allowed}"
        )
    value = float(q.to(target).magnitude)
    if math.isnan(value) or math.isinf(value):
        raise InvalidInput(field, text, f"not a finite number; {allowed}")
    if value < 0:
        raise InvalidInput(field, text, f"must not be negative; {allowed}")
    return cls(value)


def parse_duration(text: object, field: str) -> Hours:
    return parse(text, Hours, field)
