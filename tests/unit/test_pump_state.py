"""The pump's state at a glance (clinic/pump_state.py) and the demo clock's next alarm
(clinic/alarm_forecast.py): pure functions, rows in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openitb.clinic import labels
from openitb.clinic.alarm_forecast import STOP_AFTER, Forecast, fleet_forecasts, next_alarm
from openitb.clinic.pump_state import SEVERITY_RANK, pump_state
from openitb.clinic.services import parse_phone
from openitb.devices import get_pump
from openitb.errors import InvalidInput
from openitb.pump.alarms import CRITICAL

NOW = datetime(2026, 1, 21, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@dataclass
class P:
    profile: str = "itb-20"
    serial: str = "SN-1"
    dose_per_day: float = 300.0
    concentration: float = 500.0
    reservoir_ml: float = 10.0
    refill_by: datetime | None = NOW + 10 * DAY
    empty_at: datetime | None = NOW + 20 * DAY
    eri_at: datetime | None = NOW + 2000 * DAY
    low_alarm_at: datetime | None = NOW + 15 * DAY
    id: int = 1


@dataclass
class A:
    kind: str
    raised_at: datetime = NOW - 2 * DAY
    reason: str = ""
    cleared_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    critical: bool = field(init=False)

    def __post_init__(self) -> None:
        self.critical = CRITICAL[self.kind]


@dataclass
class G:
    at: datetime
    dose_per_day: float


def test_running_says_dose_and_refill_by() -> None:
    s = pump_state(P(), [], None, NOW)
    assert (s.code, s.severity) == ("running", "ok")
    assert "300 mcg/day" in s.detail and "2026-01-31" in s.detail
    assert "300 mcg" in s.plain and "Saturday 31 January 2026" in s.plain


@pytest.mark.parametrize(("kind", "reason", "code", "action"), [
    ("empty_reservoir", "", "empty_reservoir", "Refill now; watch for baclofen withdrawal"),
    ("motor_stall", "MRI: rotor stalled", "mri_stall", "post-MRI check"),
    ("motor_stall", "", "motor_stall", "plan replacement"),
    ("end_of_service", "battery depleted", "end_of_service", "Replace the pump now"),
    ("memory_error", "power-on reset", "memory_error", "restart it"),
])
def test_each_critical_alarm_is_a_critical_state_since_it_was_raised(
        kind: str, reason: str, code: str, action: str) -> None:
    s = pump_state(P(), [A(kind, reason=reason)], None, NOW)
    assert (s.code, s.severity, s.since) == (code, "critical", NOW - 2 * DAY)
    assert action in s.action and "2026-01-19 12:00 (2 days)" in s.detail
    assert s.label == labels.PUMP_STATE[code] and "now" in s.plain


def test_a_cleared_alarm_no_longer_counts_and_an_acknowledged_one_still_does() -> None:
    assert pump_state(P(), [A("empty_reservoir", cleared_at=NOW - DAY)], None, NOW).code == "running"
    acked = A("motor_stall", acknowledged_at=NOW - DAY, acknowledged_by="nurse.kim")
    assert pump_state(P(), [acked], None, NOW).code == "motor_stall"


def test_stopped_therapy_is_critical_since_the_stopping_program() -> None:
    s = pump_state(P(dose_per_day=0.0), [], G(NOW - 3 * DAY, 0.0), NOW)
    assert (s.code, s.severity, s.since) == ("therapy_stopped", "critical", NOW - 3 * DAY)
    assert "withdrawal" in s.action


def test_the_most_dangerous_condition_leads_the_others_follow() -> None:
    pump = P(refill_by=NOW - 5 * DAY, eri_at=NOW - DAY, dose_per_day=0.0)
    s = pump_state(pump, [A("low_reservoir"), A("empty_reservoir"), A("eri")], None, NOW)
    assert s.code == "empty_reservoir"
    assert s.also == (labels.PUMP_STATE["therapy_stopped"], labels.PUMP_STATE["eri"],
                      labels.PUMP_STATE["refill_overdue"], labels.PUMP_STATE["low_reservoir"])


def test_warnings() -> None:
    overdue = pump_state(P(refill_by=NOW - 3 * DAY), [], None, NOW)
    assert (overdue.code, overdue.severity) == ("refill_overdue", "warning")
    assert "since 2026-01-18 (3 days)" in overdue.detail
    eri = pump_state(P(eri_at=NOW - DAY), [], None, NOW)
    eos = NOW - DAY + timedelta(days=get_pump("itb-20").eri_days)
    assert eri.code == "eri" and f"before {eos:%Y-%m-%d}" in eri.action
    low = pump_state(P(), [A("low_reservoir")], None, NOW)
    assert (low.code, low.severity) == ("low_reservoir", "warning")


def test_no_pump() -> None:
    assert pump_state(None, [], None, NOW).severity == "none"


def test_every_state_and_severity_has_a_label() -> None:
    assert set(SEVERITY_RANK) == set(labels.PUMP_STATE_SEVERITY)
    for kind in CRITICAL:
        code = pump_state(P(), [A(kind, reason="MRI" if kind == "motor_stall" else "")],
                          None, NOW).code
        assert code in labels.PUMP_STATE


# ---- the next alarm of any pump --------------------------------------------------------------
def test_next_alarm_counts_empty_reservoir_and_end_of_service_of_every_pump() -> None:
    """Today's main read only low-reservoir and ERI projections: the demo clock went from 01-19
    to 01-23, past an empty reservoir on 01-21."""
    pumps = [
        P(id=1, low_alarm_at=NOW - 2 * DAY, empty_at=NOW + 9 * 3600 * timedelta(seconds=1),
          eri_at=NOW + 900 * DAY),                       # low already raised; empty tonight
        P(id=2, low_alarm_at=NOW + 2 * DAY, empty_at=NOW + 5 * DAY, eri_at=NOW + 400 * DAY),
        P(id=3, low_alarm_at=None, empty_at=None,
          eri_at=NOW - 89 * DAY),                        # at ERI: end of service comes next
    ]
    first = next_alarm(fleet_forecasts(pumps), NOW)
    assert first == Forecast(1, "empty_reservoir", NOW + timedelta(hours=9))
    later = next_alarm(fleet_forecasts(pumps), first.at + STOP_AFTER)
    assert later is not None and later.kind == "end_of_service" and later.pump_id == 3
    assert next_alarm(fleet_forecasts([P(low_alarm_at=None, empty_at=None, eri_at=None)]),
                      NOW) is None


times = st.one_of(st.none(), st.integers(-400 * 86400, 4000 * 86400).map(
    lambda s: NOW + timedelta(seconds=s)))
pumps = st.lists(st.builds(P, id=st.integers(1, 50), low_alarm_at=times, empty_at=times,
                           eri_at=times), max_size=12)


@given(pumps)
def test_the_step_never_passes_an_alarm_any_pump_would_raise(fleet: list[P]) -> None:
    items = fleet_forecasts(fleet)
    first = next_alarm(items, NOW)
    if first is None:
        assert all(f.at <= NOW for f in items)
        return
    target = first.at + STOP_AFTER
    passed = [f for f in items if NOW < f.at < first.at]
    assert passed == [] and first.at > NOW and target > first.at
    # every projected alarm of every pump, of every kind, is among the candidates
    kinds = {(f.pump_id, f.kind) for f in items}
    for p in fleet:
        for kind, at in (("low_reservoir", p.low_alarm_at), ("empty_reservoir", p.empty_at),
                         ("eri", p.eri_at), ("end_of_service", p.eri_at)):
            assert at is None or (p.id, kind) in kinds


# ---- the patient's phone ---------------------------------------------------------------------
@pytest.mark.parametrize(("typed", "stored"), [
    ("+44 20 7946 0958", "+442079460958"), ("+1 (555) 010-0199", "+15550100199"),
    ("0033 1 23 45 67 89", "+33123456789"), ("", ""), ("  ", "")])
def test_phone_is_stored_as_e164(typed: str, stored: str) -> None:
    assert parse_phone(typed) == stored


@pytest.mark.parametrize("typed", ["020 7946 0958", "+0 123 4567", "+44 20 7946 0958 ext 2",
                                   "+1234", "+1234567890123456", "call me", "+44\n2079460958",
                                   "+" + "1" * 50])
def test_a_bad_phone_is_refused_naming_field_and_form(typed: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_phone(typed)
    assert e.value.field == "phone" and "+44 20 7946 0958" in e.value.allowed
