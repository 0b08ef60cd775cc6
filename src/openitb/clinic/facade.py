"""The clinic as the adapters see it: an engine, migrations run on start, and units of work."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from openitb.clinic.uow import Actor, UnitOfWork
from openitb.store.db import make_engine, migrate, session_factory


class Clinic:
    def __init__(self, engine: Engine, *, run_migrations: bool = True) -> None:
        self.engine = engine
        if run_migrations:
            migrate(engine)
        self.factory = session_factory(engine)

    @classmethod
    def open(cls, url: str | None = None) -> Clinic:
        return cls(make_engine(url))

    def uow(self, actor: Actor, now: datetime | None = None) -> UnitOfWork:
        return UnitOfWork(self.factory, actor, now)
