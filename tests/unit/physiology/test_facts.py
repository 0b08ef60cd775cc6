"""The model against the published facts of DESIGN.md section 3 (the "Done when" of issue 5)."""

from __future__ import annotations

import numpy as np
import pytest

from openitb.physiology.measures import (
    bolus_measures,
    infusion_measures,
    series,
    steady_state_measures,
)
from openitb.physiology.model import build_system, steady_state
from openitb.physiology.params import catalog, patient, population

RESPONDING = ("adult_sci", "adult_ms", "child_cp")
# Label: steady-state lumbar CSF 130-1240 ng/mL at 50-1200 mcg/day; widened twofold.
WIDE_LOW, WIDE_HIGH = 130 / 2, 1240 * 2


@pytest.mark.parametrize("name", RESPONDING)
@pytest.mark.parametrize("dose", [50.0, 1200.0])
def test_steady_state_lumbar_csf_within_label_range_widened_twofold(name: str, dose: float) -> None:
    m = steady_state_measures(patient(name), dose)
    assert WIDE_LOW <= m.csf_ng_per_ml[0] <= WIDE_HIGH


@pytest.mark.parametrize("name", RESPONDING)
def test_steady_state_reached_in_one_to_two_days(name: str) -> None:
    # Label: steady state reached in 1-2 days (90 % of the lumbar concentration).
    t90 = steady_state_measures(patient(name), 400.0).hours_to_90pct[0]
    assert 24.0 <= t90 <= 48.0


@pytest.mark.parametrize("name", RESPONDING)
@pytest.mark.parametrize("dose", [50.0, 75.0, 100.0])
def test_bolus_half_life_1_to_5_h_and_effect_peak_2_to_6_h(name: str, dose: float) -> None:
    m = bolus_measures(patient(name), dose)
    assert 1.0 <= m.csf_half_life_hours[0] <= 5.0
    assert 2.0 <= m.effect_peak_hours[0] <= 6.0


def test_typical_bolus_onset_and_duration_match_the_label() -> None:
    # Label: bolus onset 0.5-1 h, lasts 4-8 h (50 mcg screening dose, typical adult).
    m = bolus_measures(patient(), 50.0)
    assert 0.5 <= m.effect_onset_hours[0] <= 1.0
    assert 4.0 <= m.effect_duration_hours[0] <= 8.0


@pytest.mark.parametrize(("name", "dose"), [
    ("adult_sci", 100.0), ("adult_sci", 300.0), ("adult_ms", 100.0), ("adult_ms", 300.0),
    ("child_cp", 100.0), ("child_cp", 150.0)])
def test_infusion_effect_reaches_90pct_in_24_to_48_h(name: str, dose: float) -> None:
    # A first pump dose (100 mcg/day = twice a 50 mcg screening dose) and a usual maintenance
    # dose (spinal adults 300 mcg/day; a child's lower dose). At high doses the Emax relation
    # saturates and 90 % of the effect comes sooner (docs/physiology.md).
    m = infusion_measures(patient(name), dose)
    assert 24.0 <= m.effect_90pct_hours[0] <= 48.0


def test_typical_infusion_onset_6_to_8_h_at_a_first_pump_dose() -> None:
    # 100 mcg/day: twice a 50 mcg effective screening dose (the first-dose rule).
    m = infusion_measures(patient(), 100.0)
    assert 6.0 <= m.effect_onset_hours[0] <= 8.0


@pytest.mark.parametrize(("name", "dose"), [("adult_sci", 400.0), ("adult_ms", 300.0),
                                            ("child_cp", 250.0)])
def test_withdrawal_early_signs_within_24_h_of_running_dry_severe_over_24_to_72_h(
        name: str, dose: float) -> None:
    d = catalog().definitions
    system = build_system(patient(name))
    x0 = steady_state(system, np.array([dose / 24.0, 0.0]))  # chronic maintenance
    t = np.arange(0.0, 24 * 7 + 0.05, 0.25)
    s = series(system, t, np.zeros((t.size - 1, 2)), ("withdrawal", "mas"), x0=x0)
    w = s["withdrawal"][0]
    assert w[0] < d.withdrawal_early  # none while the pump runs
    early = t[np.argmax(w >= d.withdrawal_early)]
    severe = t[np.argmax(w >= d.withdrawal_severe)]
    assert 0 < early <= 24.0
    assert 24.0 <= severe <= 72.0
    assert s["mas"][0, -1] > patient(name).p("mas_baseline")[0]  # rebound spasticity


