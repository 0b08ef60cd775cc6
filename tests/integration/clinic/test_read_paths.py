"""The dashboard's aggregate count and the patient page's timeline paging (issue 15): cheaper,
and still exact. The dashboard's six classes are counted in one query and only the classes a
page reaches are read: pages put together are the whole list, and the total is what each
class's definition counts. The timeline shows the newest entries; every older one is reachable
through "Show older entries"."""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from openitb.clinic import queries
from openitb.clinic.clock import set_demo_clock
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import SYSTEM, Actor
from openitb.store.db import make_engine
from openitb.store.models import Alarm, Patient, Pump, Visit
from openitb.web.app import create_app

from .conftest import login

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RN = Actor("nurse.test", "nurse", 2)

pump_rows = st.lists(st.tuples(
    st.booleans(),                                   # active
    st.sampled_from([0.0, 0.0, 150.0, 300.0]),       # dose per day (0: therapy stopped)
    st.one_of(st.none(), st.integers(-30, 60)),      # refill-by, days from now
    st.one_of(st.none(), st.integers(0, 400)),       # ERI, days from now
    st.lists(st.tuples(st.booleans(), st.booleans()), max_size=2),  # alarms: critical, acked
), min_size=0, max_size=25)


def _clinic(rows: list[tuple]) -> Clinic:  # type: ignore[type-arg]
    path = Path(tempfile.mkdtemp()) / "c.db"
    c = Clinic(make_engine(f"sqlite:///{path}"))
    with c.engine.begin() as conn:
        for i, (active, dose, refill, eri, alarms) in enumerate(rows, start=1):
            conn.execute(insert(Patient).values(
                id=i, mrn=f"M{i}", name=f"P{i:03d}", birth_date=date(1980, 1, 1),
                origin="spinal", population="spinal", diagnosis="", weight_kg=70,
                injury_level="", stage="implanted", checklist={}, emergency_contact="",
                created_at=NOW, version=1))
            conn.execute(insert(Pump).values(
                id=i, patient_id=i, profile="itb-20", serial=f"S{i}", catheter="itb-cath-110",
                catheter_length_cm=90.0, tip_level="T10", implanted_at=NOW, active=active,
                state={}, concentration=500.0, dose_per_day=dose, reservoir_ml=10.0,
                refill_by=None if refill is None else NOW + timedelta(days=refill, hours=i),
                eri_at=None if eri is None else NOW + timedelta(days=eri), synced_at=NOW))
            for k, (critical, acked) in enumerate(alarms):
                conn.execute(insert(Alarm).values(
                    patient_id=i, pump_id=i, kind="low_reservoir", critical=critical,
                    raised_at=NOW - timedelta(hours=k + i), reason="",
                    acknowledged_at=NOW if acked else None))
    with c.uow(SYSTEM, NOW) as u:
        set_demo_clock(u.session, NOW)
    return c


def _expected_total(rows: list[tuple]) -> int:  # type: ignore[type-arg]
    """Each class by its definition in words (docs/clinic.md), counted here independently."""
    n = 0
    for i, (active, dose, refill, eri, alarms) in enumerate(rows, start=1):
        # open alarms, either class: not acknowledged, or critical with its cause persisting
        # (none is cleared here) on a pump still implanted
        n += sum(1 for critical, acked in alarms if not acked or (critical and active))
        if active:
            n += dose <= 0                                        # therapy stopped
            if refill is not None:  # overdue, or due within 14 days: one item either way
                n += NOW + timedelta(days=refill, hours=i) <= NOW + timedelta(days=14)
            n += eri is not None and eri <= 180                   # ERI within 180 days
    return n


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=pump_rows, size=st.integers(1, 7), start=st.integers(0, 3))
def test_dashboard_pages_and_total_match_the_definitions(rows: list[tuple],  # type: ignore[type-arg]
                                                         size: int, start: int) -> None:
    c = _clinic(rows)
    try:
        with c.uow(RN) as u:
            whole, total = queries.dashboard_page(u, 0, None)
            assert total == len(whole) == _expected_total(rows)
            assert [i.urgency for i in whole] == sorted(i.urgency for i in whole)
            pages, offset = [], start
            while True:
                page, t = queries.dashboard_page(u, offset, size)
                assert t == total and len(page) <= size
                if not page:
                    break
                pages += page
                offset += size
            assert pages == whole[start:]
    finally:
        c.engine.dispose()


def test_timeline_shows_the_newest_entries_and_every_older_one_is_reachable(
        empty_clinic: Clinic) -> None:
    c = _clinic([(True, 300.0, 30, 300, [])])
    try:
        with c.engine.begin() as conn:
            conn.execute(insert(Visit), [
                {"patient_id": 1, "at": NOW - timedelta(days=k), "kind": "visit",
                 "summary": f"visit number {k:03d}", "by_user": "rn"} for k in range(260)])
        from openitb.clinic import accounts

        with c.uow(SYSTEM, NOW) as u:
            accounts.create_user(u, "nurse.t", "Nurse", "nurse", "a-password-123")
        client = TestClient(create_app(c, demo=True))
        login(client, "nurse.t", "a-password-123")
        html = client.get("/patients/1").text
        shown = re.findall(r"visit number (\d{3})", html)
        assert shown == [f"{k:03d}" for k in range(queries.TIMELINE_PAGE)]
        seen = set(shown)
        url = "/patients/1"
        for _ in range(10):  # follow "Show older entries" to the end
            more = re.search(r'id="timeline-more" href="([^"]+)"', html)
            if more is None:
                break
            url = more.group(1).replace("&amp;", "&")
            html = client.get(url).text
            seen |= set(re.findall(r"visit number (\d{3})", html))
        assert seen == {f"{k:03d}" for k in range(260)}  # the oldest too (beyond 200)
        assert 'id="timeline-more"' not in html
        for bad in ("0", "-1", "abc", "10001", "1e3", "9" * 40):
            r = client.get(f"/patients/1?timeline={bad}")
            assert r.status_code == 422 and "timeline" in r.text.lower(), bad
    finally:
        c.engine.dispose()
