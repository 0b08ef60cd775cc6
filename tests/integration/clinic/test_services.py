"""Service layer against a real SQLite database: the therapy from candidate to refill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from openitb.clinic import accounts, queries, services
from openitb.clinic.clock import clinic_now, set_demo_clock
from openitb.clinic.demo import patient_ids
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import SYSTEM, Actor, Conflict, Forbidden
from openitb.errors import InvalidInput, RefusedOperation
from openitb.store.models import Alarm, AuditEntry, Patient, Pump, Refill, Setting

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DR = Actor("dr.test", "physician", 1)
RN = Actor("nurse.test", "nurse", 2)
REVIEWS = {"implant": services.implant_review, "program": services.program_review,
           "refill": services.refill_review, "replace_pump": services.replacement_review}


def reviewed(use_case: Any, u: Any, patient_id: object, fields: dict[str, Any]) -> Any:
    """Review, then confirm with the review's token (what a clinician does on the pages)."""
    token = REVIEWS[use_case.__name__](u, patient_id, fields).token
    return use_case(u, patient_id, {**fields, "review_token": token})
PATIENT_FIELDS = {"mrn": "T-1", "name": "Test Patient", "birth_date": "1980-05-05",
                  "origin": "spinal", "weight_kg": "70", "injury_level": "T4"}
RESPONDER = [{"dose_mcg": 50, "effect_hours": 6,
              "mas_before": {"hip_adductors": 3, "knee_extensors": 3},
              "mas_after": {"hip_adductors": 1.5, "knee_extensors": 2}}]
IMPLANT = {"profile": "itb-20", "serial": "SN-T1", "catheter_length_cm": 90, "tip_level": "T10",
           "volume_ml": 20, "concentration": 500, "dose_per_day": 300, "confirmed": True}


def implanted(clinic: Clinic) -> int:
    with clinic.uow(SYSTEM, T0) as u:
        set_demo_clock(u.session, T0)
    with clinic.uow(RN) as u:
        pid = services.register_patient(u, PATIENT_FIELDS).id
    with clinic.uow(DR) as u:
        services.record_screening(u, pid, RESPONDER)
    with clinic.uow(DR) as u:
        reviewed(services.implant, u, pid, IMPLANT)
    return pid


def test_register_validates_and_flags_withdrawal_risk(empty_clinic: Clinic) -> None:
    with empty_clinic.uow(RN, T0) as u:
        p = services.register_patient(u, PATIENT_FIELDS)
        assert p.risk_high_injury  # T4 is at or above T6
        assert p.stage == "candidate" and p.version == 1
    bad = {**PATIENT_FIELDS, "mrn": "T-2", "weight_kg": "700"}
    with pytest.raises(InvalidInput) as e, empty_clinic.uow(RN, T0) as u:
        services.register_patient(u, bad)
    assert e.value.field == "weight_kg" and "5 to 300" in e.value.allowed
    with pytest.raises(InvalidInput) as e, empty_clinic.uow(RN, T0) as u:
        services.register_patient(u, {**PATIENT_FIELDS, "mrn": "T-3", "origin": "cardiac"})
    assert e.value.field == "origin"
    with pytest.raises(RefusedOperation) as r, empty_clinic.uow(RN, T0) as u:
        services.register_patient(u, PATIENT_FIELDS)
    assert r.value.code == "conflict"


