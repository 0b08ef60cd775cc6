"""Guardrails: dose-change classification and daily-dose checks, worked by hand from drugs.toml."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openitb.drugs import Context, Origin, Population
from openitb.errors import InvalidInput
from openitb.therapy.guardrails import (
    Classification,
    Guardrail,
    check_change,
    check_prescription_dose,
    daily_dose_guardrail,
)
from openitb.therapy.prescription import Continuous, Flex, FlexStep, parse_prescription
from openitb.units import McgPerDay

C = Classification
SP, CE = Origin.SPINAL, Origin.CEREBRAL
TI, MA = Context.TITRATION, Context.MAINTENANCE


# Hand-worked from drugs.toml (absolute step factor 2):
#  spinal titration   +30 % / -20 %  -> from 400: recommended 320-520, absolute 240-640
#  spinal maintenance +40 % / -20 %  -> from 400: recommended 320-560, absolute 240-720
#  cerebral titration +15 % / -20 %  -> from 400: recommended 320-460, absolute 240-520
#  cerebral maint.    +20 % / -20 %  -> from 400: recommended 320-480, absolute 240-560
@pytest.mark.parametrize(
    ("origin", "context", "current", "proposed", "expected", "rec", "absolute"),
    [
        (SP, TI, 400, 500, C.WITHIN, (320, 520), (240, 640)),
        (SP, TI, 400, 520, C.WITHIN, (320, 520), (240, 640)),
        (SP, TI, 400, 560, C.ABOVE_RECOMMENDED, (320, 520), (240, 640)),
        (SP, TI, 400, 640, C.ABOVE_RECOMMENDED, (320, 520), (240, 640)),
        (SP, TI, 400, 700, C.ABOVE_ABSOLUTE, (320, 520), (240, 640)),
        (SP, TI, 400, 320, C.WITHIN, (320, 520), (240, 640)),
        (SP, TI, 400, 300, C.BELOW_RECOMMENDED, (320, 520), (240, 640)),
        (SP, TI, 400, 200, C.BELOW_ABSOLUTE, (320, 520), (240, 640)),
        (SP, MA, 400, 560, C.WITHIN, (320, 560), (240, 720)),
        (SP, MA, 400, 600, C.ABOVE_RECOMMENDED, (320, 560), (240, 720)),
        (SP, MA, 400, 750, C.ABOVE_ABSOLUTE, (320, 560), (240, 720)),
        (CE, TI, 400, 460, C.WITHIN, (320, 460), (240, 520)),  # exact +15 % step
        (CE, TI, 400, 459.9, C.WITHIN, (320, 460), (240, 520)),
        (CE, TI, 400, 500, C.ABOVE_RECOMMENDED, (320, 460), (240, 520)),
        (CE, TI, 400, 530, C.ABOVE_ABSOLUTE, (320, 460), (240, 520)),
        (CE, MA, 400, 480, C.WITHIN, (320, 480), (240, 560)),
        (CE, MA, 400, 500, C.ABOVE_RECOMMENDED, (320, 480), (240, 560)),
        (CE, MA, 400, 600, C.ABOVE_ABSOLUTE, (320, 480), (240, 560)),
        (CE, MA, 400, 250, C.BELOW_RECOMMENDED, (320, 480), (240, 560)),
        # daily bounds clip the step: spinal recommended max 1000, absolute max 2000
        (SP, TI, 900, 1100, C.ABOVE_RECOMMENDED, (720, 1000), (540, 1440)),
        (SP, TI, 900, 1500, C.ABOVE_ABSOLUTE, (720, 1000), (540, 1440)),
        (SP, MA, 1800, 2100, C.ABOVE_ABSOLUTE, (1440, 1000), (1080, 2000)),
        # cerebral recommended min 90
        (CE, TI, 100, 85, C.BELOW_RECOMMENDED, (90, 115), (60, 130)),
        # mg where mcg was meant: "4 mg/day" is 4000 mcg/day
        (SP, TI, 400, 4000, C.ABOVE_ABSOLUTE, (320, 520), (240, 640)),
    ],
)
def test_check_change_hand_worked(origin, context, current, proposed, expected, rec, absolute):  # type: ignore[no-untyped-def]
    r = check_change(McgPerDay(current), McgPerDay(proposed), origin, context)
    assert r.classification is expected, r.reason
    assert math.isclose(r.recommended_min.value, rec[0])
    assert math.isclose(r.recommended_max.value, rec[1])
    assert math.isclose(r.absolute_min.value, absolute[0])
    assert math.isclose(r.absolute_max.value, absolute[1])
    assert math.isclose(r.change_pct, (proposed - current) / current * 100)


def test_check_change_reasons_explain() -> None:
    r = check_change(McgPerDay(400), McgPerDay(500), SP, TI)
    assert r.change_pct == 25.0
    assert "within the recommended 320-520 mcg/day for spinal titration" in r.reason
    r = check_change(McgPerDay(400), McgPerDay(560), SP, TI)
    assert "override reason is required" in r.reason and "+10 to 30 %" in r.reason
    assert r.classification.needs_override and r.classification.allowed
    r = check_change(McgPerDay(400), McgPerDay(700), SP, TI)
    assert "refused" in r.reason and "640" in r.reason
    assert not r.classification.allowed


def test_check_change_pediatric_population_bounds() -> None:
    # Children have their own step (drugs.toml change_limits.pediatric, (R): the cerebral step):
    # maintenance from 1000 allows +20 % (1200, capped by the pediatric recommended max 1199);
    # the absolute step is twice that, +40 % = 1400, under the pediatric absolute 1500.
    # (Before issue 11 a child got the adult spinal step: +40 %, absolute +80 %.)
    r = check_change(McgPerDay(1000), McgPerDay(1300), SP, MA, population=Population.PEDIATRIC)
    assert r.classification is C.ABOVE_RECOMMENDED
    assert r.recommended_max == McgPerDay(1199)
    assert "pediatric maintenance" in r.reason
    r = check_change(McgPerDay(1000), McgPerDay(1450), SP, MA, population=Population.PEDIATRIC)
    assert r.classification is C.ABOVE_ABSOLUTE
    assert r.absolute_max == McgPerDay(1400)


def test_check_change_refuses_zero_current() -> None:
    with pytest.raises(InvalidInput) as exc:
        check_change(McgPerDay(0), McgPerDay(100), SP, TI)
    assert exc.value.field == "current"
    assert "above 0 mcg/day" in str(exc.value)


_dose = st.floats(min_value=1, max_value=4000, allow_nan=False, allow_infinity=False)


@given(
    current=_dose,
    proposed=st.floats(min_value=0, max_value=6000, allow_nan=False, allow_infinity=False),
    origin=st.sampled_from(list(Origin)),
    context=st.sampled_from(list(Context)),
    population=st.none() | st.sampled_from(list(Population)),
)
def test_property_classification_consistent_with_ranges(current, proposed, origin, context, population):  # type: ignore[no-untyped-def]
    r = check_change(McgPerDay(current), McgPerDay(proposed), origin, context, population=population)
    p = r.proposed.value
    if r.classification is C.WITHIN:
        assert r.recommended_min.value <= p <= r.recommended_max.value
    if r.classification.allowed:
        assert r.absolute_min.value <= p <= r.absolute_max.value
    else:
        assert p > r.absolute_max.value or p < r.absolute_min.value
    # the absolute range is never tighter than the recommended one where both are derived
    # from the step alone
    assert r.absolute_max.value <= (2000 if population is not Population.PEDIATRIC else 1500)


# Daily-dose guardrail ------------------------------------------------------------------------
def test_guardrail_classify_edges() -> None:
    g = Guardrail(10, 100, 1000, 2000, "mcg/day", "daily dose")
    assert g.classify(100)[0] is C.WITHIN
    assert g.classify(1000)[0] is C.WITHIN
    assert g.classify(99.9)[0] is C.BELOW_RECOMMENDED
    assert g.classify(1000.1)[0] is C.ABOVE_RECOMMENDED
    assert g.classify(10)[0] is C.BELOW_RECOMMENDED
    assert g.classify(9.9)[0] is C.BELOW_ABSOLUTE
    assert g.classify(2000)[0] is C.ABOVE_RECOMMENDED
    assert g.classify(2000.1)[0] is C.ABOVE_ABSOLUTE


def test_daily_dose_guardrail_from_library() -> None:
    g = daily_dose_guardrail(Population.CEREBRAL)
    assert (g.absolute_min, g.recommended_min, g.recommended_max, g.absolute_max) == (10, 90, 1000, 2000)


@pytest.mark.parametrize(
    ("dose", "population", "expected"),
    [
        (400, Population.SPINAL, C.WITHIN),
        (1200, Population.SPINAL, C.ABOVE_RECOMMENDED),
        (50, Population.SPINAL, C.BELOW_RECOMMENDED),
        (80, Population.CEREBRAL, C.BELOW_RECOMMENDED),
        (1300, Population.PEDIATRIC, C.ABOVE_RECOMMENDED),
    ],
)
def test_check_prescription_dose_allowed(dose: float, population: Population, expected: C) -> None:
    cls, reason = check_prescription_dose(Continuous(McgPerDay(dose)), population)
    assert cls is expected
    assert f"{dose:g} mcg/day" in reason


def test_check_prescription_dose_refuses_flex_entered_per_hour() -> None:
    # 100 mcg/h entered as if it were the daily rate field: every step 2400 mcg/day
    doc = {
        "mode": "flex",
        "steps": [{"start": f"{h:02d}:00", "dose": "2400 mcg/day"} for h in range(0, 24, 6)],
    }
    p = parse_prescription(doc)
    assert math.isclose(p.daily_dose().value, 2400)
    with pytest.raises(InvalidInput) as exc:
        check_prescription_dose(p, Population.SPINAL)
    msg = str(exc.value)
    assert exc.value.field == "prescription"
    assert "2400 mcg/day in all" in msg
    assert "absolute maximum of 2000" in msg
    assert "not mcg per hour" in msg


def test_check_prescription_dose_refuses_one_hot_step() -> None:
    # 23 h at 400/day plus 1 h at 40000/day: 383.3 + 1666.7 = 2050 mcg/day > 2000
    p = Flex((FlexStep(0, McgPerDay(40000)), FlexStep(3600, McgPerDay(400))))
    assert math.isclose(p.daily_dose().value, 2050)
    with pytest.raises(InvalidInput):
        check_prescription_dose(p, Population.SPINAL)


def test_check_prescription_dose_pediatric_absolute() -> None:
    with pytest.raises(InvalidInput) as exc:
        check_prescription_dose(Continuous(McgPerDay(1600)), Population.PEDIATRIC)
    assert "absolute maximum of 1500" in str(exc.value)
