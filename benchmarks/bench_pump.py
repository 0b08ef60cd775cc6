"""Pump controller: one pump-year of delivery, event-driven versus a naive per-second reference;
and the served pump's memory under SIGKILL.

The reference steps every second with the same exact (Fraction) stroke accumulator over a
shorter span and is scaled to a year; both must agree to the stroke over that span. A pump-year
is timed as the best of a few runs (the machine is shared); target: the 24-step flex pump-year
within 3x of the continuous pump-year.

Crash test: ``OPENITB_CRASH_KILLS`` (default 1,000) SIGKILLs of a served pump (the serve code of
`itb pump serve` in a forked child, over loopback TCP) during program, refill and bolus traffic;
after each, the memory is recovered read-only and checked (pumpservice/crashtest.py). The
reference in the same run is a restart after a clean shutdown (SIGTERM).
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

from openitb.pump import commands as cmd
from openitb.pump.controller import zero_error_pump
from openitb.pumpservice import crashtest
from openitb.therapy.prescription import DAY_S, Continuous, Flex, FlexStep, Prescription
from openitb.units import McgPerDay, McgPerMl, Milliliters

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONC = 1000.0
NAIVE_DAYS = 5
YEAR_RUNS = 5
FLEX_TARGET = 3.0


def _pump(rx: Prescription):  # type: ignore[no-untyped-def]
    p = zero_error_pump("itb-40", T0)
    p.handle(cmd.Refill(Milliliters(40), McgPerMl(CONC)))
    p.handle(cmd.Program(rx, McgPerMl(CONC)))
    p.handle(cmd.Start())
    return p


def event_driven(rx: Prescription, days: float) -> tuple[int, float]:
    t = time.perf_counter()
    p = _pump(rx)
    p.advance(T0 + timedelta(days=days))
    return p.strokes, time.perf_counter() - t


def naive(rx: Prescription, days: int, stroke_nl: int = 1000) -> tuple[int, float]:
    """Step every second: look up the rate, add it to the accumulator, count whole strokes."""
    t = time.perf_counter()
    segs = rx.segments()
    rate_of = [Fraction(0)] * len(segs)
    for i, s in enumerate(segs):
        rate_of[i] = Fraction(s.dose_per_day.value) * 1_000_000 / (Fraction(CONC) * DAY_S * stroke_nl)
    acc = Fraction(0)
    strokes = 0
    for second in range(days * DAY_S):
        tod = second % DAY_S
        for i, s in enumerate(segs):
            if s.start_s <= tod < s.end_s:
                acc += rate_of[i]
                break
        if acc >= 1:
            k = math.floor(acc)
            strokes += k
            acc -= k
    return strokes, time.perf_counter() - t


def main() -> int:
    programs: dict[str, Prescription] = {
        "continuous": Continuous(McgPerDay(100)),
        "flex-24": Flex(tuple(FlexStep(h * 3600, McgPerDay(50 + 5 * h)) for h in range(24))),
    }
    ok = True
    year_of: dict[str, float] = {}
    for name, rx in programs.items():
        runs = [event_driven(rx, 365) for _ in range(YEAR_RUNS)]
        year_strokes, year_s = runs[0][0], min(t for _, t in runs)
        year_of[name] = year_s
        ref_strokes, ref_s = naive(rx, NAIVE_DAYS)
        short_strokes, _ = event_driven(rx, NAIVE_DAYS)
        ref_year_s = ref_s * 365 / NAIVE_DAYS
        agree = ref_strokes == short_strokes
        ok &= agree
        print(f"{name:>10}: one pump-year {year_s * 1000:8.2f} ms ({year_strokes} strokes); "
              f"naive per-second {ref_s:.2f} s for {NAIVE_DAYS} days -> {ref_year_s:.0f} s/year; "
              f"ratio {ref_year_s / year_s:,.0f}x; agree to the stroke over {NAIVE_DAYS} days: "
              f"{agree} ({short_strokes} vs {ref_strokes})")
    flex = year_of["flex-24"] / year_of["continuous"]
    ok &= flex <= FLEX_TARGET
    print(f"flex-24 pump-year / continuous pump-year = {flex:.2f}x (target <= {FLEX_TARGET:g}x)")
    ok &= crash_test(int(os.environ.get("OPENITB_CRASH_KILLS", "1000")))
    return 0 if ok else 1


def crash_test(kills: int) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "pump"
        crashtest.new_pump(state, T0)
        t = time.perf_counter()
        for _ in range(5):  # reference: clean restarts (serve, traffic-free, SIGTERM)
            server = crashtest.spawn_fork(state)
            os.kill(server.pid, signal.SIGTERM)
            server.wait()
        clean_s = (time.perf_counter() - t) / 5
        r = crashtest.run(state, kills, crashtest.spawn_fork, seed=2026, max_s=0.12,
                          progress=lambda r: print(f"  {r.kills} kills, {r.seconds:.0f} s, "
                                                   f"inconsistent {len(r.inconsistent)}",
                                                   flush=True))
    print(f"crash test: {r.kills} SIGKILLs during program/refill/bolus traffic in {r.seconds:.0f} s "
          f"({r.kills_per_s:.2f} kills/s; a clean restart takes {clean_s * 1e3:.0f} ms); "
          f"inconsistent restarts: {len(r.inconsistent)}; acknowledged writes {r.acked_writes:,} "
          f"(none lost, none applied twice), {r.in_flight_applied} durable in flight when killed "
          f"(applied once, never acknowledged); {r.commands:,} commands; "
          f"{r.replayed_records:,} journal records replayed")
    for line in r.inconsistent[:10]:
        print("  " + line)
    return not r.inconsistent and r.kills == kills


if __name__ == "__main__":
    raise SystemExit(main())
