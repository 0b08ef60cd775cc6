"""Typed quantities: parsing at the edge and dimensionally checked arithmetic."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openitb.errors import InvalidInput
from openitb.units import (
    Hours,
    McgPerDay,
    McgPerMl,
    Micrograms,
    Milliliters,
    MlPerDay,
    parse,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "cls", "expected"),
    [
        ("0.5 mg/mL", McgPerMl, 500.0),
        ("500 mcg/mL", McgPerMl, 500.0),
        ("2 mg/mL", McgPerMl, 2000.0),
        ("400 mcg/day", McgPerDay, 400.0),
        ("0.4 mg/day", McgPerDay, 400.0),
        ("2 mL", Milliliters, 2.0),
        ("2000 uL", Milliliters, 2.0),
        ("1.5 mL/day", MlPerDay, 1.5),
        ("1 h", Hours, 1.0),
        ("30 min", Hours, 0.5),
        ("2 day", Hours, 48.0),
        ("50 mcg", Micrograms, 50.0),
        ("  2 mL  ", Milliliters, 2.0),
    ],
)
def test_parse_converts_to_canonical_unit(text: str, cls: type, expected: float) -> None:
    q = parse(text, cls, "field")
    assert type(q) is cls
    assert math.isclose(q.value, expected, rel_tol=1e-12)


def test_parse_passes_through_typed_quantity() -> None:
    q = McgPerDay(400)
    assert parse(q, McgPerDay, "dose") is q


def test_parse_duration_is_hours() -> None:
    assert parse_duration("90 min", "duration") == Hours(1.5)


def test_parse_refuses_wrong_dimension_naming_field() -> None:
    with pytest.raises(InvalidInput) as exc:
        parse("400 mcg/day", Milliliters, "volume_in")
    assert exc.value.field == "volume_in"
    assert "not a volume" in str(exc.value)


def test_str_shows_canonical_symbol() -> None:
    assert str(McgPerMl(500)) == "500 mcg/mL"
    assert str(McgPerDay(400)) == "400 mcg/day"
    assert f"{Milliliters(2):.2f}" == "2.00 mL"


# Dimension arithmetic ------------------------------------------------------------------------
def test_dose_rate_over_concentration_is_flow() -> None:
    flow = McgPerDay(400) / McgPerMl(500)
    assert type(flow) is MlPerDay
    assert math.isclose(flow.value, 0.8)


def test_flow_times_concentration_is_dose_rate() -> None:
    dose = MlPerDay(0.8) * McgPerMl(500)
    assert type(dose) is McgPerDay
    assert math.isclose(dose.value, 400.0)
    dose2 = McgPerMl(500) * MlPerDay(0.8)
    assert dose2 == dose


def test_volume_over_flow_is_hours() -> None:
    h = Milliliters(20) / MlPerDay(0.5)
    assert type(h) is Hours
    assert math.isclose(h.value, 40 * 24.0)
    assert math.isclose(h.days, 40.0)


def test_flow_times_hours_is_volume() -> None:
    v = MlPerDay(2.4) * Hours(10)
    assert type(v) is Milliliters
    assert math.isclose(v.value, 1.0)


def test_volume_times_concentration_is_mass() -> None:
    m = Milliliters(2) * McgPerMl(500)
    assert type(m) is Micrograms
    assert m.value == 1000.0


def test_same_kind_division_is_plain_ratio() -> None:
    assert Milliliters(3) / Milliliters(2) == 1.5


def test_scalar_arithmetic_keeps_kind() -> None:
    assert 2 * McgPerDay(100) == McgPerDay(200)
    assert McgPerDay(100) * 1.5 == McgPerDay(150)
    assert McgPerDay(100) / 4 == McgPerDay(25)
    assert McgPerDay(100) + McgPerDay(50) == McgPerDay(150)


def test_subtraction_below_zero_refused_but_delta_signed() -> None:
    with pytest.raises(InvalidInput):
        McgPerDay(100) - McgPerDay(150)
    assert McgPerDay(100).delta(McgPerDay(150)) == -50.0


@pytest.mark.parametrize(
    "op",
    [
        lambda: McgPerDay(1) + MlPerDay(1),
        lambda: Milliliters(1) + Micrograms(1),
        lambda: Milliliters(1) - Hours(1),
        lambda: Milliliters(1) * Milliliters(1),
        lambda: McgPerMl(500) / McgPerDay(400),
        lambda: Hours(1) / Milliliters(1),
        lambda: McgPerDay(1) < MlPerDay(2),
        lambda: McgPerDay(1).delta(MlPerDay(1)),  # type: ignore[arg-type]
        lambda: McgPerDay(1) * True,
    ],
)
def test_mixing_kinds_raises_type_error(op) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError):
        op()


def test_different_kinds_never_equal() -> None:
    assert Milliliters(1) != MlPerDay(1)


def test_division_by_zero_quantity() -> None:
    with pytest.raises(ZeroDivisionError):
        McgPerDay(400) / McgPerMl(0)
    with pytest.raises(ZeroDivisionError):
        McgPerDay(400) / 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, "1", True, None])
def test_constructor_refuses_bad_values(bad: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        Milliliters(bad)  # type: ignore[arg-type]
    assert exc.value.field == "volume"


def test_hours_timedelta_round_trip() -> None:
    h = Hours.from_timedelta(timedelta(hours=36))
    assert h == Hours(36)
    assert h.to_timedelta() == timedelta(hours=36)
    assert Hours.from_days(2) == Hours(48)


_pos = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(dose=_pos, conc=_pos)
def test_dose_over_conc_times_conc_round_trips(dose: float, conc: float) -> None:
    flow = McgPerDay(dose) / McgPerMl(conc)
    assert type(flow) is MlPerDay
    back = flow * McgPerMl(conc)
    assert type(back) is McgPerDay
    assert math.isclose(back.value, dose, rel_tol=1e-9)


@given(volume=_pos, flow=_pos)
def test_volume_flow_duration_round_trip(volume: float, flow: float) -> None:
    h = Milliliters(volume) / MlPerDay(flow)
    back = MlPerDay(flow) * h
    assert type(back) is Milliliters
    assert math.isclose(back.value, volume, rel_tol=1e-9)
