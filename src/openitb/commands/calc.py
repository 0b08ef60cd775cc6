"""`itb calc`: dose calculations (filled in below)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Dose, rate, refill and bolus calculations.", no_args_is_help=True)
