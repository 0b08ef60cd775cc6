"""`itb users`: create accounts from the command line (the first administrator)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Clinic accounts.", no_args_is_help=True)


@app.command("create")
def create(
    username: str,
    role: str = typer.Option(..., help="physician, nurse, patient or admin"),
    display_name: str = typer.Option("", help="Name shown in the clinic."),
    patient_id: int = typer.Option(None, help="For a patient or caregiver account."),
    database_url: str = typer.Option(None, "--database-url"),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    from openitb.clinic import accounts
    from openitb.clinic.facade import Clinic
    from openitb.clinic.uow import SYSTEM
    from openitb.errors import InvalidInput, RefusedOperation
    from openitb.store.db import make_engine

    clinic = Clinic(make_engine(database_url))
    try:
        with clinic.uow(SYSTEM) as u:
            user = accounts.create_user(u, username, display_name, role, password, patient_id)
            typer.echo(f"created {user.username} ({user.role})")
    except InvalidInput as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except RefusedOperation as exc:
        typer.echo(exc.reason, err=True)
        raise typer.Exit(1) from None