def test_screening_implant_program_refill(empty_clinic: Clinic) -> None:
    c = empty_clinic
    pid = implanted(c)
    with c.uow(DR) as u:
        rec = queries.patient_record(u, pid)
        pump = rec["pump"]
        assert rec["patient"].stage == "implanted"
        assert rec["screenings"][0].first_dose_per_day == 100  # 2 x 50 mcg
        assert pump.dose_per_day == 300 and pump.concentration == 500
        assert pump.refill_by is not None and pump.low_alarm_at is not None
        # 18 mL to the alarm at 0.6 mL/day = 30 days (less the priming); refill 5 days before
        assert 24 <= (pump.refill_by - T0).days <= 25
    # Nurse within bounds: fine.
    with c.uow(RN) as u:
        row = reviewed(services.program, u, pid, {"dose_per_day": 330, "context": "maintenance",
                                        "confirmed": True})
        assert row.classification == "within"
    # Unconfirmed: refused, nothing written.
    with pytest.raises(RefusedOperation) as r, c.uow(RN) as u:
        reviewed(services.program, u, pid, {"dose_per_day": 340, "context": "maintenance"})
    assert r.value.code == "unconfirmed"
    # Above recommended: a nurse may not, a physician needs a reason.
    over = {"dose_per_day": 495, "context": "maintenance", "confirmed": True}
    with pytest.raises(RefusedOperation) as r, c.uow(RN) as u:
        reviewed(services.program, u, pid, over)
    assert r.value.code == "forbidden" and "who may: physician" in r.value.reason
    with pytest.raises(RefusedOperation) as r, c.uow(DR) as u:
        reviewed(services.program, u, pid, over)
    assert r.value.code == "override_required"
    with c.uow(DR) as u:
        row = reviewed(services.program, u, pid, {**over, "override_reason": "spasms wake him nightly"})
        assert row.classification == "above_recommended"
        assert row.override_reason == "spasms wake him nightly"
    # Beyond absolute: nobody.
    with pytest.raises(RefusedOperation) as r, c.uow(DR) as u:
        reviewed(services.program, u, pid, {"dose_per_day": 2000, "context": "maintenance",
                                  "confirmed": True, "override_reason": "try it anyway"})
    assert r.value.code == "guardrail_absolute"
    # Ten days on, refill with a concentration change: bridge bolus, new refill-by.
    with c.uow(RN) as u:
        services.move_clock(u, T0 + timedelta(days=10))
    with c.uow(RN) as u:
        review = services.refill_review(u, pid, {"withdrawn_ml": 0, "volume_ml": 20,
                                                 "concentration": 1000})
        expected = review.fact("discrepancy")["expected_ml"]
        assert review.bridge is not None and review.bridge.given
        assert review.bridge.volume_ml == pytest.approx(0.14 + 0.0026 * 90)
    with c.uow(RN) as u:
        reviewed(services.refill, u, pid, {"withdrawn_ml": round(expected - 0.1, 2), "volume_ml": 20,
                                 "concentration": 1000, "confirmed": True})
    with c.uow(RN) as u:
        refill = u.session.scalars(select(Refill)).one()
        assert refill.bridge is not None and refill.concentration == 1000
        assert not refill.flagged
        pump = u.session.scalars(select(Pump)).one()
        assert pump.concentration == 1000
        assert pump.refill_by is not None and pump.refill_by > T0 + timedelta(days=40)


def test_flagged_discrepancy_needs_the_programmers_override(empty_clinic: Clinic) -> None:
    """The clinic used to take a 5-character note; the rule is the programmer's: a flagged
    discrepancy is beyond the recommended bounds, so an override reason from a role that may
    override (a physician)."""
    pid = implanted(empty_clinic)
    with empty_clinic.uow(RN) as u:
        services.move_clock(u, T0 + timedelta(days=5))
    fields = {"withdrawn_ml": 5, "volume_ml": 20, "concentration": 500, "confirmed": True,
              "note": "suspect pocket fill last time"}
    with pytest.raises(RefusedOperation) as e, empty_clinic.uow(RN) as u:
        reviewed(services.refill, u, pid, fields)
    assert e.value.code == "forbidden"
    with pytest.raises(RefusedOperation) as e, empty_clinic.uow(DR) as u:
        reviewed(services.refill, u, pid, fields)
    assert e.value.code == "override_required"
    with empty_clinic.uow(DR) as u:
        row = reviewed(services.refill, u, pid, {**fields, "override_reason": "pocket fill "
                                                 "suspected; aspirated and checked"})
        assert row.flagged and row.discrepancy_ml < -1
        assert "override: pocket fill" in row.note


