"""`itb pump new` and `itb pump serve`: a pump with keys and state on disk, served over TCP."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from openitb.commands.calc import _length, _start, emit, guarded
from openitb.commands.pump import app
from openitb.errors import InvalidInput
from openitb.pumpservice import store
from openitb.pumpservice.runner import open_service, serve_forever


@app.command("new")
@guarded
def new_cmd(
    state: Path = typer.Option(..., "--state", help="Empty directory for the pump's state."),
    profile: str = typer.Option(..., "--profile", help="Pump profile, e.g. itb-20."),
    serial: str = typer.Option(..., "--serial", help="Serial number, e.g. P-0001."),
    start: str | None = typer.Option(None, "--start", help="Manufacture time (ISO 8601 UTC); "
                                     "default now."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for the true stroke volume."),
    catheter_length: str | None = typer.Option(None, "--catheter-length", help="Implanted "
                                               "(trimmed) catheter, e.g. '90 cm'; default the "
                                               "full catheter."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Create a pump and its per-role keys (key files are written with mode 0600)."""
    length = _length(catheter_length) if catheter_length is not None else None
    ident, keys = store.create(state, profile, serial, _start(start), seed, length)
    result = {
        "serial": ident.serial, "profile": ident.profile, "created": ident.created,
        "state": str(state),
        "clinician_key": keys[store.Role.CLINICIAN].hex(),
        "patient_key": keys[store.Role.PATIENT].hex(),
        "clinician_key_file": str(state / "clinician.key.json"),
        "patient_key_file": str(state / "patient.key.json"),
    }
    emit(result, as_json, f"itb pump new: {serial}")


@app.command("serve")
@guarded
def serve_cmd(
    state: Path = typer.Option(..., "--state", help="The pump's state directory."),
    port: int = typer.Option(..., "--port", help="TCP port on loopback (0 picks a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    clock: str = typer.Option("real", "--clock", help="real or virtual."),
    speed: float = typer.Option(1.0, "--speed", help="Virtual clock speed (x real time)."),
) -> None:
    """Serve one pump over the telemetry protocol until interrupted."""
    if not 0 <= port <= 65535:
        raise InvalidInput("port", port, "0 to 65535")
    from openitb.pumpservice import store

    held = store.lock_state(state)  # noqa: F841 - kept open (locked) while serving
    service, keys = open_service(state, clock, speed)

    def ready(p: int) -> None:
        print(json.dumps({"serving": service.serial, "host": host, "port": p, "clock": clock,
                          "speed": speed}), flush=True)

    serve_forever(service, keys, host, port, ready)
