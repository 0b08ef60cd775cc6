"""`itb audit verify`: check the clinic's audit trail chain and name the first broken row."""

from __future__ import annotations

import typer

app = typer.Typer(help="The clinic's audit trail.", no_args_is_help=True)


@app.command("verify")
def verify(database_url: str = typer.Option(None, "--database-url",
                                             help="Else OPENITB_DATABASE_URL, else var/openitb.db.")
           ) -> None:
    """Walk the hash chain row by row: exit 0 if it is whole, 1 naming the first broken row."""
    from openitb.errors import InvalidInput
    from openitb.store import audit
    from openitb.store.db import make_engine, session_factory

    try:
        engine = make_engine(database_url)
    except InvalidInput as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    try:
        with session_factory(engine)() as s:
            verdict = audit.verify(s)
    finally:
        engine.dispose()
    if verdict.ok:
        typer.echo(f"audit trail intact: {verdict.rows} rows, every hash and link checks")
        return
    where = f"first broken row: {verdict.broken_id}" if verdict.broken_id else "the chain's end"
    typer.echo(f"audit trail BROKEN ({where}): {verdict.reason}", err=True)
    raise typer.Exit(1)