def test_clock_raises_alarms_into_the_inbox_and_acknowledge(empty_clinic: Clinic) -> None:
    c = empty_clinic
    pid = implanted(c)
    with c.uow(RN) as u:
        services.advance_clock(u, {"step": "next_alarm"})
    with c.uow(RN) as u:
        alarms = queries.alarm_inbox(u)
        assert [a.kind for a, _ in alarms] == ["low_reservoir"]
        items = queries.dashboard(u)
        assert items[0].kind in ("alarm", "overdue")
        alarm_id = alarms[0][0].id
    with pytest.raises(InvalidInput), c.uow(RN) as u:
        services.acknowledge_alarm(u, alarm_id, "")
    with c.uow(RN) as u:
        services.acknowledge_alarm(u, alarm_id, "refill booked for tomorrow")
    with c.uow(RN) as u:
        a = u.session.get(Alarm, alarm_id)
        assert a is not None and a.acknowledged_by == "nurse.test"
        assert queries.alarm_inbox(u) == []
        assert pid


def test_mri_and_post_mri_check(empty_clinic: Clinic) -> None:
    c = empty_clinic
    pid = implanted(c)
    with c.uow(RN) as u:
        mri = services.record_mri(u, pid, {"minutes": 40})
    with c.uow(RN) as u:
        assert any(a.kind == "motor_stall" and a.critical for a, _ in queries.alarm_inbox(u))
        row = services.post_mri_check(u, mri.id)
        assert "not infusing" in (row.check_result or "")
    with c.uow(RN) as u:
        services.move_clock(u, T0 + timedelta(days=2))
    with c.uow(RN) as u:
        row = services.post_mri_check(u, mri.id)
        assert row.check_result and row.check_result.startswith("infusing again")


def test_replacement_planning(empty_clinic: Clinic) -> None:
    pid = implanted(empty_clinic)
    with pytest.raises(InvalidInput) as e, empty_clinic.uow(DR) as u:
        services.plan_replacement(u, pid, {"planned_date": "2020-01-01"})
    assert e.value.field == "planned_date"
    with pytest.raises(Forbidden), empty_clinic.uow(RN) as u:
        services.plan_replacement(u, pid, {"planned_date": "2027-01-01"})
    with empty_clinic.uow(DR) as u:
        v = services.plan_replacement(u, pid, {"planned_date": "2027-01-01"})
        assert "2027-01-01" in v.summary


def test_optimistic_lock_conflict(empty_clinic: Clinic) -> None:
    c = empty_clinic
    with c.uow(RN, T0) as u:
        pid = services.register_patient(u, PATIENT_FIELDS).id
    # A stale version from the form: refused with a clear message.
    with c.uow(RN, T0) as u:
        services.update_patient(u, pid, 1, {"weight_kg": 72})
    with pytest.raises(Conflict) as e, c.uow(DR, T0) as u:
        services.update_patient(u, pid, 1, {"weight_kg": 90})
    assert "changed by someone else" in e.value.reason
    # Two edits in flight at once: the second to commit loses, nothing is overwritten.
    a = c.uow(RN, T0)
    b = c.uow(DR, T0)
    services.update_patient(a, pid, 2, {"weight_kg": 73})
    pb = b.session.get(Patient, pid)
    assert pb is not None and pb.version == 2  # B read version 2 before A commits
    a.__exit__(None, None, None)
    pb.emergency_contact = "someone"
    with pytest.raises(Conflict):
        b.__exit__(None, None, None)
    with c.uow(RN, T0) as u:
        p = u.session.get(Patient, pid)
        assert p is not None and p.weight_kg == 73 and p.emergency_contact == "" and p.version == 3


