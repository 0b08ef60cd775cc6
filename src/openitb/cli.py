"""The `itb` command: a thin Typer root; each command group lives in openitb/commands/."""

from __future__ import annotations

import typer

from openitb.commands import (  # noqa: F401 (pump_service registers on pump)
    audit,
    calc,
    demo,
    fleet,
    patient,
    programmer,
    pump,
    pump_service,
    serve,
    simulate,
    users,
)

app = typer.Typer(
    name="itb",
    help="OpenITB: intrathecal baclofen pump therapy software for simulation, engineering "
    "verification, training and research. Not a cleared medical device.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(calc.app, name="calc")
app.add_typer(pump.app, name="pump")
app.add_typer(demo.app, name="demo")
app.add_typer(fleet.app, name="fleet")
app.add_typer(patient.app, name="patient")
app.command("simulate")(simulate.simulate_cmd)
app.add_typer(programmer.app, name="programmer")
app.add_typer(programmer.ptm_app, name="ptm")
app.add_typer(serve.app, name="serve")
app.add_typer(users.app, name="users")
app.add_typer(audit.app, name="audit")
# Each command group registers here, one line each.


if __name__ == "__main__":  # pragma: no cover
    app()
