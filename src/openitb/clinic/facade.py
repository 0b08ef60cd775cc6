"""The clinic as the adapters see it: an engine, migrations run on start, the pump gateway, and
units of work that carry it (no module global: whoever builds the clinic chooses the gateway)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, orm

from openitb.clinic.pumps import PumpGateway
from openitb.clinic.uow import Actor, UnitOfWork
from openitb.store.db import make_engine, migrate, session_factory


class ClinicWork(UnitOfWork):
    """A unit of work of the clinic: one transaction, the actor, and the pump gateway."""

    def __init__(self, factory: orm.sessionmaker[orm.Session], actor: Actor, gateway: PumpGateway,
                 now: datetime | None = None) -> None:
        super().__init__(factory, actor, now)
        self.gateway = gateway


class Clinic:
    def __init__(self, engine: Engine, *, gateway: PumpGateway | None = None,
                 run_migrations: bool = True) -> None:
        from openitb.clinic.telemetry_gateway import TelemetryPumpGateway

        self.engine = engine
        if run_migrations:
            migrate(engine)
        self.factory = session_factory(engine)
        # Every pump operation goes through the programmer over telemetry unless the builder
        # passes another gateway (ControllerGateway: frameless, for tests and benchmarks).
        self.gateway: PumpGateway = gateway if gateway is not None else TelemetryPumpGateway()

    @classmethod
    def open(cls, url: str | None = None, *, gateway: PumpGateway | None = None) -> Clinic:
        return cls(make_engine(url), gateway=gateway)

    def uow(self, actor: Actor, now: datetime | None = None) -> ClinicWork:
        return ClinicWork(self.factory, actor, self.gateway, now)
