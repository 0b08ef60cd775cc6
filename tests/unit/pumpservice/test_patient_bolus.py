"""Patient bolus limits on the pump side: invariants over any sequence of requests."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.pump.patient_bolus import (
    DAY_S,
    PatientBolusBook,
    PatientBolusLimits,
    PatientBolusRefused,
)


@settings(max_examples=200, deadline=None)
@given(lockout_min=st.integers(10, 240), max_per_day=st.integers(1, 6),
       gaps=st.lists(st.integers(0, 6 * 3600), min_size=1, max_size=60))
def test_never_more_than_the_limits_whatever_the_patient_presses(
        lockout_min: int, max_per_day: int, gaps: list[int]) -> None:
    lockout = lockout_min * 60
    if max_per_day * lockout > DAY_S:
        max_per_day = DAY_S // lockout
    book = PatientBolusBook(PatientBolusLimits(10.0, 600, lockout, max_per_day))
    t = 1_000_000
    given_at: list[int] = []
    for gap in gaps:
        t += gap
        try:
            book.check(t)
        except PatientBolusRefused as exc:
            assert exc.next_allowed_s is not None and exc.next_allowed_s > t
            continue
        book.record(t)
        given_at.append(t)
    for a, b in zip(given_at, given_at[1:], strict=False):
        assert b - a >= lockout
    for i, start in enumerate(given_at):
        in_window = [x for x in given_at[i:] if x - start < DAY_S]
        assert len(in_window) <= max_per_day


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 3 * DAY_S))
def test_refusal_names_a_time_when_the_next_one_is_allowed(wait: int) -> None:
    book = PatientBolusBook(PatientBolusLimits(10.0, 600, 3 * 3600, 2))
    book.record(0)
    book.record(3 * 3600)
    try:
        book.check(3 * 3600 + wait)
    except PatientBolusRefused as exc:
        assert exc.next_allowed_s is not None
        book.check(exc.next_allowed_s)  # allowed exactly then
