"""Refill arithmetic: projection of alarm, empty and refill-by dates; the withdrawn-volume
discrepancy; the bridge bolus at a concentration change; the priming bolus after implant.

All pure: times are passed in (timezone-aware UTC), nothing reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from openitb.devices import CatheterProfile, PumpProfile
from openitb.errors import InvalidInput
from openitb.therapy.prescription import DAY_S, Prescription
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters, MlPerDay

DEFAULT_LEAD_DAYS = 5.0  # programmer practice: book the refill 3-5 days before the alarm (C)
DEFAULT_MAX_INTERVAL_DAYS = 180.0  # usual interval 1-6 months (C); configurable


def seconds_to_deliver(
    prescription: Prescription, concentration: McgPerMl, volume: Milliliters, start: datetime
) -> float | None:
    """Seconds from ``start`` until the program has moved ``volume``; None if it never will.

    Exact for flex and periodic boluses: the target may fall inside any step.
    """
    target = volume.value
    if target <= 0:
        return 0.0
    segs = prescription.segments()
    # mL per second in each segment
    flows = [(s.start_s, s.end_s, s.dose_per_day.value / concentration.value / DAY_S) for s in segs]
    if not prescription.repeats_daily:
        elapsed = 0.0
        for a, b, f in flows:
            v = f * (b - a)
            if v >= target:
                return elapsed + target / f
            target -= v
            elapsed += b - a
        return None
    daily = sum(f * (b - a) for a, b, f in flows)
    if daily <= 0:
        return None
    tod = _seconds_of_day(start)
    elapsed = 0.0
    # Rest of the first day, from the start time of day.
    for a, b, f in flows:
        if b <= tod:
            continue
        lo = max(a, tod)
        v = f * (b - lo)
        if v >= target:
            return elapsed + target / f
        target -= v
        elapsed += b - lo
    # Whole days, then the last partial day from midnight.
    whole = int(target // daily)
    if whole * daily >= target:  # lands exactly at a midnight: finish inside the day before
        whole -= 1
    target -= whole * daily
    elapsed += whole * DAY_S
    for a, b, f in flows:
        v = f * (b - a)
        if v >= target:
            return elapsed + target / f
        target -= v
        elapsed += b - a
    return elapsed  # float round-off at the very end of a day


def _seconds_of_day(t: datetime) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def _check_aware(t: datetime, field: str) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise InvalidInput(field, t.isoformat(), "a date-time with a UTC offset")


@dataclass(frozen=True)
class RefillProjection:
    volume: Milliliters
    concentration: McgPerMl
    low_alarm: Milliliters
    flow_per_day: MlPerDay  # 24 h average
    dose_per_day: McgPerDay  # 24 h average
    start: datetime
    days_to_low_alarm: float | None
    low_alarm_at: datetime | None
    days_to_empty: float | None
    empty_at: datetime | None
    refill_by: datetime
    refill_by_reason: str


def project_refill(
    prescription: Prescription,
    profile: PumpProfile,
    volume: Milliliters,
    concentration: McgPerMl,
    start: datetime,
    *,
    low_alarm: Milliliters | None = None,
    lead_days: float = DEFAULT_LEAD_DAYS,
    max_interval_days: float = DEFAULT_MAX_INTERVAL_DAYS,
) -> RefillProjection:
    """When the low-reservoir alarm sounds, when the pump runs dry, and when to refill by.

    refill-by = the earlier of (low-reservoir alarm - lead time) and (start + maximum interval).
    """
    _check_aware(start, "start")
    profile.check_volume(volume)
    threshold = profile.check_low_alarm(low_alarm or profile.low_alarm_default)
    if not 0 <= lead_days <= 60:
        raise InvalidInput("lead_days", lead_days, "0 to 60 days")
    if not 1 <= max_interval_days <= 366:
        raise InvalidInput("max_interval_days", max_interval_days, "1 to 366 days")
    usable_to_alarm = Milliliters(max(0.0, volume.value - threshold.value))
    s_alarm = seconds_to_deliver(prescription, concentration, usable_to_alarm, start)
    s_empty = seconds_to_deliver(prescription, concentration, volume, start)
    alarm_at = start + timedelta(seconds=s_alarm) if s_alarm is not None else None
    empty_at = start + timedelta(seconds=s_empty) if s_empty is not None else None
    cap = start + timedelta(days=max_interval_days)
    if alarm_at is not None and alarm_at - timedelta(days=lead_days) < cap:
        refill_by = max(start, alarm_at - timedelta(days=lead_days))
        reason = f"{lead_days:g} days before the low-reservoir alarm"
        if refill_by == start:
            reason = "now: the low-reservoir alarm is within the lead time"
    else:
        refill_by = cap
        reason = f"the maximum refill interval of {max_interval_days:g} days"
    daily = prescription.daily_dose().value
    return RefillProjection(
        volume=volume,
        concentration=concentration,
        low_alarm=threshold,
        flow_per_day=MlPerDay(daily / concentration.value),
        dose_per_day=McgPerDay(daily),
        start=start,
        days_to_low_alarm=s_alarm / DAY_S if s_alarm is not None else None,
        low_alarm_at=alarm_at,
        days_to_empty=s_empty / DAY_S if s_empty is not None else None,
        empty_at=empty_at,
        refill_by=refill_by,
        refill_by_reason=reason,
    )


# Discrepancy -------------------------------------------------------------------------------
CAUSES_LESS = (
    "over-infusion by the pump (true flow above programmed)",
    "drug injected outside the reservoir at the last refill (pocket fill): watch for overdose",
    "leak at the reservoir or septum",
    "incomplete withdrawal (needle position, technique)",
    "wrong volume recorded at the last refill",
)
CAUSES_MORE = (
    "under-infusion by the pump (motor stall, rotor or valve fault): watch for withdrawal",
    "pump stopped for a time (MRI, end of service, programming error)",
    "wrong volume recorded at the last refill (more added than written)",
    "wrong program or concentration entered (the estimate assumes more delivery)",
)


@dataclass(frozen=True)
class Discrepancy:
    expected: Milliliters
    withdrawn: Milliliters
    difference_ml: float  # withdrawn - expected
    threshold: Milliliters
    flagged: bool
    direction: str  # "less_than_expected" | "more_than_expected" | "as_expected"
    possible_causes: tuple[str, ...]


def check_discrepancy(
    profile: PumpProfile, expected: Milliliters, withdrawn: Milliliters
) -> Discrepancy:
    """Best practice: a gap above 1 mL (pumps up to 20 mL) or 2 mL (40 mL) needs explaining."""
    profile.check_volume(expected, "expected")
    profile.check_volume(withdrawn, "withdrawn")
    diff = withdrawn.delta(expected)
    threshold = profile.discrepancy_threshold()
    flagged = abs(diff) > threshold.value + 1e-9
    if abs(diff) < 1e-9:
        direction = "as_expected"
    else:
        direction = "less_than_expected" if diff < 0 else "more_than_expected"
    causes: tuple[str, ...] = ()
    if flagged:
        causes = CAUSES_LESS if diff < 0 else CAUSES_MORE
    return Discrepancy(expected, withdrawn, diff, threshold, flagged, direction, causes)


# Bridge and priming ------------------------------------------------------------------------
@dataclass(frozen=True)
class Bridge:
    path_volume: Milliliters
    bridge_volume: Milliliters
    bridge_duration: Hours
    bridge_dose: Micrograms
    old_flow: MlPerDay
    new_flow: MlPerDay
    unbridged_dose_error_pct: float
    unbridged_duration: Hours


def path_volume(profile: PumpProfile, catheter: CatheterProfile, length_cm: float) -> Milliliters:
    """Drug between the reservoir and the catheter tip: pump internal path plus catheter."""
    return Milliliters(profile.internal_volume.value + catheter.volume(length_cm).value)


def bridge_bolus(
    profile: PumpProfile,
    catheter: CatheterProfile,
    length_cm: float,
    old_concentration: McgPerMl,
    new_concentration: McgPerMl,
    dose_per_day: McgPerDay,
) -> Bridge:
    """Push the old drug still in the path out at the old flow, so the dose rate does not jump.

    Without it the pump runs at the new flow while old drug leaves the tip: the patient gets
    dose x old/new for as long as the path takes to clear.
    """
    if old_concentration.value <= 0 or new_concentration.value <= 0:
        raise InvalidInput("concentration", "0 mcg/mL", "a concentration above 0 mcg/mL")
    if dose_per_day.value <= 0:
        raise InvalidInput("dose", str(dose_per_day), "a daily dose above 0 mcg/day")
    path = path_volume(profile, catheter, length_cm)
    old_flow = MlPerDay(dose_per_day.value / old_concentration.value)
    new_flow = MlPerDay(dose_per_day.value / new_concentration.value)
    return Bridge(
        path_volume=path,
        bridge_volume=path,
        bridge_duration=Hours(path.value / old_flow.value * 24.0),
        bridge_dose=Micrograms(path.value * old_concentration.value),
        old_flow=old_flow,
        new_flow=new_flow,
        unbridged_dose_error_pct=(old_concentration.value / new_concentration.value - 1.0) * 100.0,
        unbridged_duration=Hours(path.value / new_flow.value * 24.0),
    )


@dataclass(frozen=True)
class Priming:
    priming_volume: Milliliters
    priming_duration: Hours


def priming_bolus(profile: PumpProfile, catheter: CatheterProfile, length_cm: float) -> Priming:
    """Fill the pump's internal path and the catheter after implant, at the bolus flow limit.

    The plan is the safety kernel's (one place, :func:`openitb.safety.plans.priming_bolus`):
    whole pump strokes over whole seconds rounded up, so the pump accepts it."""
    from openitb.safety.plans import priming_bolus as plan  # the kernel imports this module

    vol = path_volume(profile, catheter, length_cm)
    bolus = plan(profile, vol.value)
    if bolus is None:
        return Priming(vol, Hours(0.0))
    return Priming(Milliliters(bolus.volume_ml), Hours(bolus.hours))
