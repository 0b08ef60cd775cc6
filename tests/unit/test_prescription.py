"""Prescriptions reduce to rate segments; daily dose and pump-limit validation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openitb.devices import get_pump
from openitb.errors import InvalidInput
from openitb.therapy.prescription import (
    DAY_S,
    Continuous,
    Flex,
    FlexStep,
    Mode,
    PeriodicBolus,
    ScheduledBolus,
    SingleBolus,
    daily_dose,
    daily_volume,
    describe_segments,
    flow_of,
    parse_prescription,
    parse_time_of_day,
    validate_for_pump,
)
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters, MlPerDay

H = 3600


def _covers_day(segs) -> None:  # type: ignore[no-untyped-def]
    assert segs[0].start_s == 0
    assert segs[-1].end_s == DAY_S
    for a, b in zip(segs, segs[1:], strict=False):
        assert a.end_s == b.start_s
        assert a.seconds > 0


# Continuous ----------------------------------------------------------------------------------
def test_continuous_one_segment_whole_day() -> None:
    p = Continuous(McgPerDay(400))
    segs = p.segments()
    assert len(segs) == 1
    assert (segs[0].start_s, segs[0].end_s) == (0, DAY_S)
    assert daily_dose(p) == Micrograms(400)
    assert math.isclose(daily_volume(p, McgPerMl(500)).value, 0.8)
    assert type(daily_volume(p, McgPerMl(500))) is Milliliters
    assert flow_of(McgPerDay(400), McgPerMl(500)) == MlPerDay(0.8)


# Flex ----------------------------------------------------------------------------------------
def test_flex_daily_dose_weighted_by_duration() -> None:
    # 08:00-12:00 at 600/day (100 mcg); 12:00-08:00 (20 h) at 300/day (250 mcg)
    p = Flex((FlexStep(8 * H, McgPerDay(600)), FlexStep(12 * H, McgPerDay(300))))
    assert math.isclose(p.daily_dose().value, 350.0)
    segs = p.segments()
    _covers_day(segs)
    # the last step runs over midnight until 08:00
    assert [(s.start_s, s.end_s, s.dose_per_day.value) for s in segs] == [
        (0, 8 * H, 300.0),
        (8 * H, 12 * H, 600.0),
        (12 * H, DAY_S, 300.0),
    ]


def test_flex_equal_adjacent_steps_merge() -> None:
    p = Flex((FlexStep(0, McgPerDay(300)), FlexStep(6 * H, McgPerDay(300))))
    assert len(p.segments()) == 1
    assert math.isclose(p.daily_dose().value, 300.0)


def test_describe_segments_shows_per_hour_and_per_day() -> None:
    p = Flex((FlexStep(8 * H, McgPerDay(600)), FlexStep(12 * H, McgPerDay(300))))
    rows = describe_segments(p)
    assert rows[1]["start"] == "08:00" and rows[1]["end"] == "12:00"
    assert rows[1]["mcg_per_hour"] == 25.0
    assert rows[1]["mcg_per_day"] == 600.0
    assert math.isclose(rows[1]["dose_mcg"], 100.0)
    assert rows[-1]["end"] == "24:00"


@st.composite
def flex_steps(draw):  # type: ignore[no-untyped-def]
    minutes = draw(
        st.lists(st.integers(0, 24 * 60 - 1), min_size=1, max_size=24, unique=True).map(sorted)
    )
    rates = draw(
        st.lists(
            st.floats(0, 5000, allow_nan=False, allow_infinity=False),
            min_size=len(minutes),
            max_size=len(minutes),
        )
    )
    return [(m * 60, r) for m, r in zip(minutes, rates, strict=True)]


@given(flex_steps())
def test_flex_property_daily_dose_and_coverage(steps) -> None:  # type: ignore[no-untyped-def]
    p = Flex(tuple(FlexStep(s, McgPerDay(r)) for s, r in steps))
    n = len(steps)
    expected = 0.0
    for i, (s, r) in enumerate(steps):
        nxt = steps[i + 1][0] if i + 1 < n else steps[0][0] + DAY_S
        expected += r * (nxt - s) / DAY_S
    assert math.isclose(p.daily_dose().value, expected, rel_tol=1e-9, abs_tol=1e-9)
    segs = p.segments()
    _covers_day(segs)
    assert sum(s.seconds for s in segs) == DAY_S
    assert math.isclose(sum(s.dose.value for s in segs), expected, rel_tol=1e-9, abs_tol=1e-9)


# Periodic bolus ------------------------------------------------------------------------------
def test_periodic_bolus_on_top_of_basal() -> None:
    # basal 240 mcg/day (10 mcg/h), 50 mcg bolus over 1 h at 08:00 -> +1200 mcg/day for that hour
    p = PeriodicBolus(McgPerDay(240), (ScheduledBolus(8 * H, Micrograms(50), Hours(1)),))
    segs = p.segments()
    _covers_day(segs)
    assert [(s.start_s, s.end_s, s.dose_per_day.value) for s in segs] == [
        (0, 8 * H, 240.0),
        (8 * H, 9 * H, 240.0 + 1200.0),
        (9 * H, DAY_S, 240.0),
    ]
    assert p.daily_dose() == Micrograms(290)
    assert math.isclose(sum(s.dose.value for s in segs), 290.0)


def test_periodic_bolus_crossing_midnight() -> None:
    # 60 mcg over 2 h from 23:00: 30 mcg before midnight and 30 mcg after
    p = PeriodicBolus(McgPerDay(240), (ScheduledBolus(23 * H, Micrograms(60), Hours(2)),))
    segs = p.segments()
    _covers_day(segs)
    assert [(s.start_s, s.end_s, s.dose_per_day.value) for s in segs] == [
        (0, 1 * H, 960.0),
        (1 * H, 23 * H, 240.0),
        (23 * H, DAY_S, 960.0),
    ]
    assert math.isclose(sum(s.dose.value for s in segs), 300.0)
    assert p.daily_dose() == Micrograms(300)


def test_periodic_two_boluses() -> None:
    p = PeriodicBolus(
        McgPerDay(100),
        (
            ScheduledBolus(8 * H, Micrograms(20), Hours(0.5)),
            ScheduledBolus(20 * H, Micrograms(30), Hours(1)),
        ),
    )
    _covers_day(p.segments())
    assert math.isclose(sum(s.dose.value for s in p.segments()), 150.0)


# Single bolus --------------------------------------------------------------------------------
def test_single_bolus_segment() -> None:
    p = SingleBolus(Micrograms(50), Hours(0.5))
    assert p.repeats_daily is False
    segs = p.segments()
    assert len(segs) == 1
    assert (segs[0].start_s, segs[0].end_s) == (0, 1800)
    assert math.isclose(segs[0].dose.value, 50.0)
    assert math.isclose(segs[0].dose_per_day.value, 50 * 48)
    assert daily_dose(p) == Micrograms(50)


# Parsing -------------------------------------------------------------------------------------
def test_parse_continuous() -> None:
    p = parse_prescription({"mode": "continuous", "dose": "0.4 mg/day"})
    assert isinstance(p, Continuous)
    assert p.dose_per_day == McgPerDay(400)
    assert parse_prescription(p.to_dict()) == p


def test_parse_flex_with_ends() -> None:
    doc = {
        "mode": "flex",
        "steps": [
            {"start": "00:00", "end": "08:00", "dose": "300 mcg/day"},
            {"start": "08:00", "end": "12:00", "dose": "600 mcg/day"},
            {"start": "12:00", "end": "24:00", "dose": "300 mcg/day"},
        ],
    }
    p = parse_prescription(doc)
    assert isinstance(p, Flex)
    assert p.mode is Mode.FLEX
    assert [s.start_s for s in p.steps] == [0, 8 * H, 12 * H]
    assert math.isclose(p.daily_dose().value, 350.0)
    assert parse_prescription(p.to_dict()) == p


def test_parse_flex_end_wrapping_to_first_step() -> None:
    doc = {
        "mode": "flex",
        "steps": [
            {"start": "06:00", "dose": "300 mcg/day"},
            {"start": "22:00", "end": "06:00", "dose": "150 mcg/day"},
        ],
    }
    p = parse_prescription(doc)
    assert math.isclose(p.daily_dose().value, 300 * 16 / 24 + 150 * 8 / 24)


def test_parse_single_bolus() -> None:
    p = parse_prescription({"mode": "single_bolus", "bolus": "50 mcg", "duration": "1 min"})
    assert isinstance(p, SingleBolus)
    assert p.duration_s == 60
    again = parse_prescription(p.to_dict())
    assert isinstance(again, SingleBolus) and again.duration_s == 60 and again.bolus == p.bolus


def test_parse_single_bolus_round_trip_half_hour() -> None:
    p = parse_prescription({"mode": "single_bolus", "bolus": "50 mcg", "duration": "30 min"})
    assert parse_prescription(p.to_dict()) == p


def test_to_dict_round_trip_is_lossless() -> None:
    p = SingleBolus(Micrograms(50), Hours(1 / 60))
    assert parse_prescription(p.to_dict()) == p


def test_parse_periodic_bolus() -> None:
    doc = {
        "mode": "periodic_bolus",
        "dose": "240 mcg/day",
        "boluses": [{"at": "23:00", "bolus": "60 mcg", "duration": "2 h"}],
    }
    p = parse_prescription(doc)
    assert isinstance(p, PeriodicBolus)
    assert p.boluses[0].at_s == 23 * H
    assert p.daily_dose() == Micrograms(300)
    assert parse_prescription(p.to_dict()) == p


@pytest.mark.parametrize(("text", "seconds"), [("00:00", 0), ("8:05", 8 * H + 300), ("23:59", DAY_S - 60)])
def test_parse_time_of_day(text: str, seconds: int) -> None:
    assert parse_time_of_day(text, "t") == seconds


# Validation against the pump -------------------------------------------------------------------
def test_validate_for_pump_accepts_normal_program() -> None:
    validate_for_pump(Continuous(McgPerDay(400)), get_pump("itb-20"), McgPerMl(500))


def test_validate_for_pump_refuses_flow_above_max() -> None:
    # 15000 mcg/day at 500 mcg/mL = 30 mL/day > 24
    with pytest.raises(InvalidInput) as exc:
        validate_for_pump(Continuous(McgPerDay(15000)), get_pump("itb-20"), McgPerMl(500))
    assert exc.value.field == "prescription"
    assert "itb-20" in str(exc.value) and "0.048 to 24 mL/day" in str(exc.value)


def test_validate_for_pump_refuses_flow_below_min() -> None:
    # 20 mcg/day at 2000 mcg/mL = 0.01 mL/day < 0.048
    with pytest.raises(InvalidInput) as exc:
        validate_for_pump(Continuous(McgPerDay(20)), get_pump("itb-20"), McgPerMl(2000))
    assert "0.048 to 24 mL/day" in str(exc.value)


def test_validate_for_pump_refuses_flex_segment_and_names_time() -> None:
    p = Flex((FlexStep(0, McgPerDay(400)), FlexStep(8 * H, McgPerDay(20))))
    with pytest.raises(InvalidInput) as exc:
        validate_for_pump(p, get_pump("itb-20"), McgPerMl(2000))
    assert "from 08:00 to 24:00" in str(exc.value)


def test_validate_for_pump_refuses_fast_single_bolus() -> None:
    # 100 mcg over 1 min at 500 mcg/mL = 0.2 mL/min = 288 mL/day
    with pytest.raises(InvalidInput) as exc:
        validate_for_pump(SingleBolus(Micrograms(100), Hours(1 / 60)), get_pump("itb-20"), McgPerMl(500))
    assert "during the bolus" in str(exc.value)
