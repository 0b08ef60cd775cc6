from __future__ import annotations

from datetime import UTC, datetime, timedelta

from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController, zero_error_pump
from openitb.therapy.prescription import DAY_S, Continuous, Prescription
from openitb.units import McgPerDay, McgPerMl, Milliliters

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def running_pump(volume_ml: float = 40.0, conc: float = 2000.0, dose: float = 800.0,
                 rx: Prescription | None = None, profile: str = "itb-40",
                 **kw: object) -> PumpController:
    p = zero_error_pump(profile, T0, **kw)  # type: ignore[arg-type]
    assert p.handle(cmd.Refill(Milliliters(volume_ml), McgPerMl(conc))).ok
    assert p.handle(cmd.Program(rx or Continuous(McgPerDay(dose)), McgPerMl(conc))).ok
    assert p.handle(cmd.Start()).ok
    return p


def days(n: float) -> datetime:
    return T0 + timedelta(days=n)


def programmed_strokes(rx: Prescription, conc: float, stroke_nl: int, tod0: int, seconds: int) -> float:
    """Reference integral of the programmed rate (in nominal strokes) over [tod0, tod0+seconds)."""
    total = 0.0
    t = 0
    while t < seconds:
        tod = (tod0 + t) % DAY_S
        for seg in rx.segments():
            if seg.start_s <= tod < seg.end_s:
                span = min(seg.end_s - tod, seconds - t)
                total += seg.dose_per_day.value / conc * 1e6 / DAY_S * span / stroke_nl
                t += span
                break
    return total
