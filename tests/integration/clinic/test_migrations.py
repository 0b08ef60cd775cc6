"""The shipped migrations build exactly the mapped schema, and go down and up again."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from openitb.store.db import alembic_config, make_engine, migrate
from openitb.store.models import Base


def assert_matches_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], diff


def roundtrip(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)  # idempotent
    assert_matches_models(engine)
    command.downgrade(alembic_config(engine), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate(engine)
    assert_matches_models(engine)


def test_sqlite_migrations(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    roundtrip(engine)
    engine.dispose()
