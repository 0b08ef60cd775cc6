"""How much of a virtual population falls inside the published ranges (DESIGN.md section 3)."""

from __future__ import annotations

import numpy as np

from openitb.physiology.measures import bolus_measures, infusion_measures, steady_state_measures
from openitb.physiology.model import build_system, readouts, steady_state
from openitb.physiology.params import Catalog, Patients, catalog

LABEL_CSF = (130.0, 1240.0)  # ng/mL at 50-1200 mcg/day (label)
LABEL_DOSES = (50.0, 1200.0)  # mcg/day
WIDENED = (LABEL_CSF[0] / 2, LABEL_CSF[1] * 2)


def _inside(x: np.ndarray, lo: float, hi: float) -> float:
    return float(np.mean((x >= lo) & (x <= hi)))


def label_fractions(patients: Patients, rng: np.random.Generator,
                    cat: Catalog | None = None) -> dict[str, float]:
    """Fractions of ``patients`` inside each published range.

    ``csf_in_label_range_at_a_label_dose`` gives each patient one maintenance dose drawn
    log-uniformly from 50-1200 mcg/day (the label's dose range) and asks whether the steady-state
    lumbar CSF concentration falls in the label's 130-1240 ng/mL.
    """
    c = cat or catalog()
    system = build_system(patients)
    n = len(patients)

    def css(dose_per_day: np.ndarray | float) -> np.ndarray:
        rates = np.zeros((n, 2))
        rates[:, 0] = np.broadcast_to(np.asarray(dose_per_day, float) / 24.0, n)
        return readouts(system, steady_state(system, rates))["csf_lumbar_ng_per_ml"]

    doses = np.exp(rng.uniform(np.log(LABEL_DOSES[0]), np.log(LABEL_DOSES[1]), n))
    c50, c1200 = css(50.0), css(1200.0)
    ss = steady_state_measures(patients, 400.0, dt_h=0.25)
    bolus = bolus_measures(patients, 50.0, dt_h=1 / 30, cat=c)
    inf = infusion_measures(patients, 300.0, dt_h=0.25, cat=c)
    responder = np.zeros(n, bool)
    for dose in (50.0, 75.0, 100.0):
        responder |= bolus_measures(patients, dose, horizon_h=12.0, dt_h=1 / 30,
                                    cat=c).effect_peak_mas_drop >= c.definitions.responder_mas_drop
    p = patients.p
    return {
        "patients": float(n),
        "csf_in_label_range_at_a_label_dose": _inside(css(doses), *LABEL_CSF),
        "csf_50_in_widened_range": _inside(c50, *WIDENED),
        "csf_1200_in_widened_range": _inside(c1200, *WIDENED),
        "csf_50_and_1200_in_widened_range": float(np.mean(
            (c50 >= WIDENED[0]) & (c50 <= WIDENED[1]) & (c1200 >= WIDENED[0]) & (c1200 <= WIDENED[1]))),
        "steady_state_in_1_2_days": _inside(ss.hours_to_90pct, 24.0, 48.0),
        "clearance_13_80_ml_per_h": _inside(p("clearance_ml_per_h"), 13.0, 80.0),
        "csf_volume_22_157_ml": _inside(p("csf_volume_ml"), 22.0, 157.0),
        "bolus_half_life_1_5h": _inside(bolus.csf_half_life_hours, 1.0, 5.0),
        "bolus_onset_0p5_1h": _inside(bolus.effect_onset_hours, 0.5, 1.0),
        "bolus_peak_2_6h": _inside(bolus.effect_peak_hours, 2.0, 6.0),
        "bolus_duration_4_8h": _inside(bolus.effect_duration_hours, 4.0, 8.0),
        "infusion_90pct_24_48h": _inside(inf.effect_90pct_hours, 24.0, 48.0),
        "screening_responders": float(np.mean(responder)),
    }
