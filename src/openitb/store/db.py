"""Engine, sessions and migrations.

The database is a SQLite file (``var/openitb.db``) unless ``OPENITB_DATABASE_URL`` names another
(``postgresql+psycopg://user@host/db``). Migrations live in this package and run on start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from openitb.errors import InvalidInput

DEFAULT_PATH = Path("var") / "openitb.db"
MIGRATIONS = Path(__file__).with_name("migrations")


def database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else OPENITB_DATABASE_URL, else the SQLite default."""
    chosen = url or os.environ.get("OPENITB_DATABASE_URL") or f"sqlite:///{DEFAULT_PATH}"
    if chosen.startswith("postgresql://") or chosen.startswith("postgres://"):
        chosen = "postgresql+psycopg://" + chosen.split("://", 1)[1]
    if not (chosen.startswith("sqlite") or chosen.startswith("postgresql+psycopg://")):
        raise InvalidInput("OPENITB_DATABASE_URL", chosen,
                           "a sqlite:///path or postgresql://user@host/db URL")
    return chosen


def make_engine(url: str | None = None, **kw: Any) -> Engine:
    u = database_url(url)
    if u.startswith("sqlite"):
        path = u.split("///", 1)[1] if "///" in u else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, connect_args={"check_same_thread": False, "timeout": 30}, **kw)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            # A REPLACE deletes the row it replaces; with recursive triggers that delete fires
            # the audit trail's delete trigger too (the migration also refuses it on insert).
            cur.execute("PRAGMA recursive_triggers=ON")
            if path and path != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return engine
    return create_engine(u, pool_pre_ping=True, **kw)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(engine), revision)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose audit rows are chained (``store/audit.py``) at every flush."""
    from openitb.store import audit

    audit.install()
    return sessionmaker(bind=engine, expire_on_commit=False)
