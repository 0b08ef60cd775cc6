"""The clinic reaches pumps only through the gateway it was built with, one session per use
case: a review only reads (one read_status, nothing stored, the pump row's version unchanged),
a confirm reads, writes and reads back in ONE session (it used to take 7 sessions and 11
commands for a refill)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from openitb.clinic import queries, services
from openitb.clinic.facade import Clinic
from openitb.clinic.pumps import ControllerGateway
from openitb.clinic.review_binding import CHANGED
from openitb.errors import RefusedOperation
from openitb.store.models import Pump

from .test_services import DR, RN, T0, implanted, reviewed


@pytest.fixture
def direct(empty_clinic: Clinic) -> ControllerGateway:
    gw = ControllerGateway()
    empty_clinic.gateway = gw
    return gw


def _pump(c: Clinic, pid: int) -> Pump:
    with c.uow(DR) as u:
        pump: Pump = queries.patient_record(u, pid)["pump"]
        u.session.expunge(pump)
    return pump


def test_each_use_case_is_one_session(empty_clinic: Clinic, direct: ControllerGateway) -> None:
    c = empty_clinic
    pid = implanted(c)
    assert direct.counters.sessions == 2  # implant: review, confirm
    with c.uow(RN) as u:
        services.move_clock(u, T0 + timedelta(days=10))  # time passes: no session
    assert direct.counters.sessions == 2
    same = {"withdrawn_ml": 14, "volume_ml": 20, "concentration": 500, "confirmed": True}
    n, k = direct.counters.sessions, len(direct.counters.commands)
    with c.uow(DR) as u:
        review = services.refill_review(u, pid, same)
    assert direct.counters.sessions == n + 1
    assert direct.counters.commands[k:] == ["read_status"]
    k = len(direct.counters.commands)
    with c.uow(DR) as u:
        services.refill(u, pid, {**same, "review_token": review.token,
                                 "override_reason": "withdrew less: dead space of the set"
                                 if review.needs_override else None})
    assert direct.counters.sessions == n + 2
    # read (the review rebuilt), refill, read back
    assert direct.counters.commands[k:] == ["read_status", "refill", "read_status"]
    k = len(direct.counters.commands)
    with c.uow(RN) as u:
        reviewed(services.program, u, pid, {"dose_per_day": 320, "confirmed": True})
    assert direct.counters.commands[k:] == ["read_status", "read_status", "program",
                                            "read_status"]
    assert direct.counters.sessions == n + 4
    k = len(direct.counters.commands)
    with c.uow(DR) as u:
        services.record_mri(u, pid, {"minutes": 30})
    assert direct.counters.commands[k:] == []  # an environment event, not a command
    assert direct.counters.sessions == n + 5


def test_reviews_only_read_and_parallel_reviews_bind_to_the_state(
        empty_clinic: Clinic, direct: ControllerGateway) -> None:
    c = empty_clinic
    pid = implanted(c)
    before = _pump(c, pid)
    with c.uow(RN) as u:
        a = services.program_review(u, pid, {"dose_per_day": 320})
    with c.uow(DR) as u:
        b = services.program_review(u, pid, {"dose_per_day": 280})
    with c.uow(RN) as u:
        r = services.refill_review(u, pid, {"withdrawn_ml": 0, "volume_ml": 20,
                                            "concentration": 500})
    after = _pump(c, pid)
    # Reviews stored no snapshot and did not bump the pump's version.
    assert after.version == before.version and after.state == before.state
    assert after.synced_at == before.synced_at
    # Reviewing again from the same state gives the same token.
    with c.uow(RN) as u:
        assert services.program_review(u, pid, {"dose_per_day": 320}).token == a.token
    # Both parallel reviews were computed from the same state: the first confirm writes...
    with c.uow(RN) as u:
        services.program(u, pid, {"dose_per_day": 320, "confirmed": True,
                                  "review_token": a.token})
    # ... and the second is refused: the pump changed since it was reviewed.
    with pytest.raises(RefusedOperation) as e, c.uow(DR) as u:
        services.program(u, pid, {"dose_per_day": 280, "confirmed": True,
                                  "review_token": b.token})
    assert e.value.code == "conflict" and CHANGED in e.value.reason
    with pytest.raises(RefusedOperation) as e, c.uow(RN) as u:
        services.refill(u, pid, {"withdrawn_ml": 0, "volume_ml": 20, "concentration": 500,
                                 "confirmed": True, "review_token": r.token})
    assert e.value.code == "conflict"
    with c.uow(DR) as u:
        assert queries.patient_record(u, pid)["pump"].dose_per_day == 320
    # Reviewed again, the second confirms in turn.
    with c.uow(DR) as u:
        reviewed(services.program, u, pid, {"dose_per_day": 280, "confirmed": True})
    with c.uow(DR) as u:
        assert queries.patient_record(u, pid)["pump"].dose_per_day == 280


def test_the_same_review_confirmed_twice_is_written_once(
        empty_clinic: Clinic, direct: ControllerGateway) -> None:
    """Two clinicians review the same change from the same state: same token; the first
    confirm writes it, the second is refused (the pump changed), so a change is never written
    twice unseen."""
    c = empty_clinic
    pid = implanted(c)
    with c.uow(RN) as u:
        a = services.program_review(u, pid, {"dose_per_day": 310})
    with c.uow(DR) as u:
        b = services.program_review(u, pid, {"dose_per_day": 310})
    assert a.token == b.token
    with c.uow(RN) as u:
        services.program(u, pid, {"dose_per_day": 310, "confirmed": True,
                                  "review_token": a.token})
    with pytest.raises(RefusedOperation) as e, c.uow(DR) as u:
        services.program(u, pid, {"dose_per_day": 310, "confirmed": True,
                                  "review_token": b.token})
    assert e.value.code == "conflict"
