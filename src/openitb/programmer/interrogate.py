"""What an interrogation shows: status, program with each step's rates, reservoir projection,
alarms in plain words, battery and ERI projection, the recent log; and the replacement plan.

Pure: it reads the status and log the pump sent; times come from the pump's own clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from openitb.devices import get_pump
from openitb.errors import OpenITBError
from openitb.therapy.prescription import describe_segments, parse_prescription
from openitb.therapy.refill import project_refill
from openitb.units import McgPerMl, Milliliters

WITHDRAWAL_SIGNS = ("itching, a fast heart rate, fever, confusion, or spasticity coming back")

PLAIN = {
    "low_reservoir": ("The pump's reservoir is low.",
                      "Call your ITB clinic today to book a refill before the pump runs empty."),
    "empty_reservoir": ("The pump is empty and no longer gives baclofen.",
                        "Call your ITB clinic now. If you cannot reach them, go to an emergency "
                        "department: stopping baclofen suddenly is dangerous. Watch for "
                        + WITHDRAWAL_SIGNS + "."),
    "eri": ("The pump's battery is nearing its end: the pump must be replaced within 90 days.",
            "Call your ITB clinic to plan the replacement operation."),
    "end_of_service": ("The pump has stopped for good and no longer gives baclofen.",
                       "Call your ITB clinic or go to an emergency department now. Watch for "
                       + WITHDRAWAL_SIGNS + "."),
    "motor_stall": ("The pump's motor has stopped (this is expected during an MRI scan).",
                    "If you have not just had an MRI, or it was more than 24 hours ago, call "
                    "your ITB clinic now. Watch for " + WITHDRAWAL_SIGNS + "."),
    "memory_error": ("The pump found a fault in its memory: after a restart it stops giving "
                     "baclofen until the clinic restarts it; after a recovery from its journal it "
                     "keeps infusing its last known settings (the alarm's reason says which).",
                     "Call your ITB clinic now. Watch for " + WITHDRAWAL_SIGNS + "."),
}


def plain_alarm(kind: str) -> dict[str, str]:
    what, todo = PLAIN.get(kind, (f"The pump reports an alarm ({kind}).",
                                  "Call your ITB clinic."))
    return {"kind": kind, "what": what, "what_to_do": todo}


def pump_time(status: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(status["time"]))


def projection(status: dict[str, Any], volume_ml: float | None = None) -> dict[str, Any] | None:
    """Low-reservoir alarm date, empty date and refill-by date for the running program."""
    rx, conc = status.get("program"), status.get("program_concentration_mcg_per_ml")
    if not rx or not conc or not status.get("running"):
        return None
    profile = get_pump(str(status["profile"]))
    vol = status["reservoir_estimate_ml"] if volume_ml is None else volume_ml
    try:
        p = project_refill(parse_prescription(rx), profile, Milliliters(max(0.0, vol)),
                           McgPerMl(conc), pump_time(status),
                           low_alarm=Milliliters(status["low_alarm_ml"]))
    except OpenITBError:
        return None
    return {
        "reservoir_ml": vol,
        "flow_ml_per_day": p.flow_per_day.value,
        "low_alarm_at": p.low_alarm_at.isoformat() if p.low_alarm_at else None,
        "empty_at": p.empty_at.isoformat() if p.empty_at else None,
        "refill_by": p.refill_by.isoformat(),
        "refill_by_reason": p.refill_by_reason,
    }


def battery(status: dict[str, Any]) -> dict[str, Any]:
    now = pump_time(status)
    days = float(status["battery_days_left"])
    eri_days = int(status["eri_days"])
    eos = now + timedelta(days=days)
    eri = max(now, eos - timedelta(days=eri_days))
    return {"days_left": days, "eri_at": eri.isoformat(), "end_of_service_at": eos.isoformat(),
            "eri_reached": days <= eri_days}


def summarize(status: dict[str, Any], log: list[dict[str, Any]]) -> dict[str, Any]:
    rx = status.get("program")
    steps = describe_segments(parse_prescription(rx)) if rx else []
    return {
        "serial": status.get("serial"),
        "profile": status.get("profile"),
        "time": status.get("time"),
        "state": status.get("state"),
        "program": rx,
        "program_concentration_mcg_per_ml": status.get("program_concentration_mcg_per_ml"),
        "steps": steps,
        "reservoir_estimate_ml": status.get("reservoir_estimate_ml"),
        "reservoir_concentration_mcg_per_ml": status.get("reservoir_concentration_mcg_per_ml"),
        "low_alarm_ml": status.get("low_alarm_ml"),
        "projection": projection(status),
        "tone": status.get("tone"),
        "alarms": [{**plain_alarm(a["kind"]), "raised_at": a.get("raised_at"),
                    "acknowledged": a.get("acknowledged_at") is not None}
                   for a in status.get("alarms", [])],
        "battery": battery(status),
        "patient_bolus": status.get("patient_bolus"),
        "resumed_after_mri": status.get("resumed_after_mri", False),
        "recent_log": [{"at": e.get("at"), "kind": e.get("kind"), "data": e.get("data")}
                       for e in log],
    }


def replacement_plan(status: dict[str, Any], *, lead_days: int = 30) -> dict[str, Any]:
    """When to replace: in the ERI window, before end of service, aligned with a refill if one
    falls in the window (one operation and one needle instead of two)."""
    b = battery(status)
    now = pump_time(status)
    eri = datetime.fromisoformat(b["eri_at"])
    eos = datetime.fromisoformat(b["end_of_service_at"])
    latest = max(now, eos - timedelta(days=lead_days))
    plan_from = max(now, eri - timedelta(days=lead_days))
    proj = projection(status)
    combine = None
    if proj is not None:
        rb = datetime.fromisoformat(proj["refill_by"])
        if plan_from <= rb <= latest:
            combine = rb.isoformat()
    urgency = ("now: end of service is within the lead time" if latest <= now else
               "the ERI has been reached: schedule now" if b["eri_reached"] else "plan ahead")
    return {"battery": b, "schedule_from": plan_from.isoformat(),
            "replace_by": latest.isoformat(), "combine_with_refill_on": combine,
            "urgency": urgency}
