"""`itb calc`: one subcommand per dose calculation; a table by default, `--json` for machines.

Bad input: exit code 2 and one line on stderr naming the field, the value and what is allowed.
"""

from __future__ import annotations

import json
import math
import sys
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from openitb.devices import default_catheter, get_pump, load_catalog
from openitb.drugs import load_library, parse_context, parse_origin
from openitb.errors import InvalidInput, OpenITBError
from openitb.therapy.guardrails import check_change
from openitb.therapy.prescription import Continuous, Prescription, parse_prescription
from openitb.therapy.refill import (
    DEFAULT_LEAD_DAYS,
    DEFAULT_MAX_INTERVAL_DAYS,
    bridge_bolus,
    check_discrepancy,
    priming_bolus,
    project_refill,
)
from openitb.therapy.screening import first_pump_dose
from openitb.units import (
    Hours,
    McgPerDay,
    McgPerMl,
    Micrograms,
    Milliliters,
    MlPerDay,
    parse,
    parse_length_cm,
)

app = typer.Typer(help="Dose, rate, refill and bolus calculations.", no_args_is_help=True)

F = TypeVar("F", bound=Callable[..., Any])
JSON = typer.Option(False, "--json", help="Print one JSON object instead of a table.")


def guarded(fn: F) -> F:
    """Turn OpenITB errors into the CLI contract: one line on stderr, exit 2 (input) or 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InvalidInput as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None
        except OpenITBError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def emit(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps(result, default=_jsonable))
        return
    table = Table(title=title, show_header=True)
    table.add_column("field")
    table.add_column("value")
    for key, value in result.items():
        if isinstance(value, float):
            shown = f"{value:.6g}"
        elif isinstance(value, (list, tuple)):
            shown = "\n".join(str(v) for v in value) or "-"
        elif value is None:
            shown = "-"
        else:
            shown = str(_jsonable(value))
        table.add_row(key, shown)
    Console().print(table)


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if hasattr(v, "value") and isinstance(getattr(v, "value", None), str):
        return v.value
    return str(v)


def _concentration(text: str, field: str, compounded: bool) -> tuple[McgPerMl, str | None]:
    conc = parse(text, McgPerMl, field)
    if conc.value <= 0:
        raise InvalidInput(field, text, "a concentration above 0 mcg/mL")
    check = load_library().check_concentration(conc, compounded=compounded, field=field)
    if check.warning:
        print(f"warning: {check.warning}", file=sys.stderr)
    return conc, check.warning


def _start(text: str | None) -> datetime:
    if text is None:
        # The CLI is an adapter: it may read the clock; the core never does.
        return datetime.now(UTC).replace(microsecond=0)
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput("start", text, "an ISO 8601 date-time, e.g. 2026-01-05T09:00:00+00:00") from None
    if t.tzinfo is None:
        raise InvalidInput("start", text, "an ISO 8601 date-time with a UTC offset, e.g. +00:00")
    return t


def load_prescription_file(path: Path) -> Prescription:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput("prescription", str(path), "an existing TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput("prescription", str(path), f"valid TOML ({exc})") from None
    return parse_prescription(doc)


@app.command()
@guarded
def rate(
    dose: str = typer.Option(..., help="Daily dose, e.g. '400 mcg/day'."),
    concentration: str = typer.Option(..., help="e.g. '500 mcg/mL' or '0.5 mg/mL'."),
    compounded: bool = typer.Option(False, help="Accept a concentration no product has."),
    as_json: bool = JSON,
) -> None:
    """Flow needed to deliver a daily dose at a concentration."""
    d = parse(dose, McgPerDay, "dose")
    c, _ = _concentration(concentration, "concentration", compounded)
    flow: MlPerDay = d / c
    emit(
        {"dose_mcg_per_day": d.value, "concentration_mcg_per_ml": c.value,
         "flow_ml_per_day": flow.value},
        as_json, "Rate",
    )


@app.command()
@guarded
def dose(
    flow: str = typer.Option(..., help="Flow, e.g. '0.8 mL/day'."),
    concentration: str = typer.Option(...),
    compounded: bool = typer.Option(False),
    as_json: bool = JSON,
) -> None:
    """Daily dose delivered by a flow at a concentration."""
    f = parse(flow, MlPerDay, "flow")
    c, _ = _concentration(concentration, "concentration", compounded)
    d: McgPerDay = f * c
    emit(
        {"flow_ml_per_day": f.value, "concentration_mcg_per_ml": c.value,
         "dose_mcg_per_day": d.value},
        as_json, "Dose",
    )


@app.command()
@guarded
def refill(
    profile: str = typer.Option(..., help="Pump profile: itb-10, itb-20, itb-40."),
    volume: str = typer.Option(..., help="Volume in the reservoir after the refill, e.g. '40 mL'."),
    concentration: str = typer.Option(...),
    dose: str | None = typer.Option(None, help="Simple continuous daily dose."),
    prescription: Path | None = typer.Option(None, help="Prescription TOML file (any mode)."),
    low_alarm: str | None = typer.Option(None, help="Low-reservoir alarm threshold, e.g. '2 mL'."),
    start: str | None = typer.Option(None, help="ISO 8601 with offset; default now."),
    lead_days: float = typer.Option(DEFAULT_LEAD_DAYS, help="Days before the alarm to refill."),
    max_interval_days: float = typer.Option(DEFAULT_MAX_INTERVAL_DAYS),
    compounded: bool = typer.Option(False),
    as_json: bool = JSON,
) -> None:
    """Days and dates to the low-reservoir alarm, to empty, and the refill-by date."""
    prof = get_pump(profile)
    vol = parse(volume, Milliliters, "volume")
    conc, _ = _concentration(concentration, "concentration", compounded)
    if (dose is None) == (prescription is None):
        raise InvalidInput("dose/prescription", "both" if dose else "neither", "give exactly one")
    rx = Continuous(parse(dose, McgPerDay, "dose")) if dose else load_prescription_file(prescription)  # type: ignore[arg-type]
    if rx.daily_dose().value <= 0:
        raise InvalidInput("dose", "0 mcg/day", "a daily dose above 0 mcg/day")
    from openitb.therapy.prescription import validate_for_pump

    validate_for_pump(rx, prof, conc)
    low = parse(low_alarm, Milliliters, "low_alarm") if low_alarm else None
    p = project_refill(
        rx, prof, vol, conc, _start(start), low_alarm=low, lead_days=lead_days,
        max_interval_days=max_interval_days,
    )
    emit(
        {
            "profile": prof.name,
            "volume_ml": p.volume.value,
            "concentration_mcg_per_ml": p.concentration.value,
            "low_alarm_ml": p.low_alarm.value,
            "flow_ml_per_day": p.flow_per_day.value,
            "dose_mcg_per_day": p.dose_per_day.value,
            "start": p.start,
            "days_to_low_alarm": p.days_to_low_alarm,
            "low_alarm_at": p.low_alarm_at,
            "days_to_empty": p.days_to_empty,
            "empty_at": p.empty_at,
            "refill_by": p.refill_by,
            "refill_by_reason": p.refill_by_reason,
        },
        as_json, "Refill projection",
    )


@app.command()
@guarded
def change(
    current: str = typer.Option(..., help="Current daily dose."),
    proposed: str = typer.Option(..., help="Proposed daily dose."),
    origin: str = typer.Option(..., help="spinal | cerebral"),
    context: str = typer.Option(..., help="titration | maintenance"),
    as_json: bool = JSON,
) -> None:
    """Classify a dose change against the label's limits."""
    c = check_change(
        parse(current, McgPerDay, "current"), parse(proposed, McgPerDay, "proposed"),
        parse_origin(origin), parse_context(context),
    )
    emit(
        {
            "current_mcg_per_day": c.current.value,
            "proposed_mcg_per_day": c.proposed.value,
            "change_pct": c.change_pct,
            "classification": c.classification.value,
            "reason": c.reason,
            "recommended_min_mcg_per_day": c.recommended_min.value,
            "recommended_max_mcg_per_day": c.recommended_max.value,
            "absolute_min_mcg_per_day": c.absolute_min.value,
            "absolute_max_mcg_per_day": c.absolute_max.value,
        },
        as_json, "Dose change",
    )


