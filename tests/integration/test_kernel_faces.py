"""Issue 11's cases through the CLI programmer and the programmer over real loopback sockets.

Each test fails on the main of before issue 11 (no history, no stop-of-therapy rule, no token or
precondition, priming rounded by the pump above its limit)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from openitb.cli import app
from openitb.drugs import Context
from openitb.errors import RefusedOperation
from openitb.programmer.link import PumpLink, PumpRefused
from openitb.programmer.record import SessionRecord
from openitb.programmer.workflows import Programmer, patient_for
from openitb.pumpservice import store
from openitb.pumpservice.clock import ManualClock
from openitb.pumpservice.service import PumpService
from openitb.safety import Actor, ProgramChange, Role
from openitb.telemetry.client import ProgrammerClient
from openitb.telemetry.session import Role as WireRole
from openitb.telemetry.tcp import ServerThread, TcpTransport
from openitb.therapy.prescription import Continuous, SingleBolus
from openitb.units import Hours, McgPerDay, Micrograms

T0 = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
runner = CliRunner()


@dataclass
class Rig:
    service: PumpService
    clock: ManualClock
    address: str
    clinician: Path
    records: Path

    def itb(self, *argv: str, ok: bool = True) -> Any:
        verb = argv[0].split()
        rec = self.records / f"{len(list(self.records.glob('*')))}.json"
        args = [*verb, *argv[1:], "--pump", self.address, "--key-file", str(self.clinician),
                "--json", "--record", str(rec)]
        r = runner.invoke(app, args)
        assert (r.exit_code == 0) is ok, (args, r.output)
        line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "{}"
        return json.loads(line)

    def programmer(self, who: str, role: Role = Role.PHYSICIAN) -> Programmer:
        host, port = self.address.rsplit(":", 1)
        key = store.load_key_file(self.clinician)
        client = ProgrammerClient(TcpTransport(host, int(port)), WireRole.CLINICIAN, key.key)
        client.open()
        link = PumpLink(client, SessionRecord(who, "clinician", "", T0.isoformat()), self.clock)
        return Programmer(link, actor=Actor(role, who), patient=patient_for("spinal"))


def _rig(tmp_path: Path, catheter: str = "110 cm") -> Iterator[Rig]:
    state = tmp_path / "pump"
    r = runner.invoke(app, ["pump", "new", "--state", str(state), "--profile", "itb-20",
                            "--serial", "K-1", "--start", T0.isoformat(), "--catheter-length",
                            catheter, "--json"])
    assert r.exit_code == 0, r.output
    ident = store.load_identity(state)
    clock = ManualClock(T0)
    service = PumpService(store.load_controller(state, ident, T0), clock, serial=ident.serial)
    records = tmp_path / "records"
    records.mkdir()
    with ServerThread(lambda: service.endpoint(store.load_keys(state))) as server:
        yield Rig(service, clock, f"127.0.0.1:{server.port}", state / "clinician.key.json",
                  records)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path)


def _implant(rig: Rig, dose: str, *extra: str) -> Any:
    out = rig.itb("programmer implant", "--dose", dose, "--product", "Gablofen",
                  "--concentration", "500 mcg/mL", "--volume", "20 mL", "--origin", "spinal",
                  "--yes", *extra)
    rig.clock.advance(timedelta(days=2))  # the priming bolus is over; the implant day is past
    rig.service.advance()
    return out


def test_readme_implant_with_a_90_cm_catheter_primes_within_the_pump_limit(tmp_path: Path
                                                                           ) -> None:
    # main: "bolus flow 1 mL/h above the 1 mL/h limit; written before the failure: refill,
    # program, start" (priming duration = volume / maximum flow, rounded by the pump).
    for r in _rig(tmp_path, "90 cm"):
        out = r.itb("programmer implant", "--dose", "100 mcg/day", "--product", "Gablofen",
                    "--concentration", "500 mcg/mL", "--volume", "20 mL", "--origin", "spinal",
                    "--yes")
        assert out["written"] == ["refill", "program", "start", "priming_bolus"]
        prime = out["priming"]
        assert prime["volume_ml"] / prime["duration_h"] <= 1.0  # at most the bolus flow limit
        assert r.service.pump.bolus is not None and r.service.pump.running


def test_nurse_chained_steps_are_judged_against_the_24h_reference(rig: Rig) -> None:
    # main: 250 -> +39 % -> +39 % each "within" against the current program only.
    _implant(rig, "250 mcg/day")
    first = rig.itb("programmer program", "--dose", "347.5 mcg/day", "--origin", "spinal",
                    "--role", "nurse", "--yes")
    assert first["classification"] == "within"
    second = rig.itb("programmer program", "--dose", "483 mcg/day", "--origin", "spinal",
                     "--role", "nurse", "--yes", ok=False)
    assert second["code"] in ("guardrail_absolute", "forbidden_role")
    assert "24 h reference" in second["reason"] and "250" in second["reason"]
    assert rig.service.pump.prescription == Continuous(McgPerDay(347.5))
    # A day later the reference has moved on: the same step is a new day's step.
    rig.clock.advance(timedelta(hours=25))
    later = rig.itb("programmer program", "--dose", "450 mcg/day", "--origin", "spinal",
                    "--role", "nurse", "--yes")
    assert later["classification"] == "within"


def test_a_single_bolus_program_is_a_stop_of_therapy(rig: Rig) -> None:
    # main: {"mode": "single_bolus", "bolus": "300 mcg"} classified "within" for a nurse.
    _implant(rig, "300 mcg/day")
    rx = rig.records.parent / "single.toml"
    rx.write_text('mode = "single_bolus"\nbolus = "100 mcg"\nduration = "1 h"\n')
    nurse = rig.itb("programmer program", "--prescription", str(rx), "--origin", "spinal",
                    "--role", "nurse", "--yes", "--override-reason", "clinic request", ok=False)
    assert nurse["code"] == "forbidden_role" and "physician" in nurse["reason"]
    doctor = rig.itb("programmer program", "--prescription", str(rx), "--origin", "spinal",
                     "--yes", ok=False)
    assert doctor["code"] == "override_required" and "stop of therapy" in doctor["reason"]
    assert rig.service.pump.prescription == Continuous(McgPerDay(300))
    out = rig.itb("programmer program", "--prescription", str(rx), "--origin", "spinal",
                  "--yes", "--override-reason", "planned explant tomorrow")
    assert out["classification"] != "within"
    assert any("withdrawal" in w for w in out["warnings"])
    assert isinstance(rig.service.pump.prescription, SingleBolus)


def test_two_clinicians_a_confirm_after_b_wrote_is_refused_and_writes_nothing(rig: Rig
                                                                              ) -> None:
    # main: A reviews 100 -> 120 ("within"); B programs 70; A confirms and 120 is written.
    _implant(rig, "100 mcg/day")
    a = rig.programmer("dr a")
    b = rig.programmer("dr b")
    proposal = ProgramChange(Continuous(McgPerDay(120)), Context.TITRATION)
    review = a.review(proposal)
    assert review.classification.value == "within"
    version = rig.service.pump.state_version
    assert version == review.state_version  # a review only reads
    b.change(ProgramChange(Continuous(McgPerDay(70)), Context.MAINTENANCE),
             confirm=lambda rv: True, override_reason="side effects: drowsy")
    with pytest.raises(RefusedOperation) as exc:
        a.apply(proposal, token=review.token)
    assert exc.value.code == "stale_review" and "review again" in exc.value.reason
    assert rig.service.pump.prescription == Continuous(McgPerDay(70))
    # Reviewing again shows what 120 now is: +71 % from the 24 h reference, beyond absolute.
    again = a.review(proposal)
    assert again.refused and again.decision.value == "refused"
    # On the wire, too: a write carrying the version A saw is refused by the pump.
    with pytest.raises(PumpRefused) as wire:
        a.link.send("program", prescription=Continuous(McgPerDay(120)).to_dict(),
                    concentration="500 mcg/mL", expect_version=review.state_version)
    assert wire.value.code == "precondition_failed"
    assert rig.service.pump.prescription == Continuous(McgPerDay(70))


def test_reviews_only_read_and_one_program_change_is_four_commands(rig: Rig) -> None:
    _implant(rig, "200 mcg/day")
    before = rig.service.commands_served
    version = rig.service.pump.state_version
    out = rig.itb("programmer program", "--dose", "220 mcg/day", "--origin", "spinal", "--yes")
    assert out["readback"] == "matches"
    # read_status (session), read_status (confirm re-read), program, read_status (read-back)
    assert rig.service.commands_served - before == 4
    assert rig.service.pump.state_version == version + 1
    p = rig.programmer("dr c")
    for _ in range(3):
        p.review(ProgramChange(Continuous(McgPerDay(240))))
    assert rig.service.pump.state_version == version + 1


def test_implant_without_confirmation_writes_nothing(rig: Rig) -> None:
    out = rig.itb("programmer implant", "--dose", "100 mcg/day", "--product", "Gablofen",
                  "--concentration", "500 mcg/mL", "--volume", "20 mL", "--origin", "spinal",
                  ok=False)
    assert out["code"] == "unconfirmed"
    pump = rig.service.pump
    assert pump.prescription is None and pump.reservoir_estimate_nl == 0


def test_replacement_pump_primes_only_its_own_path_after_review(rig: Rig) -> None:
    out = rig.itb("programmer replace", "--dose", "400 mcg/day", "--product", "Gablofen",
                  "--concentration", "500 mcg/mL", "--volume", "20 mL", "--origin", "spinal",
                  "--yes")
    assert out["written"] == ["refill", "program", "start", "priming_bolus"]
    assert out["priming"]["volume_ml"] == pytest.approx(0.140, abs=0.001)


def test_clinician_bolus_counts_in_the_24h_total(rig: Rig) -> None:
    _implant(rig, "1900 mcg/day", "--override-reason", "replacement of a pump at this dose")
    p = rig.programmer("dr d")
    p.clinician_bolus(Micrograms(90), Hours(1), confirm=lambda r: True,
                      override_reason="breakthrough spasms")
    # 1900 + 90 already given + 100 more: above the 2000 mcg/day absolute for a spinal adult.
    rig.clock.advance(timedelta(hours=2))
    rig.service.advance()
    with pytest.raises(RefusedOperation) as exc:
        p.clinician_bolus(Micrograms(100), Hours(1), confirm=lambda r: True,
                          override_reason="spasm crisis")
    assert exc.value.code == "guardrail_absolute" and "boluses" in exc.value.reason


def test_refill_bridge_longer_than_the_longest_bolus_needs_an_override_and_records_it(
        rig: Rig) -> None:
    # main (clinic): a 44.9 h bridge the pump refuses, stored anyway, no override asked.
    _implant(rig, "100 mcg/day")
    p = rig.programmer("dr e")
    withdrawn = rig.service.pump.reservoir_estimate_nl / 1e6
    from openitb.units import McgPerMl, Milliliters
    with pytest.raises(RefusedOperation) as exc:
        p.refill(withdrawn=Milliliters(withdrawn), product="Gablofen",
                 concentration=McgPerMl(2000), volume=Milliliters(20), confirm=lambda r: True)
    assert exc.value.code == "override_required" and "longest bolus" in exc.value.reason
    assert rig.service.pump.reservoir_conc == 500.0
    out = p.refill(withdrawn=Milliliters(withdrawn), product="Gablofen",
                   concentration=McgPerMl(2000), volume=Milliliters(20),
                   confirm=lambda r: True, override_reason="rest clears at the new flow")
    given = out.extra["bridge"]
    assert given["given"] and given["duration_h"] == 24.0 and given["unbridged_ml"] > 0
    assert out.written == ["refill", "program", "bridge_bolus"]
    assert p.link.record.overrides[-1]["reason"] == "rest clears at the new flow"
