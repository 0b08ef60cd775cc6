"""Differential property (issue 11): for random pump states, 24-hour histories and proposals,
the three faces that write to a pump give the same verdict and write the same commands:

* the programmer over the in-process link (signed frames, no socket),
* the clinic's JSON API (review, then confirm with the token), over its telemetry gateway,
* the scenario runner (the kernel's review of an event, then its commands to the controller).

Each face starts from the same controller snapshot; a physician acts everywhere (the runner's
actor), with or without an override reason."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openitb.clinic.accounts import create_user
from openitb.clinic.clock import set_demo_clock
from openitb.clinic.facade import Clinic
from openitb.clinic.telemetry_gateway import TelemetryPumpGateway
from openitb.clinic.uow import SYSTEM
from openitb.errors import OpenITBError
from openitb.programmer.link import PumpLink
from openitb.programmer.record import SessionRecord
from openitb.programmer.workflows import Programmer
from openitb.pump import commands as cmd
from openitb.pump.controller import PumpController
from openitb.pumpservice.service import PumpService
from openitb.pumpservice.transport import InProcessTransport
from openitb.safety import Actor, PatientFacts, Role
from openitb.safety import proposals as sp
from openitb.sim import runner
from openitb.sim.scenario import Event, parse_scenario
from openitb.store.db import make_engine
from openitb.store.models import Patient, Pump
from openitb.telemetry.client import ProgrammerClient
from openitb.telemetry.session import Role as WireRole
from openitb.therapy.prescription import Continuous, Prescription, SingleBolus
from openitb.units import Hours, McgPerDay, McgPerMl, Micrograms, Milliliters

from .conftest import login

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
SECRET = b"differential-secret-of-the-pumps"
PASSWORD = "differential-pass-1234"
REASON = "documented clinical reason for the change"
_serials = itertools.count(1)


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    path: Path = tmp_path_factory.mktemp("diff") / "clinic.db"
    c = Clinic(make_engine(f"sqlite:///{path}"), gateway=TelemetryPumpGateway(SECRET))
    with c.uow(SYSTEM, NOW) as u:
        set_demo_clock(u.session, NOW)
        create_user(u, "dr.diff", "Dr Diff", "physician", PASSWORD)
    yield c
    c.engine.dispose()


def pump_state(d0: float, history: list[tuple[float, float]]) -> dict[str, Any]:
    """A pump filled at 500 mcg/mL, running ``d0`` since two days, then reprogrammed at the
    given (hours ago, factor) points: the snapshot every face starts from."""
    start = NOW - timedelta(hours=48)
    c = PumpController.manufacture("itb-20", start, np.random.default_rng(7),
                                   catheter_volume_nl=round(0.0026 * 90 * 1e6))
    assert c.handle(cmd.Refill(Milliliters(20), McgPerMl(500))).ok
    assert c.handle(cmd.Program(Continuous(McgPerDay(d0)), McgPerMl(500))).ok
    assert c.handle(cmd.Start()).ok
    dose = d0
    for hours_ago, factor in sorted(history, key=lambda h: -h[0]):
        c.advance(NOW - timedelta(hours=hours_ago))
        dose = round(dose * factor, 1)
        assert c.handle(cmd.Program(Continuous(McgPerDay(dose)), McgPerMl(500))).ok
    c.advance(NOW)
    return c.to_dict()


def outcome(commands: list[dict[str, Any]] | None, written: bool, cls: str,
            state: dict[str, Any]) -> dict[str, Any]:
    return {"classification": cls, "written": written,
            "commands": commands if written else None,
            "program": state.get("prescription") if written else None}


def via_programmer(snap: dict[str, Any], rx: Prescription, reason: str | None
                   ) -> dict[str, Any]:
    controller = PumpController.from_dict(copy.deepcopy(snap))
    service = PumpService(controller, lambda: NOW, serial="DIFF")
    keys = TelemetryPumpGateway(SECRET).keys("DIFF")
    client = ProgrammerClient(InProcessTransport(lambda: service.endpoint(keys)),
                              WireRole.CLINICIAN, keys[WireRole.CLINICIAN])
    link = PumpLink(client, SessionRecord("diff", "clinician", "DIFF", NOW.isoformat()),
                    lambda: NOW)
    prog = Programmer(link, actor=Actor(Role.PHYSICIAN, "diff"),
                      patient=PatientFacts("spinal", child=False))
    rv = prog.review(sp.ProgramChange(rx))
    try:
        prog.apply(sp.ProgramChange(rx), token=rv.token, override_reason=reason)
        written = True
    except OpenITBError:
        written = False
    return outcome([c.to_dict() for c in rv.commands], written, rv.classification.value,
                   controller.to_dict())


def via_clinic(clinic: Clinic, snap: dict[str, Any], rx: Prescription, reason: str | None
               ) -> dict[str, Any]:
    serial = f"DIFF-{next(_serials)}"
    with clinic.uow(SYSTEM, NOW) as u:
        p = Patient(mrn=serial, name="Diff Patient", birth_date=date(1980, 1, 1),
                    origin="spinal", population="spinal", weight_kg=70, created_at=NOW,
                    stage="implanted", checklist={})
        u.session.add(p)
        u.session.flush()
        u.session.add(Pump(patient_id=p.id, profile="itb-20", serial=serial,
                           catheter="ascenda", catheter_length_cm=90, tip_level="T10",
                           implanted_at=NOW - timedelta(hours=48), active=True,
                           state=copy.deepcopy(snap)))
        pid = p.id
    c = TestClient(create_app_for(clinic))
    h = {"X-CSRF-Token": login(c, "dr.diff", PASSWORD)}
    body = {"prescription": rx.to_dict(), "context": "maintenance"}
    rv = c.post(f"/api/v1/patients/{pid}/program/review", headers=h, json=body)
    assert rv.status_code == 200, rv.text
    review = rv.json()
    done = c.post(f"/api/v1/patients/{pid}/program", headers=h,
                  json={**body, "confirmed": True, "review_token": review["review_token"],
                        "override_reason": reason})
    assert done.status_code in (201, 403, 422), done.text
    with clinic.factory() as s:
        state = s.query(Pump).filter_by(serial=serial).one().state
    return outcome(review["commands"], done.status_code == 201, review["classification"], state)


def create_app_for(clinic: Clinic) -> Any:
    from openitb.web.app import create_app

    return create_app(clinic, demo=True)


SCENARIO = parse_scenario({
    "name": "differential", "days": 1, "step_minutes": 60, "seed": 1,
    "patient": {"name": "adult_sci"},
    "pump": {"profile": "itb-20", "volume": "20 mL", "concentration": "500 mcg/mL"},
    "prescription": {"mode": "continuous", "dose": "100 mcg/day"}})


def via_runner(snap: dict[str, Any], rx: Prescription, reason: str | None) -> dict[str, Any]:
    pump = PumpController.from_dict(copy.deepcopy(snap))
    sc = dataclasses.replace(SCENARIO)
    rv = runner.kernel_review(sc, pump, sp.ProgramChange(rx))
    entry: dict[str, Any] = {"ok": True}
    event = Event(0.0, "program", {"prescription": rx, **({"override_reason": reason}
                                                          if reason else {})})
    runner._reviewed(sc, pump, event, entry, False)
    written = entry.get("ok", True) is not False
    return outcome([c.to_dict() for c in rv.commands], written, rv.classification.value,
                   pump.to_dict())


proposals = st.one_of(
    st.floats(0.4, 2.2).map(lambda f: ("continuous", f)),
    st.sampled_from([50.0, 100.0, 150.0]).map(lambda d: ("single_bolus", d)))


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(d0=st.floats(100, 500).map(lambda x: round(x, 1)),
       history=st.lists(st.tuples(st.floats(0.5, 23.0), st.floats(0.75, 1.35)), max_size=3),
       proposal=proposals, with_reason=st.booleans())
def test_programmer_clinic_and_runner_agree(clinic: Clinic, d0: float,
                                            history: list[tuple[float, float]],
                                            proposal: tuple[str, float],
                                            with_reason: bool) -> None:
    snap = pump_state(d0, history)
    current = PumpController.from_dict(copy.deepcopy(snap))
    assert current.prescription is not None
    base = current.prescription.daily_dose().value
    kind, x = proposal
    rx: Prescription = (Continuous(McgPerDay(round(base * x, 1))) if kind == "continuous"
                        else SingleBolus(Micrograms(x), Hours(1)))
    reason = REASON if with_reason else None
    a = via_programmer(snap, rx, reason)
    b = via_clinic(clinic, snap, rx, reason)
    c = via_runner(snap, rx, reason)
    assert a["classification"] == b["classification"] == c["classification"]
    assert a["written"] == b["written"] == c["written"], (a, b, c)
    assert a["commands"] == b["commands"] == c["commands"]
    assert a["program"] == b["program"] == c["program"]
