"""The same service tests against a real PostgreSQL server (psycopg 3).

Runs when OPENITB_TEST_POSTGRES (or a postgresql OPENITB_DATABASE_URL) names a server that may be
wiped; `.ci/run` starts one. Skips otherwise, except under OPENITB_REQUIRE_ALL=1, where it fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from openitb.clinic.facade import Clinic
from openitb.store.db import make_engine

from . import test_migrations, test_roles, test_services, test_web
from .conftest import postgres_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_clinic() -> Iterator[Clinic]:
    url = postgres_url()
    if not url:
        if os.environ.get("OPENITB_REQUIRE_ALL") == "1":
            pytest.fail("OPENITB_REQUIRE_ALL=1 but no PostgreSQL: set OPENITB_TEST_POSTGRES")
        pytest.skip("no PostgreSQL server: set OPENITB_TEST_POSTGRES=postgresql://... to run")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    clinic = Clinic(engine)
    yield clinic
    engine.dispose()


def test_postgres_dialect(pg_clinic: Clinic) -> None:
    assert pg_clinic.engine.dialect.name == "postgresql"


def test_pg_therapy_flow(pg_clinic: Clinic) -> None:
    test_services.test_screening_implant_program_refill(pg_clinic)


def test_pg_clock_alarms(pg_clinic: Clinic) -> None:
    test_services.test_clock_raises_alarms_into_the_inbox_and_acknowledge(pg_clinic)


def test_pg_optimistic_lock(pg_clinic: Clinic) -> None:
    test_services.test_optimistic_lock_conflict(pg_clinic)


def test_pg_audit_append_only(pg_clinic: Clinic) -> None:
    test_services.test_audit_trail_before_after_refusals_and_append_only(pg_clinic)


def test_pg_demo_and_roles(pg_clinic: Clinic) -> None:
    from openitb.clinic.demo import seed_demo

    seed_demo(pg_clinic)
    test_services.test_demo_clinic_dashboard(pg_clinic)
    test_roles.test_role_matrix(pg_clinic)
    test_web.test_api_conflict_is_409_with_a_clear_message(pg_clinic)


def test_pg_migrations_roundtrip(pg_clinic: Clinic) -> None:
    test_migrations.roundtrip(pg_clinic.engine)


def test_pg_concurrent_pump_operations(pg_clinic: Clinic) -> None:
    test_services.test_concurrent_pump_operations_conflict(pg_clinic)


def test_pg_a_year_of_refills(pg_clinic: Clinic) -> None:
    test_services.test_a_year_of_dashboard_driven_refills_never_runs_dry(pg_clinic, 3)


def test_pg_racing_clients(pg_clinic: Clinic) -> None:
    from openitb.clinic.demo import seed_demo

    from . import test_race

    seed_demo(pg_clinic)
    test_race.check_race(pg_clinic)


def test_pg_audit_refuses_truncate_and_verify_catches_tampering(pg_clinic: Clinic) -> None:
    from . import test_security

    test_security.audit_append_only_and_tamper_caught(pg_clinic)