@app.command()
@guarded
def discrepancy(
    profile: str = typer.Option(...),
    expected: str = typer.Option(..., help="Volume the pump expects in the reservoir."),
    withdrawn: str = typer.Option(..., help="Volume actually withdrawn."),
    as_json: bool = JSON,
) -> None:
    """Compare the withdrawn volume with the pump's estimate."""
    d = check_discrepancy(
        get_pump(profile), parse(expected, Milliliters, "expected"),
        parse(withdrawn, Milliliters, "withdrawn"),
    )
    emit(
        {
            "expected_ml": d.expected.value,
            "withdrawn_ml": d.withdrawn.value,
            "difference_ml": d.difference_ml,
            "threshold_ml": d.threshold.value,
            "flagged": d.flagged,
            "direction": d.direction,
            "possible_causes": list(d.possible_causes),
        },
        as_json, "Refill discrepancy",
    )


def _length(text: str) -> float:
    return parse_length_cm(text, "catheter_length")


@app.command()
@guarded
def bridge(
    profile: str = typer.Option(...),
    catheter_length: str = typer.Option(..., help="Implanted catheter length, e.g. '90 cm'."),
    old_concentration: str = typer.Option(...),
    new_concentration: str = typer.Option(...),
    dose: str = typer.Option(..., help="Daily dose, unchanged across the refill."),
    compounded: bool = typer.Option(False),
    as_json: bool = JSON,
) -> None:
    """Bridge bolus at a concentration change."""
    b = bridge_bolus(
        get_pump(profile), default_catheter(), _length(catheter_length),
        _concentration(old_concentration, "old_concentration", compounded)[0],
        _concentration(new_concentration, "new_concentration", compounded)[0],
        parse(dose, McgPerDay, "dose"),
    )
    emit(
        {
            "path_volume_ml": b.path_volume.value,
            "bridge_volume_ml": b.bridge_volume.value,
            "bridge_duration_hours": b.bridge_duration.value,
            "bridge_dose_mcg": b.bridge_dose.value,
            "old_flow_ml_per_day": b.old_flow.value,
            "new_flow_ml_per_day": b.new_flow.value,
            "unbridged_dose_error_pct": b.unbridged_dose_error_pct,
            "unbridged_duration_hours": b.unbridged_duration.value,
        },
        as_json, "Bridge bolus",
    )


