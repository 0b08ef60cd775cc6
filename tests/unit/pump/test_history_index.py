"""The 24 h history index: after any sequence of commands it answers exactly what a fresh scan of
the event log answers, while parsing each log entry once."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.pump import commands as cmd
from openitb.pump import history
from openitb.pump.controller import PumpController, _log_seconds, iso, zero_error_pump
from openitb.therapy.prescription import Continuous, SingleBolus
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters

from .helpers import T0

STEPS = st.lists(st.tuples(
    st.sampled_from(["program", "single", "bolus", "stop", "start", "advance", "read", "refused",
                     "restore", "note", "reset"]),
    st.integers(0, 200_000)), max_size=60)


def _fresh(p: PumpController, hours: float, limit: int) -> dict[str, object]:
    since = p.t - round(hours * 3600)
    return history.scan(p.log, since, iso(since), hours, limit, _log_seconds)


def _step(p: PumpController, op: str, n: int) -> PumpController:
    c = McgPerMl(500)
    if op == "program":
        p.handle(cmd.Program(Continuous(McgPerDay(100 + n % 700)), c))
    elif op == "single":
        p.handle(cmd.Program(SingleBolus(Micrograms(10 + n % 90), Hours(1)), c))
    elif op == "bolus":
        p.handle(cmd.ClinicianBolus(Micrograms(5 + n % 50), Hours(0.5)))
    elif op == "stop":
        p.handle(cmd.Stop())
    elif op == "start":
        p.handle(cmd.Start())
    elif op == "advance":
        p.advance(p.now + timedelta(seconds=n))
    elif op == "read":
        p.handle(cmd.ReadStatus())
    elif op == "refused":  # a refused command puts the state (and a copy of the log) back
        p.handle(cmd.Refill(Milliliters(999), c))
    elif op == "restore":  # the log object is replaced: the index must notice
        return PumpController.from_dict(p.to_dict())
    elif op == "note":
        p.note("patient_bolus", {"dose_mcg": n % 50})
    elif op == "reset":
        p.handle(cmd.PowerOnReset())
    return p


@settings(max_examples=120, deadline=None)
@given(STEPS, st.integers(2, 40), st.sampled_from([1.0, 6.0, 24.0, 48.0, 168.0]),
       st.integers(1, 48))
def test_the_kept_history_equals_a_fresh_scan_after_any_commands(
        steps: list[tuple[str, int]], capacity: int, hours: float, limit: int) -> None:
    # A small log capacity drops entries from the front as it goes: the index must follow.
    p = zero_error_pump("itb-20", T0, log_capacity=capacity)
    p.handle(cmd.Refill(Milliliters(20), McgPerMl(500)))
    for op, n in steps:
        p = _step(p, op, n)
        assert p.recent_history(hours, limit) == _fresh(p, hours, limit)
        assert p.recent_history(24.0) == _fresh(p, 24.0, history.HISTORY_MAX_ENTRIES)
        assert p.recent_history(hours, limit) == _fresh(p, hours, limit)  # a kept answer


def test_reads_parse_nothing_again_and_an_answer_changed_by_a_caller_is_not_kept() -> None:
    p = zero_error_pump("itb-20", T0)
    p.handle(cmd.Refill(Milliliters(20), McgPerMl(500)))
    for i in range(30):
        p.handle(cmd.Program(Continuous(McgPerDay(400 + i)), McgPerMl(500)))
    first = p.recent_history(24.0)
    rebuilds, answers = p.history_index.rebuilds, p.history_index.answers
    for _ in range(500):
        p.handle(cmd.ReadStatus())
    assert (p.history_index.rebuilds, p.history_index.answers) == (rebuilds, answers)
    first["entries"][0]["daily_mcg"] = -1.0  # a caller changes what it was given
    first["entries"].clear()
    again = p.recent_history(24.0)
    assert again == _fresh(p, 24.0, history.HISTORY_MAX_ENTRIES)
    assert len(again["entries"]) == 30 and again["entries"][0]["daily_mcg"] == 400.0
    # a write or a second of time gives a new answer, without parsing the log again
    assert p.handle(cmd.Start()).ok
    p.advance(p.now + timedelta(seconds=1))
    assert p.recent_history(24.0) == _fresh(p, 24.0, history.HISTORY_MAX_ENTRIES)
    assert p.history_index.rebuilds == rebuilds and p.history_index.answers > answers
