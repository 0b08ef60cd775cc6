"""The `itb` command: a thin Typer root; each command group lives in openitb/commands/."""

from __future__ import annotations

import typer

from openitb.commands import calc, demo, pump, serve, users

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
app.add_typer(serve.app, name="serve")
app.add_typer(users.app, name="users")
# Each command group registers here, one line each.


if __name__ == "__main__":  # pragma: no cover
    app()
