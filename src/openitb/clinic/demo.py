"""A demo clinic: a dozen patients at different stages of therapy, built by replaying their
history through the use cases on the demo clock, so every number on screen is computed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from openitb.clinic import accounts, services
from openitb.clinic.clock import set_demo_clock
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import SYSTEM, Actor, UnitOfWork
from openitb.store.models import Patient, User

DEMO_PASSWORD = "openitb-demo"
TODAY = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    password: str
    who: str


def _responder(dose: float = 50) -> list[dict[str, Any]]:
    doses = []
    for d in (50, 75, 100):
        hit = d >= dose
        doses.append({"dose_mcg": d, "effect_hours": 6 if hit else 0,
                      "mas_before": {"hip_adductors": 3, "knee_extensors": 3},
                      "mas_after": {"hip_adductors": 1.5, "knee_extensors": 2} if hit
                      else {"hip_adductors": 3, "knee_extensors": 3}})
        if hit:
            break
    return doses


PATIENTS: list[dict[str, Any]] = [
    # key, fields
    {"key": "weber", "mrn": "ITB-1001", "name": "Helmut Weber", "birth_date": "1961-04-02",
     "origin": "spinal", "diagnosis": "traumatic spinal cord injury", "weight_kg": 82,
     "injury_level": "T8", "emergency_contact": "Greta Weber (wife) +49 30 1234567"},
    {"key": "okafor", "mrn": "ITB-1002", "name": "Chidi Okafor", "birth_date": "1978-09-15",
     "origin": "spinal", "diagnosis": "spinal cord injury", "weight_kg": 75, "injury_level": "T4",
     "risk_communication": False, "emergency_contact": "Ngozi Okafor +44 20 7946 0011"},
    {"key": "lindqvist", "mrn": "ITB-1003", "name": "Mia Lindqvist", "birth_date": "1990-01-20",
     "origin": "spinal", "diagnosis": "multiple sclerosis", "weight_kg": 61,
     "emergency_contact": "Erik Lindqvist +46 8 123 456"},
    {"key": "tanaka", "mrn": "ITB-1004", "name": "Hiro Tanaka", "birth_date": "1985-06-30",
     "origin": "spinal", "diagnosis": "spinal cord injury", "weight_kg": 70, "injury_level": "C6",
     "risk_prior_withdrawal": True, "emergency_contact": "Aiko Tanaka +81 3 1234 5678"},
    {"key": "garcia", "mrn": "ITB-1005", "name": "Lucia Garcia", "birth_date": "1972-11-11",
     "origin": "spinal", "diagnosis": "multiple sclerosis", "weight_kg": 66,
     "emergency_contact": "Pablo Garcia +34 91 123 4567"},
    {"key": "moreau", "mrn": "ITB-1006", "name": "Leo Moreau", "birth_date": "1988-03-08",
     "origin": "cerebral", "diagnosis": "traumatic brain injury", "weight_kg": 79,
     "risk_communication": True, "emergency_contact": "Claire Moreau +33 1 23 45 67 89"},
    {"key": "novak", "mrn": "ITB-1007", "name": "Petra Novak", "birth_date": "1995-07-19",
     "origin": "cerebral", "diagnosis": "cerebral palsy", "weight_kg": 54,
     "emergency_contact": "Jan Novak +420 2 1234 5678"},
    {"key": "kowalski", "mrn": "ITB-1008", "name": "Tomasz Kowalski", "birth_date": "1969-12-01",
     "origin": "spinal", "diagnosis": "spinal cord injury", "weight_kg": 88, "injury_level": "T11",
     "emergency_contact": "Anna Kowalska +48 22 123 4567"},
    {"key": "evans", "mrn": "ITB-1009", "name": "Sam Evans", "birth_date": "2016-05-05",
     "origin": "cerebral", "diagnosis": "cerebral palsy (child)", "weight_kg": 28,
     "emergency_contact": "Rhian Evans (mother) +44 29 2000 0000"},
    {"key": "rossi", "mrn": "ITB-1010", "name": "Giulia Rossi", "birth_date": "1980-02-14",
     "origin": "spinal", "diagnosis": "hereditary spastic paraplegia", "weight_kg": 58},
    {"key": "haddad", "mrn": "ITB-1011", "name": "Omar Haddad", "birth_date": "1975-08-23",
     "origin": "cerebral", "diagnosis": "stroke", "weight_kg": 84},
    {"key": "brown", "mrn": "ITB-1012", "name": "Ruth Brown", "birth_date": "1958-10-10",
     "origin": "spinal", "diagnosis": "multiple sclerosis", "weight_kg": 71},
]


def seed_demo(clinic: Clinic, today: datetime = TODAY) -> list[DemoLogin]:
    """Seed once (refuses if there are users already); returns the demo logins."""
    with clinic.uow(SYSTEM, today) as u:
        if u.session.scalar(select(func.count()).select_from(User)):
            raise RuntimeError("the database already has accounts: not seeding a demo over it")
    ids: dict[str, int] = {}
    t0 = today - timedelta(days=round(6.6 * 365))
    with clinic.uow(SYSTEM, t0) as u:
        set_demo_clock(u.session, t0)
        doc = accounts.create_user(u, "dr.rivera", "Dr. Ana Rivera (physiatrist)", "physician",
                                   DEMO_PASSWORD)
        nurse = accounts.create_user(u, "nurse.kim", "Nurse Jae Kim", "nurse", DEMO_PASSWORD)
        accounts.create_user(u, "admin", "Clinic administrator", "admin", DEMO_PASSWORD)
        u.session.flush()
        dr = Actor(doc.username, "physician", doc.id)
        rn = Actor(nurse.username, "nurse", nurse.id)

    events: list[tuple[datetime, int, Callable[[UnitOfWork], Any], Actor]] = []

    def at(when: datetime, fn: Callable[[UnitOfWork], Any], actor: Actor = dr) -> None:
        events.append((when, len(events), fn, actor))

    def register(key: str, when: datetime) -> None:
        fields = next(p for p in PATIENTS if p["key"] == key)

        def go(u: UnitOfWork) -> None:
            ids[key] = services.register_patient(u, fields).id
        at(when, go, rn)

    def implant(key: str, when: datetime, profile: str, volume: float, conc: float, dose: float,
                length: float = 90, tip: str = "T10") -> None:
        register(key, when - timedelta(days=21))
        at(when - timedelta(days=14), lambda u: services.set_checklist(u, ids[key], {
            "screening_response": False, "body_size": True, "no_infection": True,
            "no_allergy": True, "interferes_with_function": True}))
        at(when - timedelta(days=7),
           lambda u: services.record_screening(u, ids[key], _responder()))
        def go(u: UnitOfWork) -> None:
            fields = {"profile": profile, "serial": f"SN-{ids[key]:04d}-{when:%y%m}",
                      "catheter_length_cm": length, "tip_level": tip, "volume_ml": volume,
                      "concentration": conc, "dose_per_day": dose}
            review = services.implant_review(u, ids[key], fields)
            services.implant(u, ids[key], {**fields, "confirmed": True,
                                           "review_token": review.token})
        at(when, go)

    def refill(key: str, when: datetime, volume: float, conc: float, actor: Actor = rn) -> None:
        def go(u: UnitOfWork) -> None:
            review = services.refill_review(u, ids[key], {
                "withdrawn_ml": 0, "volume_ml": volume, "concentration": conc})
            expected = review.fact("discrepancy")["expected_ml"]
            fields = {"withdrawn_ml": max(0.0, round(expected - 0.2, 1)), "volume_ml": volume,
                      "concentration": conc}
            review = services.refill_review(u, ids[key], fields)
            services.refill(u, ids[key], {**fields, "confirmed": True,
                                          "review_token": review.token})
        at(when, go, actor)

    def course(key: str, implanted: datetime, last_refill: datetime, every_days: int,
               profile: str, volume: float, conc: float, dose: float, **kw: Any) -> None:
        """Implant, then refill every ``every_days`` up to the last refill (at ``last_refill``)."""
        implant(key, implanted, profile, volume, conc, dose, **kw)
        t = last_refill
        refills = []
        while t - implanted >= timedelta(days=every_days / 2):
            refills.append(t)
            t -= timedelta(days=every_days)
        for when in reversed(refills):
            refill(key, when, volume, conc)

    d = timedelta(days=1)
    # Weber: implanted 6.6 years ago, refilled every 150 days: his pump nears ERI.
    course("weber", t0 + 21 * d, today - 70 * d, 150, "itb-40", 40, 2000, 250, length=100,
           tip="T9")
    course("okafor", today - 120 * d, today - 32 * d, 22, "itb-20", 20, 500, 300, tip="T8")
    course("lindqvist", today - 100 * d, today - 22 * d, 22, "itb-20", 20, 500, 300)
    course("tanaka", today - 90 * d, today - 25 * d, 22, "itb-40", 40, 500, 600, tip="T6")
    course("garcia", today - 80 * d, today - 5 * d, 22, "itb-20", 20, 500, 300)
    course("evans", today - 70 * d, today - 45 * d, 40, "itb-20", 20, 500, 150, length=60,
           tip="T9")
    course("kowalski", today - 60 * d, today - 15 * d, 22, "itb-20", 20, 500, 300)
    implant("moreau", today - 3 * d, "itb-20", 20, 500, 100)  # titrating (cerebral origin)
    register("novak", today - 20 * d)                         # candidate
    register("rossi", today - 10 * d)                         # screening in progress
    at(today - 2 * d, lambda u: services.record_screening(u, ids["rossi"], [
        {"dose_mcg": 50, "effect_hours": 0, "mas_before": {"knee_extensors": 3},
         "mas_after": {"knee_extensors": 3}}]))
    register("haddad", today - 30 * d)                        # screened, awaiting implant
    at(today - 9 * d, lambda u: services.record_screening(u, ids["haddad"], _responder(75)))
    register("brown", today - 40 * d)                         # not a candidate
    at(today - 30 * d, lambda u: services.record_screening(u, ids["brown"], _responder(999)))
    at(today - timedelta(hours=2), lambda u: services.record_mri(u, ids["garcia"],
                                                                 {"minutes": 45}), rn)
    at(today, lambda u: None)
    for when, _, fn, actor in sorted(events, key=lambda e: (e[0], e[1])):
        with clinic.uow(actor) as u:
            if when > u.now:
                services.move_clock(u, when)
            fn(u)
    with clinic.uow(SYSTEM, today) as u:
        accounts.create_user(u, "mia", "Mia Lindqvist", "patient", DEMO_PASSWORD,
                             patient_id=ids["lindqvist"])
        accounts.create_user(u, "leo.carer", "Claire Moreau", "patient",
                             DEMO_PASSWORD, patient_id=ids["moreau"])
    return [
        DemoLogin("dr.rivera", "physician", DEMO_PASSWORD, "Dr. Ana Rivera"),
        DemoLogin("nurse.kim", "nurse", DEMO_PASSWORD, "Nurse Jae Kim"),
        DemoLogin("admin", "admin", DEMO_PASSWORD, "administrator"),
        DemoLogin("mia", "patient", DEMO_PASSWORD, "Mia Lindqvist (her own record)"),
        DemoLogin("leo.carer", "patient", DEMO_PASSWORD, "caregiver of Leo Moreau"),
    ]


def patient_ids(clinic: Clinic) -> dict[str, int]:
    with clinic.uow(SYSTEM) as u:
        return {p.mrn: p.id for p in u.session.scalars(select(Patient))}
