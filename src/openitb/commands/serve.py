"""`itb serve`: migrate the database and serve the clinic web application."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Serve the ITB clinic web application (migrates the database first).")

# h11 with TCP_NODELAY on each connection (see openitb/web/serving.py: without it every
# keep-alive request with --workers above one waited ~40 ms for the client's delayed ACK).
UVICORN_OPTIONS: dict[str, Any] = {"http": "openitb.web.serving:NoDelayH11Protocol",
                                   "log_level": "warning"}


@app.callback(invoke_without_command=True)
def serve(
    demo: bool = typer.Option(False, "--demo", help="Seed a demo clinic (once) and run the "
                              "demo clock."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    database_url: str = typer.Option(None, "--database-url",
                                     help="Database URL (default: OPENITB_DATABASE_URL, else "
                                     "sqlite:///var/openitb.db)."),
    check: bool = typer.Option(False, "--check", help="Migrate (and seed) then exit."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes (more than one: "
                                "each opens the same database)."),
) -> None:
    """Migrate, optionally seed the demo clinic, print the logins, serve on host:port."""
    import uvicorn
    from sqlalchemy import func, select

    from openitb.clinic.clock import clock_mode
    from openitb.clinic.demo import DEMO_PASSWORD, seed_demo
    from openitb.clinic.facade import Clinic
    from openitb.errors import OpenITBError
    from openitb.store.db import make_engine
    from openitb.store.models import User
    from openitb.web.app import create_app

    con = Console()
    try:
        clinic = Clinic(make_engine(database_url))
    except OpenITBError as exc:
        con.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    con.print(f"database {clinic.engine.url.render_as_string(hide_password=True)}: migrated")
    with clinic.factory() as s:
        users = s.scalar(select(func.count()).select_from(User)) or 0
        mode = clock_mode(s)
    if demo:
        if users == 0:
            con.print("seeding the demo clinic (a dozen patients)...")
            seed_demo(clinic)
        elif mode != "demo":
            con.print("[red]this database holds a real clinic (wall clock): not running a demo "
                      "on it; give another --database-url[/red]")
            raise typer.Exit(1)
        t = Table("username", "role", "password", title="Demo logins")
        for name, role in (("dr.rivera", "physician"), ("nurse.kim", "nurse"),
                           ("admin", "admin"), ("mia", "patient (Mia Lindqvist)"),
                           ("leo.carer", "caregiver (Leo Moreau)")):
            t.add_row(name, role, DEMO_PASSWORD)
        con.print(t)
    elif users == 0:
        con.print("no accounts yet: create the first administrator with "
                  "`itb users create admin --role admin`")
    if check:
        return
    con.print(f"serving on http://{host}:{port}  (Ctrl+C stops)")
    if workers > 1:
        import os

        os.environ["OPENITB_DATABASE_URL"] = clinic.engine.url.render_as_string(
            hide_password=False)
        os.environ["OPENITB_DEMO"] = "1" if demo or mode == "demo" else "0"
        clinic.engine.dispose()
        uvicorn.run("openitb.web.app:app_from_env", factory=True, host=host, port=port,
                    workers=workers, **UVICORN_OPTIONS)
        return
    live = demo or mode == "demo"
    uvicorn.run(create_app(clinic, demo=live, sync_every_s=None if live else 300.0),
                host=host, port=port, **UVICORN_OPTIONS)
