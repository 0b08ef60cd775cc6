"""How much of a virtual population falls inside the published ranges (DESIGN.md section 3)."""

from __future__ import annotations

import numpy as np

from openitb.physiology.measures import (
    BOLUS_INJECTION_H,
    bolus_measures,
    cohort_series,
    infusion_measures,
    steady_state_measures,
)
from openitb.physiology.model import INTRATHECAL, N_INPUTS, build_system, readouts, steady_state
from openitb.physiology.params import Catalog, Patients, catalog
from openitb.physiology.titration import clinic_dose

LABEL_CSF = (130.0, 1240.0)  # ng/mL at 50-1200 mcg/day (label)
LABEL_DOSES = (50.0, 1200.0)  # mcg/day
WIDENED = (LABEL_CSF[0] / 2, LABEL_CSF[1] * 2)


def _inside(x: np.ndarray, lo: float, hi: float) -> float:
    return float(np.mean((x >= lo) & (x <= hi)))


SCREENING_DOSES = (50.0, 75.0, 100.0)  # mcg, the label's screening protocol
# Label maintenance ranges (mcg/day) by origin; children under 12: 24-1199.
MAINTENANCE = {"spinal": (300.0, 800.0), "cerebral": (90.0, 703.0)}


def screening_responders(patients: Patients, cat: Catalog | None = None) -> np.ndarray:
    """Who responds at screening: a MAS drop of at least ``responder_mas_drop`` after the 50,
    75 or 100 mcg bolus (observed 12 h)."""
    c = cat or catalog()
    responder = np.zeros(len(patients), bool)
    for dose in SCREENING_DOSES:
        responder |= bolus_measures(patients, dose, horizon_h=12.0, dt_h=1 / 30,
                                    cat=c).effect_peak_mas_drop >= c.definitions.responder_mas_drop
    return responder


def overdose_signs_after_bolus(patients: Patients, dose_mcg: float,
                               cat: Catalog | None = None) -> np.ndarray:
    """Who shows overdose signs (severity at the drowsiness level or more) within 12 h of a
    bolus of ``dose_mcg`` given to a drug-naive patient."""
    c = cat or catalog()
    times = np.concatenate([[0.0, BOLUS_INJECTION_H], np.arange(1 / 30, 12.0 + 1e-9, 1 / 30)[1:]])
    rates = np.zeros((times.size - 1, N_INPUTS))
    rates[0, INTRATHECAL] = dose_mcg / BOLUS_INJECTION_H
    _, peaks = cohort_series(build_system(patients), times, rates, ("overdose",))
    return np.asarray(peaks["overdose"] >= c.definitions.overdose_drowsiness)


def label_fractions(patients: Patients, rng: np.random.Generator,
                    cat: Catalog | None = None) -> dict[str, float]:
    """Fractions of ``patients`` inside each published range.

    ``csf_in_label_range_at_a_label_dose`` gives each patient one maintenance dose drawn
    log-uniformly from 50-1200 mcg/day (the label's dose range) and asks whether the steady-state
    lumbar CSF concentration falls in the label's 130-1240 ng/mL; the ``maintenance_dose_*`` and
    ``csf_at_maintenance_dose_*`` fractions use the dose each patient is titrated to
    (physiology/titration.py). ``overdose_signs_after_50_mcg`` is a share (published: it happens,
    rarely), not a fraction inside a range.
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
    responder = screening_responders(patients, c)
    dose = clinic_dose(patients)
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
        "maintenance_dose_in_label_range_spinal_300_800": _inside(dose, *MAINTENANCE["spinal"]),
        "maintenance_dose_in_label_range_cerebral_90_703": _inside(dose, *MAINTENANCE["cerebral"]),
        "csf_at_maintenance_dose_in_label_range": _inside(css(dose), *LABEL_CSF),
        "overdose_signs_after_50_mcg": float(np.mean(overdose_signs_after_bolus(patients, 50.0, c))),
    }


def _r(lo_hi: tuple[float, float]) -> str:
    return f"{lo_hi[0]:g}-{lo_hi[1]:g}"


# What each code of ``label_fractions`` means, in words, for people (the codes stay in JSON).
FRACTION_LABELS = {
    "patients": "patients",
    "csf_in_label_range_at_a_label_dose":
        f"CSF {_r(LABEL_CSF)} ng/mL (label) at a dose of {_r(LABEL_DOSES)} mcg/day",
    "csf_50_in_widened_range": f"CSF {_r(WIDENED)} ng/mL (label range widened) at 50 mcg/day",
    "csf_1200_in_widened_range":
        f"CSF {_r(WIDENED)} ng/mL (label range widened) at 1200 mcg/day",
    "csf_50_and_1200_in_widened_range": f"CSF {_r(WIDENED)} ng/mL at both 50 and 1200 mcg/day",
    "steady_state_in_1_2_days": "steady state (90 %) in 1-2 days",
    "clearance_13_80_ml_per_h": "CSF clearance 13-80 mL/h",
    "csf_volume_22_157_ml": "CSF volume 22-157 mL",
    "bolus_half_life_1_5h": "bolus CSF half-life 1-5 h",
    "bolus_onset_0p5_1h": "bolus effect onset 0.5-1 h",
    "bolus_peak_2_6h": "bolus effect peak 2-6 h",
    "bolus_duration_4_8h": "bolus effect duration 4-8 h",
    "infusion_90pct_24_48h": "infusion: 90 % of the effect in 24-48 h",
    "screening_responders": "responders at screening (50/75/100 mcg)",
    "maintenance_dose_in_label_range_spinal_300_800":
        f"maintenance dose {_r(MAINTENANCE['spinal'])} mcg/day (label, spinal origin)",
    "maintenance_dose_in_label_range_cerebral_90_703":
        f"maintenance dose {_r(MAINTENANCE['cerebral'])} mcg/day (label, cerebral origin)",
    "csf_at_maintenance_dose_in_label_range":
        f"CSF {_r(LABEL_CSF)} ng/mL (label) at the maintenance dose",
    "overdose_signs_after_50_mcg": "overdose signs after a 50 mcg bolus",
}


def fraction_label(code: str) -> str:
    """The words for a ``label_fractions`` code (a new code without words: spaces, not a code)."""
    return FRACTION_LABELS.get(code, code.replace("_", " "))
