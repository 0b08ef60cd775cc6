"""The plug-flow catheter path and its positional faults, alone and inside the controller."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from openitb.pump import commands as cmd
from openitb.pump.catheter import Catheter
from openitb.units import McgPerMl, Milliliters

from .helpers import days, running_pump

PER_CM_NL = 2600  # 0.0026 mL/cm


def content(c: Catheter) -> list[tuple[int, float]]:
    """The path's parcels from tip to pump, adjacent equal concentrations merged."""
    out: list[tuple[int, float]] = []
    for v, k in c.to_dict()["parcels"]:
        if out and out[-1][1] == k:
            out[-1] = (out[-1][0] + v, k)
        elif v:
            out.append((v, k))
    return out


faults = st.tuples(st.sampled_from(["none", "occlusion", "kink", "leak", "disconnection"]),
                   st.floats(0, 110), st.floats(0.01, 0.99))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(faults, st.integers(0, 400_000), st.sampled_from([500.0, 2000.0])),
                max_size=10))
def test_path_stays_full_and_volume_is_conserved(steps: list[Any]) -> None:
    c = Catheter(140_000 + 110 * PER_CM_NL, 1000.0, internal_nl=140_000)
    for (kind, pos, frac), volume, conc in steps:
        before = content(c)
        c.set_fault(kind, pos, frac)
        assert content(c) == before  # splitting the path at a fault moves nothing
        moved = round(volume * c.flow_factor())
        to_csf, to_tissue = c.push(moved, conc)
        out = sum(v for v, _ in to_csf) + sum(v for v, _ in to_tissue)
        assert out == moved  # what goes in pushes the same volume out
        assert sum(v for v, _ in content(c)) == c.volume_nl  # the path is always full
        if kind in ("none", "kink", "occlusion"):
            assert to_tissue == []
        if kind == "disconnection":
            assert to_csf == []


def test_leak_at_a_position_sends_its_share_to_tissue() -> None:
    p = running_pump()  # 800 mcg/day at 2000 mcg/mL: 0.4 mL/day, a zero-error pump
    p.advance(days(1))
    assert p.handle(cmd.CatheterFault("leak", position_cm=50.0, fraction=0.25)).ok
    csf0, tissue0 = p.delivered_mcg, p.tissue_mcg
    p.advance(days(11))
    assert round(p.tissue_mcg - tissue0) == 2000  # a quarter of 10 × 800 mcg
    assert round(p.delivered_mcg - csf0) == 6000


def test_disconnection_strands_the_catheter_beyond_it() -> None:
    p = running_pump(conc=500.0, dose=400.0)  # 0.8 mL/day
    p.advance(days(1))
    p.handle(cmd.Refill(Milliliters(20), McgPerMl(2000)))
    p.handle(cmd.Program(p.prescription, McgPerMl(2000)))  # type: ignore[arg-type]
    # Disconnect 10 cm from the pump: the 100 cm beyond it still hold the old 500 mcg/mL drug,
    # which nothing pushes out any more: the patient gets nothing at all.
    assert p.handle(cmd.CatheterFault("disconnection", position_cm=10.0)).ok
    csf0 = p.delivered_nl
    p.advance(days(5))
    assert p.delivered_nl == csf0
    assert p.tissue_nl == 800_000  # days 1 to 5: 4 × 0.2 mL/day at the new 2000 mcg/mL
    assert p.catheter.tip_concentration() == 500.0
    # Repaired (revision surgery), flow resumes and the stranded old drug leaves first.
    assert p.handle(cmd.CatheterFault("none")).ok
    p.advance(days(5) + timedelta(hours=1))
    assert p.delivered_nl > csf0
    assert p.catheter.tip_concentration() == 500.0


def test_partial_kink_slows_delivery_and_refill_finds_more_left() -> None:
    p = running_pump()
    assert p.handle(cmd.CatheterFault("kink", fraction=0.5)).ok
    p.advance(days(10))
    assert p.delivered_nl == 2_000_000  # half of 10 × 0.4 mL
    assert p.reservoir_estimate_nl == 36_000_000
    r = p.handle(cmd.Refill(Milliliters(40), McgPerMl(2000)))
    assert abs(r.data["discrepancy_ml"] - 2.0) < 1e-9  # 2 mL more withdrawn than expected


def test_bad_fault_changes_nothing() -> None:
    p = running_pump()
    before = p.to_dict()
    for bad in (cmd.CatheterFault("leak", position_cm=111.0, fraction=0.5),
                cmd.CatheterFault("leak", position_cm=10.0, fraction=0.0),
                cmd.CatheterFault("kink", fraction=1.0),
                cmd.CatheterFault("kink", fraction=float("nan")),
                cmd.CatheterFault("leak", position_cm=float("nan"), fraction=0.5),
                cmd.CatheterFault("crack")):
        r = p.handle(bad)
        assert not r.ok and r.reason
    after = p.to_dict()
    # The command refusals are logged; nothing else changes.
    before.pop("log"), after.pop("log")
    assert after == before


def test_faulted_catheter_survives_snapshot_restore() -> None:
    from openitb.pump.controller import PumpController

    p = running_pump()
    p.handle(cmd.CatheterFault("leak", position_cm=30.0, fraction=0.4))
    p.advance(days(3))
    q = PumpController.from_dict(p.to_dict())
    p.advance(days(9))
    q.advance(days(9))
    assert (p.delivered_nl, p.tissue_nl) == (q.delivered_nl, q.tissue_nl)
    assert p.to_dict() == q.to_dict()


def test_pocket_fill_empties_early_and_is_found_at_the_next_refill() -> None:
    p = running_pump(volume_ml=20.0)  # 0.4 mL/day: estimate says 45 days to the 2 mL alarm
    r = p.handle(cmd.PocketFill(Milliliters(5)))
    assert r.ok and r.data["pocket_mcg"] == 10_000  # 5 mL at 2000 mcg/mL into the pocket
    assert p.tissue_mcg == 10_000 and p.reservoir_estimate_nl == 20_000_000
    p.advance(days(38))  # 15 mL true: the true reservoir is dry after 37.5 days
    assert p.reservoir_true_nl == 0 and p.alarms.active("low_reservoir") is None
    assert p.delivered_nl == 15_000_000  # the pump kept stroking, moving nothing more
    r = p.handle(cmd.Refill(Milliliters(20), McgPerMl(2000)))
    assert abs(r.data["discrepancy_ml"] + 4.8) < 1e-9  # expected 4.8 mL, withdrew nothing


def test_pocket_fill_larger_than_the_reservoir_is_refused() -> None:
    p = running_pump(volume_ml=3.0)
    before = p.to_dict()
    r = p.handle(cmd.PocketFill(Milliliters(3.5)))
    assert not r.ok and "at most" in r.reason
    assert p.to_dict() == before
