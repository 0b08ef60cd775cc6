"""One strict quantity grammar: a decimal number and an allowlisted unit; pint only converts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.errors import InvalidInput
from openitb.units import (
    MAX_QUANTITY_TEXT,
    McgPerDay,
    Micrograms,
    Milliliters,
    parse,
    parse_length_cm,
)


@pytest.mark.parametrize("text", ["9**9**9 mL", "2*200 mcg/day", "(400) mcg/day", "400 mcg/day*2",
                                  "400 mcg/day/day", "400 mcg/(1/day)", "1_000 mcg/day",
                                  "400 ML/day", "0x10 mL", "1e5000 mL", "400 mcg day",
                                  "400 kilogram/day", "4,00 mcg/day", "400 mcg/day " + "x" * 80])
def test_expressions_and_unknown_units_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse(text, McgPerDay if "day" in text else Milliliters, "dose")


def test_long_text_is_refused_before_it_is_matched() -> None:
    with pytest.raises(InvalidInput, match=f"at most {MAX_QUANTITY_TEXT} characters"):
        parse("1" * 10_000_000 + " mL", Milliliters, "volume")


@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=0, max_value=1e15, allow_nan=False, allow_infinity=False),
       st.sampled_from([("mcg", 1.0), ("mg", 1000.0), ("ug", 1.0), ("micrograms", 1.0)]))
def test_the_repr_of_any_float_reads_back_exactly(value: float, unit: tuple[str, float]) -> None:
    # The programmer sends repr(float) with a unit: the grammar must read every one back.
    q = parse(f"{value!r} {unit[0]}", Micrograms, "dose")
    assert math.isclose(q.value, value * unit[1], rel_tol=1e-15)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789.eE+-*/() mcgLdayh", max_size=30))
def test_any_text_is_a_plain_number_with_a_unit_or_refused(text: str) -> None:
    try:
        q = parse(text, McgPerDay, "dose")
    except InvalidInput:
        return
    number = text.strip().split("mcg")[0].split("mg")[0].strip()
    assert not any(op in number for op in "*()/")
    assert q.value >= 0 and math.isfinite(q.value)


def test_lengths_share_the_grammar() -> None:
    assert parse_length_cm("900 mm", "l") == pytest.approx(90.0)
    assert parse_length_cm("1.1 m", "l") == pytest.approx(110.0)
    with pytest.raises(InvalidInput):
        parse_length_cm("9**9 cm", "catheter_length")