def test_a_screening_bolus_in_a_naive_patient_causes_no_withdrawal() -> None:
    system = build_system(patient())
    t = np.concatenate([[0.0, 1 / 60], np.arange(0.25, 96, 0.25)])
    r = np.zeros((t.size - 1, 2))
    r[0, 0] = 100 * 60
    w = series(system, t, r, ("withdrawal",))["withdrawal"]
    assert w.max() < catalog().definitions.withdrawal_early


def test_overdose_severity_rises_with_a_tenfold_bolus_and_is_negligible_at_maintenance() -> None:
    system = build_system(patient())
    x0 = steady_state(system, np.array([400 / 24, 0.0]))
    t = np.concatenate([[0.0, 1 / 60], np.arange(0.25, 24, 0.25)])
    r = np.zeros((t.size - 1, 2))
    r[:, 0] = 400 / 24
    base = series(system, t, r, ("overdose",), x0=x0)["overdose"].max()
    r[0, 0] += 4000 * 60  # 4000 mcg bolus on top (ten times a day's dose)
    high = series(system, t, r, ("overdose",), x0=x0)["overdose"].max()
    d = catalog().definitions
    assert base < d.overdose_drowsiness <= d.overdose_respiratory <= high


def test_catheter_tip_position_changes_the_exposure_at_a_spinal_level() -> None:
    # A tip moved up from L2 to T4 raises the concentration at the cisterna (brainstem).
    low, high = patient(tip_level="L2"), patient(tip_level="T4")
    ratios = []
    for p in (low, high):
        system = build_system(p)
        from openitb.physiology.model import readouts
        ro = readouts(system, steady_state(system, np.array([400 / 24, 0.0])))
        ratios.append(ro["csf_cisternal_ng_per_ml"][0] / ro["csf_tip_ng_per_ml"][0])
    assert ratios[1] > 1.5 * ratios[0]
    # Lumbar:cisternal with a lumbar tip: about 4:1 with a wide spread (label).
    assert 2.0 <= 1 / ratios[0] <= 10.0


def test_population_fractions_inside_label_ranges_are_reported_and_reasonable() -> None:
    from openitb.physiology.population import label_fractions

    rng = np.random.default_rng(5)
    f = label_fractions(population(2000, rng), rng)
    print("population fractions inside label ranges:", f)
    # With the label's clearance (30 mL/h) the typical patient sits at 69 ng/mL at 50 mcg/day,
    # just inside the widened range, so about half of the population falls below it there.
    assert f["csf_in_label_range_at_a_label_dose"] >= 0.6
    assert f["csf_50_in_widened_range"] >= 0.45
    assert f["csf_1200_in_widened_range"] >= 0.75
    assert f["clearance_13_80_ml_per_h"] >= 0.9
    assert f["csf_volume_22_157_ml"] >= 0.7
    assert f["bolus_half_life_1_5h"] >= 0.75
    assert f["bolus_peak_2_6h"] >= 0.75
    assert f["infusion_90pct_24_48h"] >= 0.45
    assert 0.5 <= f["screening_responders"] <= 0.95


def test_a_higher_tip_gives_more_effect_at_an_upper_spinal_level_and_same_at_the_legs() -> None:
    arms_low = steady_state_measures(patient(tip_level="L2", target_level="C6"), 400.0).mas_drop[0]
    arms_high = steady_state_measures(patient(tip_level="T4", target_level="C6"), 400.0).mas_drop[0]
    legs = [steady_state_measures(patient(tip_level=t), 400.0).mas_drop[0] for t in ("L2", "T10", "T4")]
    assert arms_high > arms_low + 0.3
    assert legs[1] == pytest.approx(legs[2])  # the legs' segments (T12) lie caudal to both tips
    assert legs[0] < legs[1]  # a tip at L2 lies caudal to them
