"""Fleet study files, the policy simulation's behaviour, and the rate intervals."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openitb.errors import InvalidInput
from openitb.sim.fleet import OUTCOMES, draw, simulate
from openitb.sim.fleet_runner import poisson_interval, run_local, summarise
from openitb.sim.study import load_study, parse_study

EXAMPLE = Path(__file__).resolve().parents[3] / "studies" / "thresholds_and_lead_times.toml"


def small(**over: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "name": "t", "patients": 300, "years": 1.0, "seed": 5,
        "policies": [{"name": "2/3", "low_alarm_ml": 2, "lead_days": 3},
                     {"name": "4/14", "low_alarm_ml": 4, "lead_days": 14}],
    }
    doc.update(over)
    return doc


def test_example_study_loads_with_nine_policies() -> None:
    s = load_study(EXAMPLE)
    assert len(s.policies) == 9 and s.patients == 2000 and s.years == 5
    assert {p.low_alarm_ml for p in s.policies} == {2, 3, 4}
    assert {p.lead_days for p in s.policies} == {3, 7, 14}


@pytest.mark.parametrize(("change", "field"), [
    ({"patients": 0}, "patients"),
    ({"years": -1}, "years"),
    ({"policies": []}, "policies"),
    ({"policies": [{"name": "a", "low_alarm_ml": 0.1, "lead_days": 3}]}, "low_alarm"),
    ({"policies": [{"name": "a", "low_alarm_ml": 2, "lead_days": 3},
                   {"name": "a", "low_alarm_ml": 3, "lead_days": 3}]}, "study"),
    ({"population": {"mix": {"martian": 1.0}}}, "population"),
    ({"refills": {"miss_probability": 1.5}}, "refills.miss_probability"),
    ({"catheter": {"occlusion_per_patient_year": float("nan")}}, "catheter.occlusion_per_patient_year"),
    ({"pumps": {"mix": {"itb-99": 1.0}}}, "pump"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_study_is_refused_with_the_field_named(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_study(small(**change))
    assert field in str(exc.value)


def test_missing_and_broken_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="existing TOML"):
        load_study(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("patients = [", encoding="utf-8")
    with pytest.raises(InvalidInput, match="valid TOML"):
        load_study(bad)


def test_same_seed_same_results_and_slices_add_up() -> None:
    s = parse_study(small())
    d = draw(s)
    whole = simulate(d, s, s.policies[0])
    assert whole == simulate(draw(s), s, s.policies[0])
    parts = [simulate(d.take(a, b), s, s.policies[0]) for a, b in ((0, 100), (100, 170), (170, 300))]
    assert {k: sum(p[k] for p in parts) for k in OUTCOMES} == whole


def test_a_quiet_clinic_has_no_withdrawal() -> None:
    # Exact pumps, no catheter faults, no missed visits, refills well ahead: nobody withdraws.
    s = parse_study(small(
        catheter={"occlusion_per_patient_year": 0, "disconnection_per_patient_year": 0},
        refills={"miss_probability": 0, "pocket_fill_probability": 0},
        policies=[{"name": "safe", "low_alarm_ml": 4, "lead_days": 21}]))
    c = simulate(draw(s), s, s.policies[0])
    assert c["withdrawal_early"] == c["withdrawal_severe"] == 0
    assert c["reservoir_dry"] == 0 and c["empty_reservoir"] == 0 and c["refill"] > 300


def test_catheter_failures_cause_withdrawal_and_unplanned_visits() -> None:
    s = parse_study(small(
        catheter={"occlusion_per_patient_year": 0.5, "disconnection_per_patient_year": 0.5},
        policies=[{"name": "safe", "low_alarm_ml": 4, "lead_days": 21}]))
    c = simulate(draw(s), s, s.policies[0])
    assert c["catheter_fault"] > 100
    assert c["withdrawal_early"] + c["withdrawal_severe"] > 0.5 * c["catheter_fault"]
    assert c["unplanned_visit"] >= c["withdrawal_early"] + c["withdrawal_severe"] - 5


def test_pocket_fills_cause_overdose() -> None:
    s = parse_study(small(refills={"pocket_fill_probability": 0.5, "pocket_fill_fraction": 0.5},
                          policies=[{"name": "safe", "low_alarm_ml": 4, "lead_days": 21}]))
    quiet = parse_study(small(refills={"pocket_fill_probability": 0.0},
                              policies=[{"name": "safe", "low_alarm_ml": 4, "lead_days": 21}]))
    c, q = simulate(draw(s), s, s.policies[0]), simulate(draw(quiet), quiet, quiet.policies[0])
    od = sum(c[k] for k in ("overdose_drowsiness", "overdose_respiratory", "overdose_coma"))
    od_q = sum(q[k] for k in ("overdose_drowsiness", "overdose_respiratory", "overdose_coma"))
    assert od > od_q + 20


def test_higher_threshold_and_longer_lead_mean_fewer_dry_pumps() -> None:
    results = run_local(parse_study(small(patients=600)))
    risky, safe = (r.rates for r in results)
    assert safe["reservoir_dry"].count < risky["reservoir_dry"].count
    assert safe["withdrawal_severe"].count <= risky["withdrawal_severe"].count
    assert safe["refill"].count > risky["refill"].count  # the price: more visits


def test_poisson_interval_matches_known_values() -> None:
    assert poisson_interval(0, 1000.0) == pytest.approx((0.0, 3.689), abs=1e-3)
    low, high = poisson_interval(10, 1000.0)
    assert low == pytest.approx(4.795, abs=1e-3) and high == pytest.approx(18.39, abs=1e-2)


def test_summary_rates_are_per_thousand_patient_years() -> None:
    s = parse_study(small(patients=1000, years=2.0))
    counts = [dict.fromkeys(OUTCOMES, 0) for _ in s.policies]
    counts[0]["refill"] = 8000
    r = summarise(s, counts)[0]
    assert r.patient_years == pytest.approx(2000.0, rel=1e-3)
    assert r.rates["refill"].per_1000_py == pytest.approx(4000.0, rel=1e-3)


def test_a_narrower_flow_spread_means_fewer_pumps_running_dry_unnoticed() -> None:
    # The pessimistic named option: uniform over the whole tolerance, or over +-2.5 %.
    wide = parse_study(small(patients=600, pumps={"flow_error": "uniform"}))
    narrow = parse_study(small(patients=600, pumps={"flow_error": "uniform",
                                                    "flow_spread_pct": 2.5}))
    d_wide, d_narrow = draw(wide), draw(narrow)
    assert abs(d_narrow.true_stroke_nl - 1000).max() <= 25
    assert abs(d_wide.true_stroke_nl - 1000).max() > 100
    risky = wide.policies[0]
    assert (simulate(d_narrow, narrow, risky)["reservoir_dry"]
            < simulate(d_wide, wide, risky)["reservoir_dry"])


def test_fleet_tables_fit_100_columns_and_show_each_published_rate() -> None:
    from rich.console import Console

    from openitb.commands.fleet import WIDTH, _published, _published_table, _table
    from openitb.sim.fleet_calibration import PUBLISHED

    s = parse_study(small(patients=60))
    results = run_local(s)
    published = _published(results)
    assert set(published) == set(PUBLISHED)
    assert all(set(p["study"]) == {"2/3", "4/14"} for p in published.values())  # type: ignore[arg-type]
    console = Console(width=WIDTH, record=True, force_terminal=False)
    console.print(_table(results))
    console.print(_published_table(published))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 100
    # What the table leaves out is named under it, with where to find it.
    assert "results.json and results.parquet" in " ".join(text.split())
    for p in PUBLISHED.values():
        assert p.value in text and p.source in text


def test_measured_flow_error_is_a_few_percent_and_drifts_between_refills() -> None:
    d = draw(parse_study(small(patients=600)))
    err = d.stroke_by_refill_nl / d.nominal_nl[:, None] - 1.0
    assert abs(err.mean() - 0.01) < 0.005  # mean +1 % (Wesemann 2014)
    assert (abs(err) > 0.10).mean() < 0.01  # rarely beyond 10 %, never beyond the tolerance
    assert abs(err).max() <= 0.145 + 1e-9
    assert (d.stroke_by_refill_nl[:, 1:] != d.stroke_by_refill_nl[:, :1]).any(axis=1).mean() > 0.9
    uniform = draw(parse_study(small(patients=600, pumps={"flow_error": "uniform"})))
    assert (uniform.stroke_by_refill_nl == uniform.true_stroke_nl[:, None]).all()
    assert (abs(uniform.true_stroke_nl / uniform.nominal_nl - 1.0) > 0.10).mean() > 0.2


def test_partial_catheter_faults_are_not_all_severe_withdrawals() -> None:
    faults = {"occlusion_per_patient_year": 0.5, "disconnection_per_patient_year": 0.5}
    quiet = {"miss_probability": 0, "pocket_fill_probability": 0}
    complete = parse_study(small(patients=300, catheter={**faults, "partial_share": 0.0},
                                 refills=quiet))
    partial = parse_study(small(patients=300, catheter={**faults, "partial_share": 1.0},
                                refills=quiet))
    c = simulate(draw(complete), complete, complete.policies[1])
    p = simulate(draw(partial), partial, partial.policies[1])
    assert c["catheter_fault"] > 100 and p["catheter_fault_partial"] == p["catheter_fault"]
    assert p["withdrawal_severe"] < c["withdrawal_severe"]
    assert p["withdrawal_severe"] < p["catheter_fault"] / 2


@given(n=st.integers(1, 20_000), policies=st.integers(1, 12), workers=st.integers(1, 16))
def test_balanced_tasks_cover_every_patient_of_every_policy_once_in_equal_shares(
        n: int, policies: int, workers: int) -> None:
    from openitb.sim.fleet_runner import balanced_tasks

    tasks = balanced_tasks(n, policies, workers)
    for p in range(policies):  # each policy's patients exactly once, in order
        mine = [(a, b) for q, a, b in tasks if q == p]
        assert mine[0][0] == 0 and mine[-1][1] == n
        assert all(b == c and a < b for (a, b), (c, _) in zip(mine, mine[1:] + [(n, n)],
                                                                 strict=True))
    # the tasks in order fall into ``workers`` stretches of equal work (within one patient):
    # every share's boundary is a boundary between two tasks
    ends, done = {0}, 0
    for _, a, b in tasks:
        done += b - a
        ends.add(done)
    assert {round(j * n * policies / workers) for j in range(workers + 1)} <= ends
    assert len(tasks) <= policies + workers


def test_the_shipped_study_on_two_workers_is_eight_whole_policies_and_two_halves() -> None:
    from openitb.sim.fleet_runner import balanced_tasks

    tasks = balanced_tasks(2000, 9, 2)
    assert sorted(b - a for _, a, b in tasks) == [1000, 1000] + [2000] * 8
    assert (4, 0, 1000) in tasks and (4, 1000, 2000) in tasks
    assert balanced_tasks(2000, 9, 1) == [(p, 0, 2000) for p in range(9)]
    assert balanced_tasks(4000, 1, 2) == [(0, 0, 2000), (0, 2000, 4000)]
