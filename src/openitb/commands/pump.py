"""`itb pump simulate`: one pump on a virtual clock (an adapter over the pure controller)."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import typer

from openitb.commands.calc import _concentration, emit, guarded, load_prescription_file
from openitb.devices import get_pump
from openitb.errors import InvalidInput
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController
from openitb.therapy.prescription import Continuous, Prescription, parse_prescription
from openitb.units import Hours, McgPerDay, Micrograms, Milliliters, parse

app = typer.Typer(help="The implanted pump controller.", no_args_is_help=True)

START = datetime(2026, 1, 1, tzinfo=UTC)  # the virtual clock's origin


def _event(doc: dict[str, Any], i: int) -> tuple[float, list[Any]]:
    field = f"events[{i}]"
    if not isinstance(doc, dict) or "day" not in doc or "kind" not in doc:
        raise InvalidInput(field, doc, "a table with day and kind")
    day = doc["day"]
    if isinstance(day, bool) or not isinstance(day, (int, float)) or day < 0:
        raise InvalidInput(f"{field}.day", day, "a number of days from the start, 0 or more")
    kind = doc["kind"]
    if kind == "refill":
        conc, _ = _concentration(str(doc.get("concentration")), f"{field}.concentration", False)
        out: list[Any] = [cmd.Refill(parse(doc.get("volume"), Milliliters, f"{field}.volume"), conc)]
        if "prescription" in doc:
            out.append(cmd.Program(parse_prescription(doc["prescription"]), conc))
        return float(day), out
    if kind == "program":
        conc, _ = _concentration(str(doc.get("concentration")), f"{field}.concentration", False)
        return float(day), [cmd.Program(parse_prescription(doc.get("prescription", {})), conc)]
    if kind == "bolus":
        return float(day), [cmd.ClinicianBolus(parse(doc.get("dose"), Micrograms, f"{field}.dose"),
                                               parse(doc.get("duration"), Hours, f"{field}.duration"))]
    if kind in ("bridge", "priming"):
        cls = cmd.BridgeBolus if kind == "bridge" else cmd.PrimingBolus
        return float(day), [cls(parse(doc.get("volume"), Milliliters, f"{field}.volume"),
                                parse(doc.get("duration"), Hours, f"{field}.duration"))]
    if kind == "pocket_fill":
        return float(day), [cmd.PocketFill(parse(doc.get("volume"), Milliliters, f"{field}.volume"))]
    if kind == "low_alarm":
        return float(day), [cmd.SetLowAlarm(parse(doc.get("threshold"), Milliliters,
                                                  f"{field}.threshold"))]
    simple = {"mri_start": cmd.MriStart(), "mri_end": cmd.MriEnd(), "reset": cmd.PowerOnReset(),
              "start": cmd.Start(), "stop": cmd.Stop(), "status": cmd.ReadStatus()}
    if kind in simple:
        return float(day), [simple[kind]]
    if kind in ("occlusion", "kink", "leak", "disconnection", "repair"):
        extra: dict[str, float] = {}
        for key, allowed in (("position_cm", "cm from the pump connector, 0 or more"),
                             ("fraction", "a share between 0 and 1")):
            if key in doc:
                value = doc[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise InvalidInput(f"{field}.{key}", value, f"a number: {allowed}")
                extra[key] = float(value)
        if kind in ("kink", "leak") and "fraction" not in extra:
            raise InvalidInput(f"{field}.fraction", None, "for a kink, the share of flow that "
                               "still passes; for a leak, the share lost to tissue (0 to 1)")
        return float(day), [cmd.CatheterFault("none" if kind == "repair" else kind, **extra)]
    raise InvalidInput(f"{field}.kind", kind, "refill, program, bolus, bridge, priming, pocket_fill, low_alarm, "
                       "mri_start, mri_end, reset, start, stop, status, occlusion, kink, leak, "
                       "disconnection, repair")


def load_events(path: Path) -> list[tuple[float, list[Any]]]:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput("events", str(path), "an existing TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput("events", str(path), f"valid TOML ({exc})") from None
    items = doc.get("events", [])
    if not isinstance(items, list):
        raise InvalidInput("events", items, "a list of [[events]] tables")
    return sorted((_event(e, i) for i, e in enumerate(items)), key=lambda x: x[0])


def simulate(profile: str, concentration: Any, volume: Milliliters, prescription: Prescription,
             days: float, low_alarm: Milliliters | None, seed: int,
             events: list[tuple[float, list[Any]]], record: bool = False) -> PumpController:
    pump = PumpController.manufacture(get_pump(profile), START, np.random.default_rng(seed))
    pump.record_history = record
    setup: list[Any] = [cmd.Refill(volume, concentration)]
    if low_alarm is not None:
        setup.append(cmd.SetLowAlarm(low_alarm))
    setup += [cmd.Program(prescription, concentration), cmd.Start()]
    for c in setup:
        r = pump.handle(c)
        if not r.ok:
            raise InvalidInput(type(c).__name__, str(c), r.reason)
    if record:
        pump._sample()  # the starting point of every curve
    end = START + timedelta(days=days)
    for day, cs in events:
        at = START + timedelta(days=day)
        if at > end:
            break
        pump.advance(at)
        for c in cs:
            r = pump.handle(c)
            if not r.ok:
                pump.log.append(pump.now.isoformat(), "refused", {"command": type(c).__name__,
                                                                  "reason": r.reason})
    pump.advance(end)
    return pump


def result_of(pump: PumpController) -> dict[str, Any]:
    return {
        "alarms": [{"kind": a.kind, "critical": a.critical, "raised_at": a.raised_at,
                    "acknowledged_at": a.acknowledged_at, "cleared_at": a.cleared_at}
                   for a in pump.alarms.history],
        "delivered_ml": pump.delivered_nl / 1e6,
        "delivered_mcg": pump.delivered_mcg,
        "reservoir_ml": pump.reservoir_true_nl / 1e6,
        "reservoir_estimate_ml": pump.reservoir_estimate_nl / 1e6,
        "battery_days_left": pump.battery_days_left(),
        "state": pump.state,
        "true_stroke_nl": pump.true_stroke_nl,
        "tissue_ml": pump.tissue_nl / 1e6,
        "tissue_mcg": pump.tissue_mcg,
        # Events the pump refused (e.g. a fault position beyond the catheter): never silent.
        "refused_events": [{"at": e["at"], **e["data"]} for e in pump.log.entries
                           if e["kind"] == "refused"],
    }


@app.command("simulate")
@guarded
def simulate_cmd(
    profile: str = typer.Option(..., "--profile", help="Pump profile, e.g. itb-40."),
    concentration: str = typer.Option(..., "--concentration", help="e.g. '2000 mcg/mL'."),
    volume: str = typer.Option(..., "--volume", help="Reservoir fill, e.g. '40 mL'."),
    dose: str | None = typer.Option(None, "--dose", help="Simple continuous dose, e.g. '800 mcg/day'."),
    prescription: Path | None = typer.Option(None, "--prescription", help="Prescription TOML."),
    days: float = typer.Option(..., "--days", help="Days to simulate."),
    low_alarm: str | None = typer.Option(None, "--low-alarm", help="Low-reservoir threshold."),
    seed: int = typer.Option(0, "--seed", help="Seed for the pump's true stroke volume."),
    events: Path | None = typer.Option(None, "--events", help="Timed events TOML."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG plot."),
) -> None:
    pump_profile = get_pump(profile)
    conc, _ = _concentration(concentration, "concentration", False)
    vol = pump_profile.check_volume(parse(volume, Milliliters, "volume"))
    if (dose is None) == (prescription is None):
        raise InvalidInput("dose", dose, "exactly one of --dose or --prescription")
    rx: Prescription = (Continuous(parse(dose, McgPerDay, "dose")) if dose is not None
                        else load_prescription_file(prescription))  # type: ignore[arg-type]
    if not (days > 0 and days <= 3650):
        raise InvalidInput("days", days, "more than 0 and at most 3650 days")
    low = (pump_profile.check_low_alarm(parse(low_alarm, Milliliters, "low_alarm"))
           if low_alarm is not None else None)
    evs = load_events(events) if events is not None else []
    pump = simulate(profile, conc, vol, rx, days, low, seed, evs, record=plot is not None)
    result = result_of(pump)
    if plot is not None:
        from openitb.reports.pump_plot import plot as write_plot

        write_plot(pump, START, plot)
    if as_json:
        print(json.dumps(result))
    else:
        shown = dict(result)
        shown["alarms"] = [f"{a['kind']} {a['raised_at']}" + (f" cleared {a['cleared_at']}"
                           if a["cleared_at"] else "") for a in result["alarms"]]
        emit(shown, False, f"itb pump simulate: {profile}, {days:g} days")