@app.command()
@guarded
def priming(
    profile: str = typer.Option(...),
    catheter_length: str = typer.Option(...),
    as_json: bool = JSON,
) -> None:
    """Priming bolus after implant: fills the pump path and the catheter."""
    p = priming_bolus(get_pump(profile), default_catheter(), _length(catheter_length))
    emit(
        {"priming_volume_ml": p.priming_volume.value,
         "priming_duration_hours": p.priming_duration.value},
        as_json, "Priming bolus",
    )


@app.command("first-dose")
@guarded
def first_dose(
    effective_bolus: str = typer.Option(..., help="The screening bolus that worked, e.g. '50 mcg'."),
    effect_hours: float = typer.Option(..., help="How long its effect lasted, in hours."),
    as_json: bool = JSON,
) -> None:
    """First pump dose from the screening result."""
    if not math.isfinite(effect_hours) or effect_hours < 0:
        raise InvalidInput("effect_hours", effect_hours, "an effect duration of 0 to 48 h")
    f = first_pump_dose(parse(effective_bolus, Micrograms, "effective_bolus"), Hours(effect_hours))
    emit({"initial_dose_mcg_per_day": f.dose_per_day.value, "rule": f.rule}, as_json, "First dose")


@app.command()
@guarded
def profiles(as_json: bool = JSON) -> None:
    """List the pump and catheter profiles with their fields and sources."""
    cat = load_catalog()
    pumps = [
        {
            "name": p.name,
            "description": p.description,
            "capacity_ml": p.capacity.value,
            "stroke_volume_ul": p.stroke_volume_nl / 1000,
            "min_flow_ml_per_day": p.min_flow.value,
            "max_flow_ml_per_day": p.max_flow.value,
            "bolus_max_flow_ml_per_hour": p.bolus_max_flow_ml_per_hour,
            "internal_volume_ml": p.internal_volume.value,
            "low_alarm_default_ml": p.low_alarm_default.value,
            "low_alarm_min_ml": p.low_alarm_min.value,
            "low_alarm_max_ml": p.low_alarm_max.value,
            "flow_tolerance_pct": p.flow_tolerance_pct,
            "battery_capacity_mah": p.battery_capacity_mah,
            "eri_days": p.eri_days,
            "max_service_years": p.max_service_years,
            "mri_recovery_hours": p.mri_recovery_hours,
            "mri_resume": p.mri_resume,
            "sources": p.sources,
        }
        for p in cat.pumps.values()
    ]
    catheters = [
        {"name": c.name, "description": c.description, "volume_ml_per_cm": c.volume_ml_per_cm,
         "min_length_cm": c.min_length_cm, "max_length_cm": c.max_length_cm, "sources": c.sources}
        for c in cat.catheters.values()
    ]
    if as_json:
        print(json.dumps({"pumps": pumps, "catheters": catheters}))
        return
    table = Table(title="Pump profiles")
    for col in ("name", "capacity mL", "stroke uL", "flow mL/day", "internal mL", "low alarm mL"):
        table.add_column(col)
    for p in pumps:
        table.add_row(
            p["name"], f"{p['capacity_ml']:g}", f"{p['stroke_volume_ul']:g}",
            f"{p['min_flow_ml_per_day']:g}-{p['max_flow_ml_per_day']:g}",
            f"{p['internal_volume_ml']:g}",
            f"{p['low_alarm_default_ml']:g} ({p['low_alarm_min_ml']:g}-{p['low_alarm_max_ml']:g})",
        )
    Console().print(table)
    for c in catheters:
        Console().print(f"catheter {c['name']}: {c['volume_ml_per_cm']} mL/cm, "
                        f"{c['min_length_cm']:g}-{c['max_length_cm']:g} cm")
