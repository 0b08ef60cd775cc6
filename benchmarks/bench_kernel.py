"""The safety kernel through the programmer: telemetry sessions and commands per use case.

For a program change and for refills (same concentration; a concentration change with its
bridge), done as `itb programmer` does them (one session: a status read to check the pump, the
review from it, the confirm's re-read, the writes with their preconditions, the read-back),
prints the sessions opened and the commands the pump served (target: one session, at most four
commands), and the time of one kernel review against the reference measured in the same run: one
in-process read_status round trip.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from openitb.drugs import Context, Origin
from openitb.programmer.link import PumpLink
from openitb.programmer.record import SessionRecord
from openitb.programmer.workflows import Programmer
from openitb.pump.controller import zero_error_pump
from openitb.pump.memory import InMemory
from openitb.pumpservice.clock import ManualClock
from openitb.pumpservice.service import PumpService
from openitb.pumpservice.transport import InProcessTransport
from openitb.safety import ProgramChange
from openitb.telemetry.client import ProgrammerClient
from openitb.telemetry.session import Role
from openitb.therapy.prescription import Continuous
from openitb.units import McgPerDay, McgPerMl, Milliliters

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
KEYS = {Role.CLINICIAN: os.urandom(32), Role.PATIENT: os.urandom(32)}


class Counted:
    """A pump service whose sessions (endpoints opened) and commands are counted."""

    def __init__(self) -> None:
        self.clock = ManualClock(T0)
        self.service = PumpService(zero_error_pump("itb-20", T0, memory=InMemory()), self.clock,
                                   serial="K-BENCH")
        self.sessions = 0

    def session(self) -> Programmer:
        def factory() -> Any:
            self.sessions += 1
            return self.service.endpoint(KEYS)

        client = ProgrammerClient(InProcessTransport(factory), Role.CLINICIAN,
                                  KEYS[Role.CLINICIAN])
        client.open()
        link = PumpLink(client, SessionRecord("bench", "clinician", "", T0.isoformat()),
                        self.clock)
        link.read_status()  # as the CLI: check the serial of the pump it reached
        return Programmer(link)

    def counts(self) -> tuple[int, int]:
        return self.sessions, self.service.commands_served


def use_case(name: str, setup_dose: float, fn: Any) -> tuple[str, int, int]:
    rig = Counted()
    rig.session().implant(Continuous(McgPerDay(setup_dose)), product="Gablofen",
                          concentration=McgPerMl(500), volume=Milliliters(20),
                          confirm=lambda r: True, origin=Origin.SPINAL)
    rig.clock.advance(timedelta(days=10))
    s0, c0 = rig.counts()
    fn(rig.session(), rig)
    s1, c1 = rig.counts()
    return name, s1 - s0, c1 - c0


def main() -> int:
    yes = (lambda r: True)  # noqa: E731
    rows = [
        use_case("program change (400 -> 440 mcg/day)", 400, lambda p, r: p.change_program(
            Continuous(McgPerDay(440)), origin=Origin.SPINAL, context=Context.MAINTENANCE,
            confirm=yes)),
        use_case("refill, same concentration", 400, lambda p, r: p.refill(
            withdrawn=Milliliters(r.service.pump.reservoir_estimate_nl / 1e6), product="Gablofen",
            concentration=McgPerMl(500), volume=Milliliters(20), confirm=yes)),
        use_case("refill, 500 -> 2000 mcg/mL with bridge", 400, lambda p, r: p.refill(
            withdrawn=Milliliters(r.service.pump.reservoir_estimate_nl / 1e6), product="Gablofen",
            concentration=McgPerMl(2000), volume=Milliliters(20), confirm=yes)),
    ]
    print(f"{'use case':44} {'sessions':>8} {'commands':>8}  target")
    for name, sessions, commands in rows:
        ok = "ok" if sessions == 1 and commands <= 4 else "over (writes + reads, see note)"
        print(f"{name:44} {sessions:8d} {commands:8d}  {ok}")
    print("note: a concentration change writes three commands (refill, program, bridge_bolus);"
          " with the confirm's re-read and the read-back that is six")

    rig = Counted()
    prog = rig.session()
    prog.implant(Continuous(McgPerDay(400)), product="Gablofen", concentration=McgPerMl(500),
                 volume=Milliliters(20), confirm=lambda r: True, origin=Origin.SPINAL)
    rig.clock.advance(timedelta(days=2))
    snap = prog.snapshot(fresh=True)
    proposal = ProgramChange(Continuous(McgPerDay(440)))
    n = 300
    t_review, t_read = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        prog.review(proposal, snapshot=snap)
        t_review.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        prog.link.read_status()
        t_read.append(time.perf_counter() - t0)
    r, ref = statistics.median(t_review), statistics.median(t_read)
    print(f"kernel review (program change): median {r * 1e6:.0f} us; reference in-process "
          f"read_status round trip {ref * 1e6:.0f} us; ratio {r / ref:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
