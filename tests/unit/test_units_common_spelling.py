"""The exact fast path of units.parse (common spellings converted without pint) gives exactly
what pint gives; the grammar is the same one strict grammar for every spelling."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.errors import InvalidInput
from openitb.units import (
    UNITS,
    Hours,
    McgPerDay,
    McgPerMl,
    Micrograms,
    Milliliters,
    MlPerDay,
    Quantity,
    _exact_factor,
    _pint_factor,
    parse,
    parse_length_cm,
)

CLASSES = (Micrograms, Milliliters, McgPerMl, McgPerDay, MlPerDay, Hours)
ALL = [(cls, s, pu) for cls in CLASSES for s, pu in UNITS[cls.kind].items()]
FAST = [(cls, s, pu) for cls, s, pu in ALL if _exact_factor(pu, cls.pint_unit) is not None]
NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=10**7).map(str),
    st.floats(min_value=0, max_value=1e7, allow_nan=False).map(repr),
    st.decimals(min_value=0, max_value=10**5, places=4, allow_nan=False).map(str),
)


def test_the_fast_path_covers_what_clinicians_type() -> None:
    fast = {(cls, s) for cls, s, _ in FAST}
    for cls, text in ((Micrograms, "mcg"), (Micrograms, "mg"), (Milliliters, "mL"),
                      (McgPerMl, "mcg/mL"), (McgPerMl, "mg/mL"), (McgPerDay, "mcg/day"),
                      (McgPerDay, "mg/day"), (McgPerDay, "mcg/h"), (MlPerDay, "mL/day"),
                      (MlPerDay, "mL/h"), (Hours, "h"), (Hours, "day")):
        assert (cls, text) in fast, (cls, text)


@pytest.mark.parametrize(("cls", "spelling", "pint_unit"), ALL,
                         ids=[f"{c.__name__}-{s}" for c, s, _ in ALL])
def test_each_exact_factor_is_the_one_pint_computes(cls: type[Quantity], spelling: str,
                                                    pint_unit: str) -> None:
    exact = _exact_factor(pint_unit, cls.pint_unit)
    if exact is not None:
        assert exact == _pint_factor(pint_unit, cls.pint_unit)


@settings(max_examples=300, deadline=None)
@given(number=NUMBERS, pick=st.sampled_from(FAST), space=st.sampled_from(["", " "]))
def test_a_fast_value_is_bit_identical_to_the_pint_conversion(
        number: str, pick: tuple[type[Quantity], str, str], space: str) -> None:
    cls, spelling, pint_unit = pick
    value = parse(f"{number}{space}{spelling}", cls, "f").value
    assert value == float(number) * _pint_factor(pint_unit, cls.pint_unit)


def test_lengths_in_cm_and_mm() -> None:
    assert parse_length_cm("90 cm", "catheter") == 90.0
    assert parse_length_cm("900 mm", "catheter") == pytest.approx(90.0)


@pytest.mark.parametrize("text", ["-5 mcg/day", "nan mcg/day", "inf mcg/day", "1e999 mcg/day",
                                  "400", "400 mL", "400 mcg/day extra", "2*200 mcg/day"])
def test_the_fast_path_refuses_what_the_grammar_refuses(text: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse(text, McgPerDay, "dose")
    assert exc.value.field == "dose"


def test_common_spellings_are_read_without_importing_pint() -> None:
    probe = ("import sys; from openitb.units import parse, McgPerDay, McgPerMl, Milliliters;"
             "parse('400 mcg/day', McgPerDay, 'd'); parse('0.5 mg/mL', McgPerMl, 'c');"
             "parse('20 mL', Milliliters, 'v'); print('pint' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == "False"
