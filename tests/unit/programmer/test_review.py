"""The review screen: side by side, classified, and nothing without confirmation."""

from __future__ import annotations

import pytest

from openitb.devices import get_pump
from openitb.drugs import Context, Origin
from openitb.errors import InvalidInput, RefusedOperation
from openitb.programmer.review import review_program
from openitb.therapy.guardrails import Classification
from openitb.therapy.prescription import Continuous, Flex, FlexStep
from openitb.units import McgPerDay, McgPerMl

PUMP = get_pump("itb-20")
C500 = McgPerMl(500)


def review(cur: float | None, new: float, context: Context = Context.TITRATION):
    current = Continuous(McgPerDay(cur)) if cur is not None else None
    return review_program(current, C500 if cur else None, Continuous(McgPerDay(new)), C500, PUMP,
                          origin=Origin.SPINAL, context=context)


def test_within_change_needs_only_confirmation() -> None:
    r = review(400, 480)
    assert r.classification is Classification.WITHIN
    with pytest.raises(RefusedOperation) as exc:
        r.confirm(confirmed=False)
    assert exc.value.code == "unconfirmed"
    assert r.confirm(confirmed=True) is None


def test_above_recommended_needs_a_reason() -> None:
    r = review(400, 560)
    assert r.classification is Classification.ABOVE_RECOMMENDED
    with pytest.raises(RefusedOperation) as exc:
        r.confirm(confirmed=True)
    assert exc.value.code == "override_required"
    assert r.confirm(confirmed=True, override_reason="severe spasms at night") == "severe spasms at night"


def test_above_absolute_is_refused_even_with_a_reason() -> None:
    r = review(400, 900)
    assert r.refused
    with pytest.raises(RefusedOperation) as exc:
        r.confirm(confirmed=True, override_reason="I insist on this")
    assert exc.value.code == "guardrail_absolute"


def test_rows_show_both_sides_and_changes() -> None:
    r = review(400, 480)
    daily = r.rows[0]
    assert (daily.current, daily.proposed, daily.changed) == ("400 mcg/day", "480 mcg/day", True)


def test_flex_review_shows_hourly_and_daily_rates() -> None:
    # The real-world error: 60 mcg meant once a morning, entered as an hourly rate.
    flex = Flex((FlexStep(0, McgPerDay(300)), FlexStep(8 * 3600, McgPerDay(1440)),
                 FlexStep(9 * 3600, McgPerDay(300))))
    r = review_program(Continuous(McgPerDay(300)), C500, flex, C500, PUMP,
                       origin=Origin.SPINAL, context=Context.MAINTENANCE)
    step2 = [row for row in r.rows if row.field == "step 2"][0]
    assert "60 mcg/h" in step2.proposed and "1440 mcg/day" in step2.proposed


def test_flex_per_hour_total_over_absolute_is_refused() -> None:
    flex = Flex((FlexStep(0, McgPerDay(2400)),))
    with pytest.raises(InvalidInput) as exc:
        review_program(None, None, flex, McgPerMl(2000), PUMP, origin=Origin.SPINAL,
                       context=Context.TITRATION)
    assert "not mcg per hour" in str(exc.value)
