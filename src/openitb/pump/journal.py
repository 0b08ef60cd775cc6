"""Commands as journal data: each controller input written so that a replay gives the same state.

A command is a frozen dataclass; each field is written with a tag for its kind (a quantity with
its unit class, a prescription in its documented schema, a UTC time). Decoding accepts only the
command and unit classes named here, so a journal line cannot build anything else.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from openitb.pump import commands as cmd
from openitb.therapy.prescription import parse_prescription
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters, MlPerDay, Quantity

COMMANDS: dict[str, type[Any]] = {
    c.__name__: c for c in (
        cmd.SetClock, cmd.Program, cmd.Start, cmd.Stop, cmd.ClinicianBolus, cmd.PrimingBolus,
        cmd.BridgeBolus, cmd.Refill, cmd.SetLowAlarm, cmd.AcknowledgeAlarm, cmd.AlarmTest,
        cmd.ReadStatus, cmd.ReadLog, cmd.MriStart, cmd.MriEnd, cmd.PowerOnReset, cmd.PocketFill,
        cmd.CatheterFault)}
UNITS: dict[str, type[Quantity]] = {
    u.__name__: u for u in (Micrograms, Milliliters, McgPerMl, McgPerDay, MlPerDay, Hours)}
READS = frozenset({"ReadStatus", "ReadLog"})


class BadCommandRecord(ValueError):
    pass


def _encode(v: Any) -> Any:
    if isinstance(v, Quantity):
        return {"unit": type(v).__name__, "value": v.value}
    if isinstance(v, datetime):
        return {"time": v.isoformat()}
    if hasattr(v, "segments") and hasattr(v, "to_dict"):
        return {"prescription": v.to_dict()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"cannot journal a {type(v).__name__}")


def _decode(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"unit", "value"} and v["unit"] in UNITS:
            return UNITS[v["unit"]](v["value"])
        if set(v) == {"time"} and isinstance(v["time"], str):
            return datetime.fromisoformat(v["time"])
        if set(v) == {"prescription"}:
            return parse_prescription(v["prescription"])
        raise BadCommandRecord(f"unknown argument form {sorted(v)[:4]}")
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise BadCommandRecord(f"an argument of type {type(v).__name__}")


def encode_command(command: Any) -> dict[str, Any]:
    name = type(command).__name__
    if name not in COMMANDS:
        raise TypeError(f"{name} is not a pump command")
    return {"name": name, "args": {f.name: _encode(getattr(command, f.name))
                                   for f in dataclasses.fields(command)}}


def decode_command(doc: dict[str, Any]) -> Any:
    name, args = doc.get("name"), doc.get("args")
    if not isinstance(name, str) or name not in COMMANDS or not isinstance(args, dict):
        raise BadCommandRecord(f"command {str(name)[:40]!r} is not a pump command")
    cls = COMMANDS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    if not set(args) <= fields:
        raise BadCommandRecord(f"{name} takes {sorted(fields)}, not {sorted(args)[:6]}")
    try:
        return cls(**{k: _decode(v) for k, v in args.items()})
    except (TypeError, ValueError) as exc:
        raise BadCommandRecord(f"{name}: {exc}"[:300]) from None
