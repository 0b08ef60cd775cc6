"""The `itb` command: a thin Typer root; each command group lives in openitb/commands/.

How to add a command group (keep `itb calc rate` answering at once):
  1. Write it in ``openitb/commands/<name>.py`` as a ``typer.Typer`` named ``app`` (or a plain
     function for a single command). Keep that module's top-level imports light (typer, rich,
     the pure core); import SciPy, NumPy, Dask, SQLAlchemy, FastAPI, matplotlib, the clinic or
     the fleet inside the command functions that use them.
  2. Add one line to ``COMMANDS`` below: name -> (module, attribute, one-line help).
The module is imported only when its command runs (or its own help is shown), so one heavy
group never slows another. tests/unit/test_cli_imports.py checks which modules a command loads.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

# name -> (module, attribute, help shown in `itb --help`). The attribute is a Typer app, or a
# function registered as a single command.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "calc": ("openitb.commands.calc", "app", "Dose, rate, refill and bolus calculations."),
    # pump_service adds `pump new` and `pump serve` to the pump app it re-exports.
    "pump": ("openitb.commands.pump_service", "app", "The implanted pump controller."),
    "demo": ("openitb.commands.demo", "app",
             "A guided walk through the calculations on an example patient."),
    "fleet": ("openitb.commands.fleet", "app",
              "Fleet studies: refill policies over thousands of virtual patient-years."),
    "patient": ("openitb.commands.patient", "app",
                "The virtual patient: CSF levels and effect of a dose."),
    "simulate": ("openitb.commands.simulate", "simulate_cmd",
                 "Pump and virtual patient together, from a scenario TOML file."),
    "programmer": ("openitb.commands.programmer", "app",
                   "Clinician programmer: interrogate and program a served pump."),
    "ptm": ("openitb.commands.programmer", "ptm_app",
            "Patient therapy manager: a bolus within limits, and status."),
    "serve": ("openitb.commands.serve", "app",
              "Serve the ITB clinic web application (migrates the database first)."),
    "users": ("openitb.commands.users", "app", "Clinic accounts."),
    "audit": ("openitb.commands.audit", "app", "The clinic's audit trail: verify its hash chain."),
}


def _root() -> None:
    """The root callback: it makes Typer build a group (with no eager commands)."""


def load_command(name: str) -> Any:
    """Import the module behind ``name`` and build its click command (named ``name``)."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    # Registered on a throw-away root exactly as an eager `add_typer`/`command` would be, so
    # names, help and options are the same as before the lazy loading.
    holder = typer.Typer(add_completion=False)
    holder.callback()(_root)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return typer.main.get_group(holder).commands[name]


class LazyGroup(TyperGroup):
    """Resolves a subcommand by importing its module on first use; `itb --help` imports none."""

    _listing_only = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if self._listing_only and cmd_name not in self.commands:
            return typer.core.TyperCommand(cmd_name, help=COMMANDS[cmd_name][2])
        if cmd_name not in self.commands:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing_only = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing_only = False


app = typer.Typer(
    name="itb",
    cls=LazyGroup,
    help="OpenITB: intrathecal baclofen pump therapy software for simulation, engineering "
    "verification, training and research. Not a cleared medical device.",
    no_args_is_help=True,
    add_completion=False,
)


app.callback()(_root)


if __name__ == "__main__":  # pragma: no cover
    app()
