"""The precondition on the wire and the bounded history, attacked: stale, odd and repeated."""

from __future__ import annotations

from datetime import timedelta

import pytest

from openitb.drugs import Origin
from openitb.errors import RefusedOperation
from openitb.pump import commands as cmd
from openitb.safety import Decision, ProgramChange, history_from_report
from openitb.telemetry.session import CommandError, Role
from openitb.therapy.prescription import Continuous
from openitb.units import McgPerDay, McgPerMl, Milliliters

from .helpers import connect, implanted, new_pump, yes


def test_a_stale_or_odd_precondition_is_refused_and_changes_nothing() -> None:
    service, clock = new_pump()
    v = service.pump.state_version
    rx = {"mode": "continuous", "dose": "100 mcg/day"}
    service.dispatch(Role.CLINICIAN, "refill", {"volume": "20 mL", "concentration": "500 mcg/mL",
                                                "expect_version": v})
    before = service.pump.to_dict()
    with pytest.raises(CommandError) as exc:
        service.dispatch(Role.CLINICIAN, "program", {"prescription": rx,
                                                     "concentration": "500 mcg/mL",
                                                     "expect_version": v})
    assert exc.value.code == "precondition_failed"
    assert service.pump.to_dict() == before
    for odd in (True, -1, "3", 2.0, 2**60):
        with pytest.raises(CommandError) as exc:
            service.dispatch(Role.CLINICIAN, "program", {"prescription": rx,
                                                         "concentration": "500 mcg/mL",
                                                         "expect_version": odd})
        assert exc.value.code == "bad_argument" and "expect_version" in exc.value.reason
    with pytest.raises(CommandError) as exc:  # reads take no precondition (and never bump)
        service.dispatch(Role.CLINICIAN, "read_status", {"expect_version": v})
    assert exc.value.code == "bad_argument"
    out = service.dispatch(Role.CLINICIAN, "program", {"prescription": rx,
                                                       "concentration": "500 mcg/mL",
                                                       "expect_version": v + 1})
    assert out["state_version"] == v + 2


def test_confirming_the_same_review_twice_writes_once() -> None:
    service, clock, prog, record = implanted(400)
    clock.advance(timedelta(days=2))
    proposal = ProgramChange(Continuous(McgPerDay(440)))
    rv = prog.review(proposal)
    prog.apply(proposal, token=rv.token)
    v = service.pump.state_version
    with pytest.raises(RefusedOperation) as exc:
        prog.apply(proposal, token=rv.token)
    assert exc.value.code == "stale_review"
    assert service.pump.state_version == v
    assert record.refusals[-1]["code"] == "stale_review"


def test_a_changed_proposal_under_an_old_token_is_refused() -> None:
    service, clock, prog, _ = implanted(400)
    clock.advance(timedelta(days=2))
    rv = prog.review(ProgramChange(Continuous(McgPerDay(440))))
    with pytest.raises(RefusedOperation) as exc:  # reviewed 440, confirm 520
        prog.apply(ProgramChange(Continuous(McgPerDay(520))), token=rv.token)
    assert exc.value.code == "stale_review"
    assert service.pump.prescription == Continuous(McgPerDay(400))


def test_more_changes_than_the_bounded_history_holds_need_an_override() -> None:
    service, clock, prog, _ = implanted(400)
    clock.advance(timedelta(days=2))
    pump = service.pump
    for i in range(60):  # tiny steps, 60 in an hour: more than the 48 the status carries
        clock.advance(timedelta(minutes=1))
        service.advance()
        assert pump.handle(cmd.Program(Continuous(McgPerDay(400 + (i % 2))), McgPerMl(500))).ok
    status = prog.status()
    hist = history_from_report(status["history_24h"])
    assert hist.truncated and len(hist.events) == 48
    rv = prog.review(ProgramChange(Continuous(McgPerDay(401))))
    assert rv.decision is Decision.NEEDS_OVERRIDE
    assert any(v.rule == "history.complete" for v in rv.verdicts)
    assert len(str(status)) < 16 * 1024  # fits one telemetry frame


def test_a_write_refused_after_others_names_what_was_written() -> None:
    service, clock = new_pump()

    def refuse_start(role: Role, name: str, args: dict[str, object]) -> dict[str, object]:
        if name == "start":
            raise CommandError("refused", "injected: start refused")
        return service.dispatch(role, name, args)

    prog, _ = connect(service, clock, refuse_start)
    with pytest.raises(RefusedOperation) as exc:
        prog.implant(Continuous(McgPerDay(100)), product="Gablofen",
                     concentration=McgPerMl(500), volume=Milliliters(20), confirm=yes,
                     origin=Origin.SPINAL)
    assert "written before the failure: refill, program" in exc.value.reason
