"""`itb programmer ...` (clinician) and `itb ptm ...` (patient therapy manager) against a served
pump. Every change shows the review and writes only after confirmation (`--yes`, or `y` at the
prompt on a terminal); without it nothing is written and the exit code is 1."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from openitb.commands.calc import _concentration, emit, guarded, load_prescription_file
from openitb.drugs import parse_context, parse_origin
from openitb.errors import InvalidInput, OpenITBError, RefusedOperation
from openitb.programmer.interrogate import plain_alarm, projection
from openitb.programmer.link import PumpLink, PumpRefused
from openitb.programmer.record import SessionRecord
from openitb.programmer.workflows import AnyReview, Outcome, Programmer, patient_for
from openitb.pumpservice.store import load_key_file
from openitb.safety import Actor, PatientBolusRequest, parse_role
from openitb.safety import Role as KernelRole
from openitb.telemetry.client import ProgrammerClient, TelemetryError
from openitb.telemetry.session import Role
from openitb.telemetry.tcp import TcpTransport
from openitb.therapy.prescription import Continuous, Prescription
from openitb.units import Hours, McgPerDay, Micrograms, Milliliters, parse

app = typer.Typer(help="Clinician programmer: interrogate and program a served pump.",
                  no_args_is_help=True)
ptm_app = typer.Typer(help="Patient therapy manager: a bolus within limits, and status.",
                      no_args_is_help=True)

PUMP = typer.Option(..., "--pump", help="HOST:PORT of a served pump (`itb pump serve`).")
KEY = typer.Option(..., "--key-file", help="Key file from `itb pump new`.")
JSON = typer.Option(False, "--json", help="Print one JSON object.")
YES = typer.Option(False, "--yes", help="Confirm the reviewed change without a prompt.")
OVERRIDE = typer.Option(None, "--override-reason",
                        help="Why a value outside the recommended range is right (logged).")
WHO = typer.Option(None, "--who", help="Clinician name for the session record (default: user).")
RECORD = typer.Option(None, "--record", help="Session record path (default: "
                      "$OPENITB_SESSIONS or ./itb-sessions/<serial>-<time>.json).")
ROLE = typer.Option("physician", "--role", help="Who confirms: physician or nurse (the "
                    "permission table in data/roles.toml decides what each may do).")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput("pump", text, "HOST:PORT, e.g. 127.0.0.1:7401")
    return host, int(port)


@contextmanager
def _session(pump: str, key_file: Path, role: Role, who: str | None,
             record_path: Path | None) -> Iterator[tuple[PumpLink, SessionRecord]]:
    key = load_key_file(key_file)
    if key.role is not role:
        raise InvalidInput("key_file", str(key_file), f"a {role.value} key file (this one is "
                           f"for the {key.role.value})")
    host, port = _address(pump)
    try:
        transport = TcpTransport(host, port)
    except OSError as exc:
        raise RefusedOperation(f"cannot reach the pump at {pump}: {exc}", code="link") from None
    client = ProgrammerClient(transport, role, key.key)
    record = SessionRecord(who or getpass.getuser(), role.value, key.serial, now().isoformat())
    try:
        try:
            client.open()
        except (TelemetryError, OSError) as exc:
            raise RefusedOperation(f"the pump did not open a session: {exc}", code="link"
                                   ) from None
        link = PumpLink(client, record, now)
        status = link.read_status()
        if key.serial and status.get("serial") and status["serial"] != key.serial:
            raise RefusedOperation(f"this key file is for pump {key.serial}, but the pump at "
                                   f"{pump} is {status['serial']}", code="wrong_pump")
        yield link, record
    finally:
        try:
            client.close()
        except (TelemetryError, OSError):
            pass
        transport.close()
        if role is Role.CLINICIAN:
            base = Path(os.environ.get("OPENITB_SESSIONS", "itb-sessions"))
            path = record_path or base / f"{record.pump or 'pump'}-{record.started[:19]}.json"
            record.write(path.with_name(path.name.replace(":", "")), now)


def _programmer(link: PumpLink, role: str, who: str | None) -> Programmer:
    r = parse_role(role, "role")
    if r is KernelRole.PATIENT:
        raise InvalidInput("role", role, "physician or nurse (the patient uses `itb ptm`)")
    return Programmer(link, actor=Actor(r, who or getpass.getuser()))


def _print_review(review: AnyReview) -> None:
    table = Table(title=f"Review: {getattr(review, 'title', 'program change')}")
    for col in ("setting", "current", "proposed", "check"):
        table.add_column(col)
    for r in review.rows:
        mark = "*" if r.changed else ""
        table.add_row(f"{mark}{r.field}", r.current, r.proposed,
                      r.classification.value if r.classification else "")
    console = Console(stderr=True)
    console.print(table)
    console.print(f"guardrail: {review.classification.value}: {review.reason}")
    for v in review.verdicts:
        console.print(f"  rule {v.rule}: {v.classification.value}: {v.reason} [{v.source}]",
                      markup=False)
    console.print(f"decision: {review.decision.value}"
                  + (f"; override by {', '.join(r.value for r in review.override.roles)} with "
                     "a reason" if review.override.required else ""))
    for c in review.commands:
        console.print(f"  will write: {c.name} {c.arguments}", markup=False)
    for w in getattr(review, "warnings", ()):
        console.print(f"warning: {w}")


def _confirmer(yes: bool, as_json: bool) -> Callable[[AnyReview], bool]:
    def confirm(review: AnyReview) -> bool:
        if not as_json or not yes:
            _print_review(review)
        if yes:
            return True
        if not sys.stdin.isatty():
            return False
        answer = input("Write these settings to the pump? Type 'yes' to confirm: ")
        return answer.strip().lower() == "yes"
    return confirm


def _run(as_json: bool, title: str, fn: Callable[[], Outcome | dict[str, Any]]) -> None:
    try:
        out = fn()
    except RefusedOperation as exc:
        if as_json:
            print(json.dumps({"ok": False, "code": exc.code, "reason": exc.reason}))
            raise typer.Exit(1) from None
        raise
    result = out.to_dict() if isinstance(out, Outcome) else out
    emit(result if as_json else _for_table(result), as_json, title)


def _for_table(result: dict[str, Any]) -> dict[str, Any]:
    """Flatten nested values into readable lines; the review was already shown as a table."""
    def line(v: Any) -> str:
        if isinstance(v, dict):
            return ", ".join(f"{k}={line(x)}" for k, x in v.items() if x not in (None, [], {}))
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v)

    out: dict[str, Any] = {}
    for key, value in result.items():
        if key == "review":
            continue
        if isinstance(value, dict):
            out[key] = [f"{k}: {line(v)}" for k, v in value.items()] or None
        elif isinstance(value, list):
            out[key] = [line(v) for v in value]
        else:
            out[key] = value
    return out


def _rx(dose: str | None, prescription: Path | None) -> Prescription:
    if (dose is None) == (prescription is None):
        raise InvalidInput("dose", dose, "exactly one of --dose or --prescription")
    if dose is not None:
        return Continuous(parse(dose, McgPerDay, "dose"))
    assert prescription is not None
    return load_prescription_file(prescription)


@app.command()
@guarded
def interrogate(pump: str = PUMP, key_file: Path = KEY, who: str | None = WHO,
                record: Path | None = RECORD, log: int = typer.Option(20, "--log"),
                as_json: bool = JSON) -> None:
    """Status, program, reservoir projection, alarms, battery and ERI, recent log."""
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer interrogate", lambda: Programmer(link).interrogate(log))


@app.command()
@guarded
def program(pump: str = PUMP, key_file: Path = KEY,
            dose: str | None = typer.Option(None, "--dose", help="e.g. '480 mcg/day'."),
            prescription: Path | None = typer.Option(None, "--prescription",
                                                     help="Prescription TOML (flex etc.)."),
            origin: str = typer.Option(..., "--origin", help="spinal or cerebral."),
            context: str = typer.Option("maintenance", "--context",
                                        help="titration or maintenance."),
            yes: bool = YES, override_reason: str | None = OVERRIDE, who: str | None = WHO,
            record: Path | None = RECORD, as_json: bool = JSON, role: str = ROLE) -> None:
    """Change the dose or the flex program (guardrails by origin and context)."""
    rx = _rx(dose, prescription)
    o, c = parse_origin(origin), parse_context(context)
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer program", lambda: _programmer(link, role, who).change_program(
            rx, origin=o, context=c, confirm=_confirmer(yes, as_json),
            override_reason=override_reason))


@app.command()
@guarded
def implant(pump: str = PUMP, key_file: Path = KEY,
            dose: str | None = typer.Option(None, "--dose"),
            prescription: Path | None = typer.Option(None, "--prescription"),
            product: str = typer.Option(..., "--product", help="e.g. Gablofen."),
            concentration: str = typer.Option(..., "--concentration"),
            volume: str = typer.Option(..., "--volume", help="Fill volume, e.g. '20 mL'."),
            origin: str = typer.Option(..., "--origin"),
            yes: bool = YES, override_reason: str | None = OVERRIDE, who: str | None = WHO,
            record: Path | None = RECORD, as_json: bool = JSON, role: str = ROLE) -> None:
    """First fill, program, start and priming bolus of a new pump."""
    rx = _rx(dose, prescription)
    conc, _ = _concentration(concentration, "concentration", False)
    vol = parse(volume, Milliliters, "volume")
    o = parse_origin(origin)
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer implant", lambda: _programmer(link, role, who).implant(
            rx, product=product, concentration=conc, volume=vol, origin=o,
            confirm=_confirmer(yes, as_json), override_reason=override_reason))


@app.command("replace")
@guarded
def replace(pump: str = PUMP, key_file: Path = KEY,
            dose: str | None = typer.Option(None, "--dose"),
            prescription: Path | None = typer.Option(None, "--prescription"),
            product: str = typer.Option(..., "--product", help="e.g. Gablofen."),
            concentration: str = typer.Option(..., "--concentration"),
            volume: str = typer.Option(..., "--volume", help="Fill volume, e.g. '20 mL'."),
            origin: str = typer.Option(..., "--origin"),
            new_catheter: bool = typer.Option(False, "--new-catheter/--same-catheter",
                                              help="Was the catheter replaced too? (priming)"),
            yes: bool = YES, override_reason: str | None = OVERRIDE, who: str | None = WHO,
            record: Path | None = RECORD, as_json: bool = JSON, role: str = ROLE) -> None:
    """Set up a replacement pump (the one at --pump): fill, program, start, and prime its
    internal path (and the catheter when it was replaced). Shows the review first."""
    rx = _rx(dose, prescription)
    conc, _ = _concentration(concentration, "concentration", False)
    vol = parse(volume, Milliliters, "volume")
    o = parse_origin(origin)
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer replace", lambda: _programmer(link, role, who).replacement(
            rx, product=product, concentration=conc, volume=vol, origin=o,
            new_catheter=new_catheter, confirm=_confirmer(yes, as_json),
            override_reason=override_reason))


@app.command()
@guarded
def refill(pump: str = PUMP, key_file: Path = KEY,
           withdrawn: str = typer.Option(..., "--withdrawn", help="Volume withdrawn, measured."),
           product: str = typer.Option(..., "--product"),
           concentration: str = typer.Option(..., "--concentration"),
           volume: str = typer.Option(..., "--volume", help="Volume now in the reservoir."),
           bridge: bool = typer.Option(True, "--bridge/--no-bridge",
                                       help="Give the bridge bolus at a concentration change."),
           yes: bool = YES, override_reason: str | None = OVERRIDE, who: str | None = WHO,
           record: Path | None = RECORD, as_json: bool = JSON, role: str = ROLE) -> None:
    """Refill: discrepancy check, product from the library, bridge bolus, new alarm dates."""
    w = parse(withdrawn, Milliliters, "withdrawn")
    conc, _ = _concentration(concentration, "concentration", False)
    vol = parse(volume, Milliliters, "volume")
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer refill", lambda: _programmer(link, role, who).refill(
            withdrawn=w, product=product, concentration=conc, volume=vol, bridge=bridge,
            confirm=_confirmer(yes, as_json), override_reason=override_reason))


@app.command()
@guarded
def bolus(pump: str = PUMP, key_file: Path = KEY,
          dose: str = typer.Option(..., "--dose", help="e.g. '50 mcg'."),
          duration: str = typer.Option(..., "--duration", help="e.g. '1 h'."),
          yes: bool = YES, override_reason: str | None = OVERRIDE, who: str | None = WHO,
          record: Path | None = RECORD, as_json: bool = JSON, role: str = ROLE,
          origin: str = typer.Option("spinal", "--origin", help="spinal or cerebral.")
          ) -> None:
    """A clinician bolus on top of the running program."""
    d, t = parse(dose, Micrograms, "dose"), parse(duration, Hours, "duration")
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer bolus", lambda: _programmer(link, role, who).clinician_bolus(
            d, t, confirm=_confirmer(yes, as_json), override_reason=override_reason,
            patient=patient_for(parse_origin(origin))))


@app.command("low-alarm")
@guarded
def low_alarm(pump: str = PUMP, key_file: Path = KEY,
              threshold: str = typer.Option(..., "--threshold", help="e.g. '3 mL'."),
              yes: bool = YES, override_reason: str | None = OVERRIDE, who: str | None = WHO,
              record: Path | None = RECORD, as_json: bool = JSON, role: str = ROLE) -> None:
    """Set the low-reservoir alarm threshold."""
    th = parse(threshold, Milliliters, "threshold")
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer low-alarm", lambda: _programmer(link, role, who).set_low_alarm(
            th, confirm=_confirmer(yes, as_json), override_reason=override_reason))


@app.command("patient-limits")
@guarded
def patient_limits(pump: str = PUMP, key_file: Path = KEY,
                   dose: str = typer.Option(..., "--dose", help="Per activation, e.g. '20 mcg'."),
                   duration: str = typer.Option("15 min", "--duration"),
                   lockout: str = typer.Option(..., "--lockout", help="e.g. '3 h'."),
                   max_per_day: int = typer.Option(..., "--max-per-day"),
                   yes: bool = YES, override_reason: str | None = OVERRIDE,
                   who: str | None = WHO, record: Path | None = RECORD,
                   as_json: bool = JSON, role: str = ROLE) -> None:
    """Limits for the patient therapy manager (enforced by the pump)."""
    d, t = parse(dose, Micrograms, "dose"), parse(duration, Hours, "duration")
    lo = parse(lockout, Hours, "lockout")
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer patient-limits", lambda: _programmer(link, role, who)
             .set_patient_limits(dose=d, duration=t, lockout=lo, max_per_day=max_per_day,
                                 confirm=_confirmer(yes, as_json),
                                 override_reason=override_reason))


@app.command()
@guarded
def stop(pump: str = PUMP, key_file: Path = KEY, yes: bool = YES,
         override_reason: str | None = OVERRIDE, who: str | None = WHO,
         record: Path | None = RECORD, as_json: bool = JSON, role: str = ROLE) -> None:
    """Stop infusion (a reason is always required: withdrawal risk)."""
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer stop", lambda: _programmer(link, role, who).stop(
            confirm=_confirmer(yes, as_json), override_reason=override_reason))


@app.command()
@guarded
def start(pump: str = PUMP, key_file: Path = KEY, yes: bool = YES, who: str | None = WHO,
          record: Path | None = RECORD, as_json: bool = JSON, role: str = ROLE) -> None:
    """Start (resume) the program in the pump."""
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer start", lambda: _programmer(link, role, who).start(
            confirm=_confirmer(yes, as_json)))


@app.command("post-mri")
@guarded
def post_mri(pump: str = PUMP, key_file: Path = KEY, yes: bool = YES, who: str | None = WHO,
             record: Path | None = RECORD, as_json: bool = JSON, role: str = ROLE) -> None:
    """After an MRI: interrogate, confirm recovery, restart a stopped pump (with review)."""
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer post-mri", lambda: _programmer(link, role, who).post_mri_check(
            confirm=_confirmer(yes, as_json)))


@app.command()
@guarded
def replacement(pump: str = PUMP, key_file: Path = KEY, who: str | None = WHO,
                record: Path | None = RECORD, as_json: bool = JSON) -> None:
    """Replacement planning from the battery projection and the ERI."""
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer replacement", lambda: Programmer(link).replacement_plan())


@app.command()
@guarded
def acknowledge(pump: str = PUMP, key_file: Path = KEY,
                kind: str = typer.Option(..., "--kind", help="Alarm kind, e.g. low_reservoir."),
                who: str | None = WHO, record: Path | None = RECORD,
                as_json: bool = JSON) -> None:
    """Silence (acknowledge) an active alarm; the condition stays until it is resolved."""
    with _session(pump, key_file, Role.CLINICIAN, who, record) as (link, _):
        _run(as_json, "itb programmer acknowledge",
             lambda: Programmer(link).acknowledge_alarm(kind))


# ---- patient therapy manager ---------------------------------------------------------------
def _patient_status(status: dict[str, Any]) -> dict[str, Any]:
    proj = projection(status)
    pb = status.get("patient_bolus") or {}
    return {
        "pump": status.get("serial"),
        "state": status.get("state"),
        "refill_by": proj["refill_by"] if proj else None,
        "low_alarm_expected": proj["low_alarm_at"] if proj else None,
        "alarms": [plain_alarm(a["kind"]) for a in status.get("alarms", [])],
        "all_clear": not status.get("alarms"),
        "bolus_enabled": pb.get("limits") is not None,
        "boluses_used_today": pb.get("used_today"),
        "next_bolus_allowed": pb.get("next_allowed"),
    }


@ptm_app.command("status")
@guarded
def ptm_status(pump: str = PUMP, key_file: Path = KEY, as_json: bool = JSON) -> None:
    """Next refill-by date, and any alarm in plain words with what to do."""
    with _session(pump, key_file, Role.PATIENT, None, None) as (link, _):
        result = _patient_status(link.read_status())
    if as_json:
        print(json.dumps(result))
        return
    print(f"Pump {result['pump']}: {result['state']}")
    print(f"Next refill by: {result['refill_by'] or 'ask your clinic'}")
    if result["all_clear"]:
        print("No alarms.")
    for a in result["alarms"]:
        print(f"ALARM: {a['what']}\n  What to do: {a['what_to_do']}")
    if result["bolus_enabled"]:
        print(f"Boluses today: {result['boluses_used_today']}; next allowed at "
              f"{result['next_bolus_allowed']}")


@ptm_app.command("bolus")
@guarded
def ptm_bolus(pump: str = PUMP, key_file: Path = KEY, as_json: bool = JSON) -> None:
    """Ask the pump for a bolus within the limits the clinician set (the safety kernel reviews
    the request first; the pump enforces its limits again)."""
    with _session(pump, key_file, Role.PATIENT, None, None) as (link, _):
        try:
            prog = Programmer(link, actor=Actor(KernelRole.PATIENT, "patient"))
            rv = prog.review(PatientBolusRequest())
            if rv.refused:
                raise PumpRefused(rv.reason, code=rv.refusal_code)
            out = link.send(rv.commands[0].name, **rv.commands[0].arguments,
                            expect_version=rv.state_version)
        except PumpRefused as exc:
            if as_json:
                print(json.dumps({"ok": False, "code": exc.code, "reason": exc.reason}))
            else:
                print(f"Bolus not given: {exc.reason}", file=sys.stderr)
            raise typer.Exit(1) from None
    if as_json:
        print(json.dumps({"ok": True, **out}))
    else:
        print(f"Bolus of {out['dose_mcg']:g} mcg started (ends {out['ends_at']}); "
              f"{out['used_today']} of {out['max_per_day']} today; next allowed at "
              f"{out['next_allowed']}")


@ptm_app.command("silence")
@guarded
def ptm_silence(pump: str = PUMP, key_file: Path = KEY,
                kind: str = typer.Option(..., "--kind", help="Alarm kind from `itb ptm status`."),
                as_json: bool = JSON) -> None:
    """Silence a sounding alarm. The condition stays until the clinic resolves it."""
    with _session(pump, key_file, Role.PATIENT, None, None) as (link, _):
        link.send("acknowledge_alarm", kind=kind)
        result = {"silenced": kind, **plain_alarm(kind)}
    if as_json:
        print(json.dumps(result))
    else:
        print(f"Silenced: {result['what']}\n  Still to do: {result['what_to_do']}")


__all__ = ["app", "ptm_app", "OpenITBError"]
