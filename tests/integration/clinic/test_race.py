"""Racing clients over real HTTP (a small run; `make bench` runs 20 clients per endpoint on
SQLite and PostgreSQL): every write endpoint, 0 5xx, 0 lost updates, each accepted change
audited exactly once and each 409 logged once; the audit chain is whole afterwards."""

from __future__ import annotations

from openitb.clinic.facade import Clinic
from openitb.store import audit

from .racing import race

CLIENTS = 6


def check_race(clinic: Clinic, clients: int = CLIENTS) -> None:
    outcomes = race(clinic, clients)
    failures = [f for o in outcomes for f in o.failures]
    assert not failures, "\n".join(failures)
    assert sum(o.conflicts for o in outcomes) > 0  # the race was real: some writes collided
    with clinic.factory() as s:
        verdict = audit.verify(s)
    assert verdict.ok, verdict


def test_every_write_endpoint_under_racing_clients_sqlite(demo_clinic: Clinic) -> None:
    check_race(demo_clinic)