def test_audit_trail_before_after_refusals_and_append_only(empty_clinic: Clinic) -> None:
    c = empty_clinic
    with c.uow(RN, T0) as u:
        pid = services.register_patient(u, PATIENT_FIELDS).id
    with c.uow(RN, T0) as u:
        services.update_patient(u, pid, 1, {"weight_kg": 71.5})
    with pytest.raises(Forbidden), c.uow(RN, T0) as u:
        services.record_screening(u, pid, RESPONDER)
    with c.uow(SYSTEM, T0) as u:
        trail = list(u.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    edit = next(e for e in trail if e.action == "update_patient")
    assert edit.actor == "nurse.test" and edit.at == T0
    assert edit.before is not None and edit.after is not None
    assert edit.before["weight_kg"] == 70 and edit.after["weight_kg"] == 71.5
    refusal = trail[-1]
    assert refusal.outcome == "refused" and refusal.actor == "nurse.test"
    assert refusal.after is not None and refusal.after["code"] == "forbidden"
    # Append-only in the database itself.
    for stmt in ("UPDATE audit_trail SET actor = 'x'", "DELETE FROM audit_trail"):
        with pytest.raises(DatabaseError), c.engine.begin() as conn:
            conn.execute(text(stmt))
    with pytest.raises(Forbidden), c.uow(Actor("p", "patient", 9, 999), T0) as u:
        queries.patient_record(u, pid)


def test_accounts_hash_and_authenticate(empty_clinic: Clinic) -> None:
    with empty_clinic.uow(SYSTEM, T0) as u:
        user = accounts.create_user(u, "Nurse.A", "Nurse A", "nurse", "long-enough-pw")
        assert user.password_hash.startswith("$argon2")
    with empty_clinic.uow(SYSTEM, T0) as u:
        actor = accounts.authenticate(u, "nurse.a", "long-enough-pw")
        assert actor.role == "nurse"
    with pytest.raises(RefusedOperation), empty_clinic.uow(SYSTEM, T0) as u:
        accounts.authenticate(u, "nurse.a", "wrong")
    with pytest.raises(InvalidInput) as e, empty_clinic.uow(SYSTEM, T0) as u:
        accounts.create_user(u, "x", "x", "nurse", "short")
    assert e.value.field == "password"
    with empty_clinic.uow(SYSTEM, T0) as u:
        refused = u.session.scalars(select(AuditEntry).where(AuditEntry.outcome == "refused")
                                    .where(AuditEntry.action == "login")).all()
        assert len(refused) == 1


def test_demo_clinic_dashboard(demo_clinic: Clinic) -> None:
    with demo_clinic.uow(RN) as u:
        assert clinic_now(u.session).year == 2026
        kinds = {i.kind for i in queries.dashboard(u)}
        assert {"overdue", "refill_due", "alarm", "eri"} <= kinds
        items = queries.dashboard(u)
        assert [i.urgency for i in items] == sorted(i.urgency for i in items)
        stages = {r["stage"] for r in queries.patient_list(u)}
        assert {"candidate", "screening", "screened", "not_candidate", "implanted"} <= stages
        assert len(queries.patient_list(u)) == 12
    assert "ITB-1003" in patient_ids(demo_clinic)


def test_concurrent_pump_operations_conflict(empty_clinic: Clinic) -> None:
    """Two programs of the same pump in flight: the second to commit is refused."""
    c = empty_clinic
    pid = implanted(c)
    a, b = c.uow(RN), c.uow(DR)
    reviewed(services.program, a, pid, {"dose_per_day": 310, "confirmed": True})
    pump_b = b.session.scalars(select(Pump)).one()
    a.__exit__(None, None, None)
    pump_b.reservoir_ml = 1.0
    with pytest.raises(Conflict):
        b.__exit__(None, None, None)
    with c.uow(RN) as u:
        pump = u.session.scalars(select(Pump)).one()
        assert pump.dose_per_day == 310 and pump.reservoir_ml > 10


def test_flex_program_and_the_per_hour_mistake(empty_clinic: Clinic) -> None:
    pid = implanted(empty_clinic)
    with empty_clinic.uow(DR) as u:
        review = services.program_review(u, pid, {"mode": "flex", "context": "maintenance",
                                                  "steps": "00:00 330\n06:00 300\n22:00 330"})
        written = services.parse_prescription(dict(review.commands)["program"]["prescription"])
        assert written.daily_dose().value == pytest.approx(310)
        assert review.classification.value == "within"
    # A morning dose typed per hour in every step: 60 mcg/h is 1440 mcg/day: refused even
    # for a physician with a reason (beyond the absolute step from 300 mcg/day).
    with pytest.raises(RefusedOperation) as r, empty_clinic.uow(DR) as u:
        reviewed(services.program, u, pid, {"mode": "flex", "steps": "06:00 1440\n07:00 1440",
                                  "confirmed": True, "override_reason": "morning dose"})
    assert r.value.code == "guardrail_absolute" and "1440 mcg/day" in r.value.reason
    with pytest.raises(InvalidInput) as e, empty_clinic.uow(DR) as u:
        services.program_review(u, pid, {"mode": "flex", "steps": "six 100"})
    assert e.value.field.startswith("steps")


def test_timeline_has_visits_and_alarms(empty_clinic: Clinic) -> None:
    pid = implanted(empty_clinic)
    with empty_clinic.uow(RN) as u:
        services.advance_clock(u, {"step": "next_alarm"})
    with empty_clinic.uow(RN) as u:
        kinds = [e.kind for e in queries.patient_record(u, pid)["timeline"]]
        assert kinds[0] == "alarm raised" and "implant" in kinds and "registration" in kinds


@pytest.mark.parametrize("seed", [1, 2])
def test_a_year_of_dashboard_driven_refills_never_runs_dry(empty_clinic: Clinic,
                                                          seed: int) -> None:
    """A nurse who refills whatever the dashboard lists as due: over a year, with random dose
    changes and concentration switches, no pump runs empty and every refill books a later date."""
    import random

    rng = random.Random(seed)
    c = empty_clinic
    pid = implanted(c)
    concentrations = [500.0, 1000.0, 2000.0]
    refills = 0
    for _week in range(52):
        with c.uow(RN) as u:
            services.advance_clock(u, {"step": "week"})
        with c.uow(RN) as u:
            due = [i for i in queries.dashboard(u)
                   if i.kind in ("refill_due", "overdue") and i.patient_id == pid]
        if due:
            conc = rng.choice(concentrations)
            with c.uow(RN) as u:
                review = services.refill_review(u, pid, {"withdrawn_ml": 0, "volume_ml": 20,
                                                         "concentration": conc})
                withdrawn = max(0.0, round(review.fact("discrepancy")["expected_ml"] - 0.1, 2))
                fields = {"withdrawn_ml": withdrawn, "volume_ml": 20, "concentration": conc,
                          "confirmed": True}
                review = services.refill_review(u, pid, fields)
            # An unbridged rest beyond the recommended share: a physician's override.
            who, why = (DR, {"override_reason": "rest of the path clears at the new flow"}) \
                if review.needs_override else (RN, {})
            with c.uow(who) as u:
                reviewed(services.refill, u, pid, {**fields, **why})
                pump = u.session.scalars(select(Pump)).one()
                assert pump.refill_by is not None and pump.refill_by > u.now
            refills += 1
        if rng.random() < 0.2:
            with c.uow(DR) as u:
                pump = u.session.scalars(select(Pump)).one()
                dose = round(pump.dose_per_day * rng.uniform(0.9, 1.1))
                reviewed(services.program, u, pid, {"dose_per_day": dose, "confirmed": True,
                                          "override_reason": "randomised test change"})
    with c.uow(RN) as u:
        kinds = {a.kind for a in u.session.scalars(select(Alarm))}
        assert "empty_reservoir" not in kinds
        assert refills >= 4
        n_ok = u.session.scalar(select(func.count()).select_from(AuditEntry)
                                .where(AuditEntry.action == "refill"))
        assert n_ok == refills


def test_replace_pump_keeps_the_program(empty_clinic: Clinic) -> None:
    c = empty_clinic
    pid = implanted(c)
    with c.uow(RN) as u:
        services.move_clock(u, T0 + timedelta(days=40))  # low reservoir by now: alarms open
    fields = {"profile": "itb-40", "serial": "SN-T2", "volume_ml": 40, "confirmed": True}
    with pytest.raises(Forbidden), c.uow(RN) as u:
        reviewed(services.replace_pump, u, pid, fields)
    with pytest.raises(InvalidInput) as e, c.uow(DR) as u:
        reviewed(services.replace_pump, u, pid, {**fields, "concentration": 2000})
    assert e.value.field == "concentration" and "retained catheter" in e.value.allowed
    with c.uow(DR) as u:
        new = reviewed(services.replace_pump, u, pid, fields)
        assert new.profile == "itb-40" and new.catheter_length_cm == 90
    with c.uow(DR) as u:
        pumps = list(u.session.scalars(select(Pump).order_by(Pump.id)))
        assert [p.active for p in pumps] == [False, True]
        assert pumps[0].explanted_at is not None and pumps[0].refill_by is None
        assert pumps[1].dose_per_day == 300 and pumps[1].concentration == 500
        assert pumps[1].refill_by is not None and pumps[1].refill_by > u.now
        assert queries.alarm_inbox(u) == []  # the old pump's alarms closed with it
        rec = queries.patient_record(u, pid)
        assert rec["pump"].serial == "SN-T2"
        assert any(v.kind == "replacement" and "catheter retained" in v.summary
                   for v in rec["visits"])


def test_dashboard_pages_match_the_whole_list(demo_clinic: Clinic) -> None:
    with demo_clinic.uow(RN) as u:
        whole = queries.dashboard(u)
        assert [i.urgency for i in whole] == sorted(i.urgency for i in whole)
        for size in (1, 2, 3, 5):
            pages = []
            offset = 0
            while True:
                page, total = queries.dashboard_page(u, offset, size)
                assert total == len(whole)
                if not page:
                    break
                pages += page
                offset += size
            assert pages == whole


def test_wall_clock_sync_brings_alarms_to_the_inbox(empty_clinic: Clinic) -> None:
    c = empty_clinic
    pid = implanted(c)  # demo clock at T0; now pretend the wall clock reached day 40
    with c.uow(SYSTEM, T0 + timedelta(days=40)) as u:
        assert services.sync_all_pumps(u) >= 1
    with c.uow(RN, T0 + timedelta(days=40)) as u:
        kinds = {a.kind for a, _ in queries.alarm_inbox(u)}
        assert "low_reservoir" in kinds
        assert queries.patient_record(u, pid)["pump"].synced_at == T0 + timedelta(days=40)
    with pytest.raises(Forbidden), c.uow(Actor("p", "patient", 5, pid)) as u:
        services.sync_all_pumps(u)


def test_server_syncs_pumps_in_the_background(empty_clinic: Clinic) -> None:
    import time

    from fastapi.testclient import TestClient

    from openitb.web.app import create_app

    implanted(empty_clinic)
    with empty_clinic.uow(SYSTEM) as u:  # leave demo mode: the wall clock is years later
        u.session.merge(Setting(key="clock_mode", value="wall"))
    with TestClient(create_app(empty_clinic, demo=False, sync_every_s=0.05)):
        deadline = time.time() + 10
        while time.time() < deadline:
            with empty_clinic.uow(SYSTEM) as u:
                if u.session.scalar(select(func.count()).select_from(Alarm)):
                    break
            time.sleep(0.05)
    with empty_clinic.uow(SYSTEM) as u:
        assert u.session.scalar(select(func.count()).select_from(Alarm))
