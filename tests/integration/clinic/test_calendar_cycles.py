"""Refill events keep one UID per refill cycle: a reschedule raises SEQUENCE and a calendar that
re-imports the feed keeps one event; a refill done early cancels the old appointment."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from icalendar import Calendar

from openitb.clinic import services
from openitb.clinic.demo import patient_ids
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import Actor
from openitb.web.app import create_app

from .conftest import login

DOCTOR = Actor("dr.rivera", "physician", 1)


class CalendarStore:
    """What a calendar client keeps: one event per UID, replaced by a revision whose SEQUENCE
    is not lower (RFC 5545, 3.8.7.4)."""

    def __init__(self) -> None:
        self.events: dict[str, Any] = {}

    def load(self, ics: bytes) -> None:
        for ev in Calendar.from_ical(ics).walk("VEVENT"):
            uid = str(ev["uid"])
            old = self.events.get(uid)
            if old is None or int(ev.get("sequence", 0)) >= int(old.get("sequence", 0)):
                self.events[uid] = ev

    def of(self, name: str, *, live: bool = True) -> list[Any]:
        return [e for e in self.events.values() if name in str(e["summary"])
                and (not live or str(e.get("status", "CONFIRMED")) != "CANCELLED")]


def _feed(c: TestClient) -> bytes:
    r = c.get("/api/v1/calendar/refills.ics")
    assert r.status_code == 200
    return r.content


def test_reschedule_keeps_the_uid_and_raises_sequence(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1003"]  # Mia: 300 mcg/day, itb-20 at 500 mcg/mL
    c = TestClient(create_app(demo_clinic, demo=True))
    login(c, "nurse.kim")
    store = CalendarStore()
    store.load(_feed(c))
    [before] = store.of("Mia Lindqvist")
    for dose in (360, 380):  # two changes within the 24 h step: the refill-by date moves twice
        fields = {"mode": "continuous", "dose_per_day": dose, "context": "titration",
                  "confirmed": True}
        with demo_clinic.uow(DOCTOR) as u:  # review, then confirm with the review's token
            token = services.program_review(u, pid, fields).token
            services.program(u, pid, {**fields, "review_token": token})
        store.load(_feed(c))
    [after] = store.of("Mia Lindqvist")
    assert str(after["uid"]) == str(before["uid"])
    assert "2026" not in str(after["uid"])  # the date is not part of it
    assert int(after["sequence"]) == int(before["sequence"]) + 2
    assert after.decoded("dtstart") < before.decoded("dtstart")  # more drug, sooner refill
    # one appointment remains; anything else held for her is an earlier, cancelled cycle
    assert all(str(e["status"]) == "CANCELLED" for e in store.of("Mia Lindqvist", live=False)
               if str(e["uid"]) != str(after["uid"]))


def test_early_refill_cancels_the_old_appointment(demo_clinic: Clinic) -> None:
    pid = patient_ids(demo_clinic)["ITB-1003"]
    c = TestClient(create_app(demo_clinic, demo=True))
    login(c, "nurse.kim")
    store = CalendarStore()
    store.load(_feed(c))
    [booked] = store.of("Mia Lindqvist")
    with demo_clinic.uow(DOCTOR) as u:
        first = services.refill_review(u, pid, {"withdrawn_ml": 0, "volume_ml": 20,
                                                "concentration": 500})
        fields = {"withdrawn_ml": round(first.fact("discrepancy")["expected_ml"], 2),
                  "volume_ml": 20, "concentration": 500, "confirmed": True}
        token = services.refill_review(u, pid, fields).token
        services.refill(u, pid, {**fields, "review_token": token})
    store.load(_feed(c))
    old = store.events[str(booked["uid"])]
    assert str(old["status"]) == "CANCELLED"
    assert int(old["sequence"]) == int(booked["sequence"]) + 1
    [live] = store.of("Mia Lindqvist")
    assert str(live["uid"]) != str(booked["uid"]) and str(live["status"]) == "CONFIRMED"
    # the feed says the same each time it is built (nothing is counted at read time)
    assert _feed(c).replace(b"\r\n ", b"").split(b"DTSTAMP")[0] == \
        _feed(c).replace(b"\r\n ", b"").split(b"DTSTAMP")[0]
