"""The common-spelling fast path of units.parse gives exactly what pint gives for the same text."""

from __future__ import annotations

import pint
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.errors import InvalidInput
from openitb.units import _COMMON_SPELLINGS, Quantity, _common_spelling, _registry, parse

PAIRS = [(cls, unit) for cls, table in _COMMON_SPELLINGS.items() for unit in table]
NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=10**7).map(str),
    st.floats(min_value=0, max_value=1e7, allow_nan=False).map(repr),
    st.decimals(min_value=0, max_value=10**5, places=4, allow_nan=False).map(str),
)


def _pint_value(text: str, cls: type[Quantity]) -> float:
    q = _registry().Quantity(text)
    assert isinstance(q, pint.Quantity)
    return float(q.to(_registry().Unit(cls.pint_unit)).magnitude)


@pytest.mark.parametrize(("cls", "unit"), PAIRS, ids=[f"{c.__name__}-{u}" for c, u in PAIRS])
def test_each_spelling_means_what_pint_says(cls: type[Quantity], unit: str) -> None:
    text = f"7 {unit}"
    assert _common_spelling(text, cls) is not None
    assert _common_spelling(text, cls) == _pint_value(text, cls)


@settings(max_examples=300, deadline=None)
@given(number=NUMBERS, pair=st.sampled_from(PAIRS), space=st.sampled_from(["", " "]))
def test_fast_value_is_bit_identical_to_pint(number: str, pair: tuple[type[Quantity], str],
                                             space: str) -> None:
    cls, unit = pair
    text = f"{number}{space}{unit}"
    fast = _common_spelling(text, cls)
    assert fast is not None, text
    assert fast == _pint_value(text, cls), text
    assert parse(text, cls, "f").value == fast


@pytest.mark.parametrize("text", ["-5 mcg/day", "nan mcg/day", "inf mcg/day", "1e999 mcg/day",
                                  "400", "400 mL", "400 mcg/day extra"])
def test_everything_else_goes_to_pint_and_is_refused_there(text: str) -> None:
    from openitb.units import McgPerDay

    assert _common_spelling(text, McgPerDay) is None
    with pytest.raises(InvalidInput) as exc:
        parse(text, McgPerDay, "dose")
    assert exc.value.field == "dose"
